use gonext::atomic::{DoubleWord, Word};

#[derive(Clone, Copy)]
struct Small(u32);

// SAFETY: deliberately wrong: `Small` is 4 bytes, which DoubleWord rejects at compile time.
unsafe impl Word for Small {}

fn main() {
    let _cell = DoubleWord::new(Small(1), 2u64);
}
