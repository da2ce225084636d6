use gonext::{Ptr, weak_cache};

fn main() {
    /// A value type that exists only inside this fn.
    #[derive(Debug, PartialEq)]
    struct Greeting(String);

    #[weak_cache]
    fn greeting(name: &str) -> Ptr<Greeting> {
        Ptr::new(Greeting(format!("hello, {name}")))
    }

    #[weak_cache]
    fn length(word: String) -> Ptr<usize> {
        Ptr::new(word.len())
    }

    let a = greeting("ann");
    assert!(Ptr::ptr_eq(&a, &greeting("ann")));
    assert_eq!(*a, Greeting("hello, ann".to_owned()));
    assert_eq!(greeting::len(), 1);
    assert!(greeting::invalidate("ann"));
    assert_eq!(*length("four".to_owned()), 4);
    assert_eq!(length::stats().misses, 1);
}
