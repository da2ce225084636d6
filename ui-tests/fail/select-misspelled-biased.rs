fn main() {
    let _ = gonext::select! {
        baised;
        v = std::future::ready(1) => v,
    };
}
