//! Go's Task 4: a database handle that closes explicitly, with a cleanup as a safety net for
//! handles that are dropped without `close()`.
//!
//! Run it with `cargo run --example db_cleanup`.

use gonext::Ptr;
use gonext::runtime::{self, Cleanup};
use std::fs::File;
use std::sync::Mutex;

struct Db {
    file: Ptr<Mutex<Option<File>>>,
    cleanup: Cleanup,
}

impl Db {
    fn open(path: &str) -> std::io::Result<Db> {
        let file = File::open(path)?;
        let safety_net = file.try_clone()?;
        let file = Ptr::new(Mutex::new(Some(file)));
        let cleanup = runtime::add_cleanup(
            &file,
            |leaked: File| {
                eprintln!("cleanup: a Db was dropped without close(); closing its file");
                drop(leaked);
            },
            safety_net,
        );
        Ok(Db { file, cleanup })
    }

    fn close(self) {
        self.cleanup.stop();
        drop(self.file.lock().expect("unpoisoned").take());
    }
}

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").map_or(0, Iterator::count)
}

fn main() -> std::io::Result<()> {
    let before = open_fds();
    Db::open("/proc/self/status")?.close();
    drop(Db::open("/proc/self/status")?);
    runtime::flush_cleanups();
    println!("open descriptors before: {before}, after: {}", open_fds());
    Ok(())
}
