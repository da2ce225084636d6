fn main() {
    gonext::scope!(policy = first_success; {
        go std::thread::yield_now();
    });
}
