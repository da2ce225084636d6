fn main() {
    gonext::scope!(limit = 0; {
        go { let _ = 1; }
    });
}
