use gonext::{Ptr, weak_cache};

#[derive(Debug, PartialEq)]
pub struct Config(String);

#[weak_cache]
pub fn by_name(name: &str, version: u32) -> Ptr<Config> {
    Ptr::new(Config(format!("{name}:{version}")))
}

#[weak_cache]
fn by_path(path: &std::path::Path) -> Result<Ptr<Config>, std::io::Error> {
    Ok(Ptr::new(Config(path.display().to_string())))
}

#[weak_cache]
fn by_bytes(bytes: &[u8]) -> Ptr<usize> {
    Ptr::new(bytes.len())
}

/// An argument type the companion's `invalidate` names as the fn does.
#[derive(Clone, PartialEq, Eq, Hash)]
struct Id(u64);

#[weak_cache]
fn by_id(id: Id) -> Ptr<u64> {
    Ptr::new(id.0)
}

fn main() {
    let a = by_name("db", 1);
    assert!(Ptr::ptr_eq(&a, &by_name("db", 1)));
    assert_eq!(*by_path(std::path::Path::new("/etc")).unwrap(), Config("/etc".into()));
    assert_eq!(*by_bytes(b"abc"), 3);
    assert_eq!(by_name::len(), 1);
    assert!(by_name::invalidate("db", 1));
    assert!(!by_path::invalidate(std::path::Path::new("/etc")), "its value died already");
    by_name::clear();
    assert!(by_name::is_empty());
    let id = by_id(Id(7));
    assert!(by_id::invalidate(Id(7)));
    assert_eq!((by_id::stats().hits, by_id::stats().misses), (0, 1));
    drop((a, id));
}
