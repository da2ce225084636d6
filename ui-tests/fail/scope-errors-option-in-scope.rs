fn main() {
    gonext::scope!(errors = all; {
        go std::thread::yield_now();
    });
}
