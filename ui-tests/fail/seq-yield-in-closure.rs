fn main() {
    let values = gonext::seq! {
        let emit = |x: u32| { yield x; };
        emit(1);
    };
    let _: Vec<u32> = values.collect();
}
