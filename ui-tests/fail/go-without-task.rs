fn main() {
    gonext::scope! {
        go;
    };
}
