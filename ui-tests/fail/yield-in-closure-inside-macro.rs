fn main() {
    let _ = gonext::seq! {
        let _ = vec![(0..3).map(|x| yield x)];
    };
}
