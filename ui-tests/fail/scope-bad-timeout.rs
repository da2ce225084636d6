fn main() {
    gonext::scope!(timeout = "5 parsecs"; {
        go std::thread::yield_now();
    });
}
