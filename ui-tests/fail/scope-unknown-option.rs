fn main() {
    gonext::scope!(workers = 4; {
        go { let _ = 1; }
    });
}
