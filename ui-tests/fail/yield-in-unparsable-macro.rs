#[allow(unused_macros)]
macro_rules! emit {
    (yield <- $value:expr) => {
        $value
    };
}

fn main() {
    let _ = gonext::seq! {
        emit!(yield <- 1u32);
    };
}
