use gonext::atomic::{PackedTagged, TaggedCas};

fn main() {
    // u16 pointers have one free low bit; three generation bits do not fit.
    let _cell = PackedTagged::<u16, 3>::new(None);
}
