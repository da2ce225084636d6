fn main() {
    gonext::scope!(ctx = 5u32; {
        go std::thread::yield_now();
    });
}
