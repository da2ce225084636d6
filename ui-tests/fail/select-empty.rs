fn main() {
    gonext::select! {
        default => (),
    };
}
