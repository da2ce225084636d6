fn work() {}

fn main() {
    go work();
}
