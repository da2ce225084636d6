fn main() {
    gonext::scope! {
        let start = |n: u32| {
            go std::thread::sleep(std::time::Duration::from_millis(n.into()));
        };
        start(1);
    };
}
