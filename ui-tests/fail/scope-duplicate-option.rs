fn main() {
    gonext::scope!(limit = 2, limit = 3; {
        go std::thread::yield_now();
    });
}
