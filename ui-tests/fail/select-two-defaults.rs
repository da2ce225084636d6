fn main() {
    let (_tx, rx) = gonext::sync::chan::<u8>(1);
    gonext::select! {
        _ = rx.recv_async() => (),
        default => (),
        default => (),
    };
}
