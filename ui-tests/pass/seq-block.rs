use gonext::seq;

fn main() {
    let limit = 4u32;
    let squares = seq! { for i in 1..limit { yield i * i; } yield from [0]; };
    assert_eq!(squares.collect::<Vec<_>>(), [1, 4, 9, 0]);
    let no_items = seq! {};
    let _: Vec<()> = no_items.collect();
    let in_macros = seq! { let _ = vec![yield 1u8]; };
    assert_eq!(in_macros.collect::<Vec<_>>(), [1]);
}
