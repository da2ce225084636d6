use gonext::atomic::{AtomicTagged, DoubleWord, MutexTagged, PackedTagged, TaggedCas, TreiberStack};
use std::sync::atomic::Ordering::Acquire;

fn generation<C: TaggedCas<u64>>(cell: &C) -> u64 {
    cell.load(Acquire).tag
}

fn main() {
    assert_eq!(generation(&AtomicTagged::<u64>::new(None)), 0);
    assert_eq!(generation(&MutexTagged::<u64>::new(None)), 0);
    assert_eq!(generation(&PackedTagged::<u64, 3>::new(None)), 0);
    let pair = DoubleWord::new(1.5f64, [1u32, 2]);
    assert_eq!(pair.load(Acquire), (1.5, [1, 2]));
    let stack = TreiberStack::<String, PackedTagged<_, 3>>::default();
    stack.push("x".to_owned());
    assert_eq!(stack.pop().as_deref(), Some("x"));
}
