//! Stack-overflow reports for `pull` coroutines.
//!
//! A coroutine stack ends in a guard page (corosensei maps it without access), so an
//! overflow is a segmentation fault at an address inside that stack's mapping. While a
//! coroutine can run, its stack's address range, size and `pull` site are linked into a
//! per-thread list; a `SIGSEGV` handler, installed once beside the one std already has,
//! looks the fault address up there. A match is reported on stderr and the process aborts —
//! the coroutine cannot be unwound from a signal handler, and letting it "return" would
//! skip the destructors of everything on its stack. Any other fault goes to the handler that
//! was installed before (std's, which reports overflows of thread stacks).
//!
//! The handler runs on the thread's signal stack, which std sets up for the main thread and
//! for every thread it spawns. It only reads the list (plain words, written by the owning
//! thread between its function calls, never while they are half-updated by a call that
//! could overflow), formats numbers into a buffer on its own stack and calls `write` and
//! `abort`, both async-signal-safe.
//!
//! Linux on x86_64 and aarch64 only, where the layouts of `sigaction` and `siginfo_t` below
//! are fixed; elsewhere [`Guard`] is empty and an overflow stays a bare `SIGSEGV`.

use std::panic::Location;

/// Keeps one coroutine stack registered for overflow reports while it lives.
pub(super) struct Guard {
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    record: Box<imp::Record>,
}

impl Guard {
    /// Registers the stack mapped at `start..end`, of `size` usable bytes, used by the pull
    /// created at `site`.
    #[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
    pub(super) fn new(start: usize, end: usize, size: usize, site: &'static Location<'static>) -> Guard {
        imp::install();
        Guard { record: imp::Record::link(start, end, size, site) }
    }

    /// Overflow reports are not available on this target.
    #[cfg(not(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64"))))]
    pub(super) fn new(_start: usize, _end: usize, _size: usize, _site: &'static Location<'static>) -> Guard {
        Guard {}
    }
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
impl Drop for Guard {
    fn drop(&mut self) {
        self.record.unlink();
    }
}

#[cfg(all(target_os = "linux", any(target_arch = "x86_64", target_arch = "aarch64")))]
mod imp {
    use std::cell::Cell;
    use std::ffi::{c_int, c_void};
    use std::panic::Location;
    use std::ptr;
    use std::sync::Once;
    use std::sync::atomic::{AtomicUsize, Ordering};

    const SIGSEGV: c_int = 11;
    const SA_SIGINFO: c_int = 4;
    const SA_ONSTACK: c_int = 0x0800_0000;
    const SIG_DFL: usize = 0;
    const SIG_IGN: usize = 1;

    /// glibc's and musl's `struct sigaction` on x86_64 and aarch64.
    #[repr(C)]
    struct SigAction {
        handler: usize,
        mask: [u64; 16],
        flags: c_int,
        restorer: usize,
    }

    /// The start of `siginfo_t`; for `SIGSEGV` the fault address follows the three ints
    /// (and the padding that aligns it).
    #[repr(C)]
    struct SigInfo {
        signo: c_int,
        errno: c_int,
        code: c_int,
        pad: c_int,
        addr: usize,
    }

    unsafe extern "C" {
        fn sigaction(signum: c_int, act: *const SigAction, old: *mut SigAction) -> c_int;
        fn write(fd: c_int, buf: *const c_void, count: usize) -> isize;
        fn abort() -> !;
    }

    /// The handler and flags that were installed before ours, to pass other faults on to.
    static PREVIOUS_HANDLER: AtomicUsize = AtomicUsize::new(SIG_DFL);
    static PREVIOUS_FLAGS: AtomicUsize = AtomicUsize::new(0);

    thread_local! {
        /// The most recently registered stack of this thread.
        static HEAD: Cell<*const Record> = const { Cell::new(ptr::null()) };
    }

    /// One registered coroutine stack, in a doubly linked per-thread list.
    pub(super) struct Record {
        start: usize,
        end: usize,
        size: usize,
        site: &'static Location<'static>,
        prev: Cell<*const Record>,
        next: Cell<*const Record>,
    }

    impl Record {
        pub(super) fn link(
            start: usize,
            end: usize,
            size: usize,
            site: &'static Location<'static>,
        ) -> Box<Record> {
            let head = HEAD.get();
            let record = Box::new(Record {
                start,
                end,
                size,
                site,
                prev: Cell::new(ptr::null()),
                next: Cell::new(head),
            });
            if !head.is_null() {
                // SAFETY: records in the list are alive: each unlinks itself before it is freed.
                unsafe { (*head).prev.set(&*record) };
            }
            HEAD.set(&*record);
            record
        }

        /// Takes the record out of its thread's list. A `Pull` is `!Send`, so this runs on
        /// the thread that linked it.
        pub(super) fn unlink(&self) {
            let (prev, next) = (self.prev.get(), self.next.get());
            if !next.is_null() {
                // SAFETY: as in `link`.
                unsafe { (*next).prev.set(prev) };
            }
            if prev.is_null() {
                HEAD.set(next);
            } else {
                // SAFETY: as in `link`.
                unsafe { (*prev).next.set(next) };
            }
        }
    }

    /// Installs the handler once per process, remembering the one it replaces.
    pub(super) fn install() {
        static INSTALLED: Once = Once::new();
        INSTALLED.call_once(|| {
            let mut old = SigAction { handler: SIG_DFL, mask: [0; 16], flags: 0, restorer: 0 };
            // SAFETY: a null `act` only reads the current action into `old`, a valid
            // `sigaction` of this target's layout.
            if unsafe { sigaction(SIGSEGV, ptr::null(), &mut old) } != 0 {
                return;
            }
            PREVIOUS_HANDLER.store(old.handler, Ordering::Relaxed);
            PREVIOUS_FLAGS.store(old.flags as usize, Ordering::Relaxed);
            let ours = SigAction {
                handler: on_fault as *const () as usize,
                mask: [0; 16],
                flags: SA_SIGINFO | SA_ONSTACK,
                restorer: 0,
            };
            // SAFETY: `ours` is a valid action whose handler has the `SA_SIGINFO` signature.
            unsafe { sigaction(SIGSEGV, &ours, ptr::null_mut()) };
        });
    }

    /// The size and `pull` site of the registered stack whose mapping holds `addr`: inside
    /// a stack mapping, only its guard page faults.
    fn stack_at(addr: usize) -> Option<(usize, &'static Location<'static>)> {
        let mut record = HEAD.get();
        while !record.is_null() {
            // SAFETY: as in `link`; the handler runs on the thread that owns the list.
            let current = unsafe { &*record };
            if (current.start..current.end).contains(&addr) {
                return Some((current.size, current.site));
            }
            record = current.next.get();
        }
        None
    }

    unsafe extern "C" fn on_fault(signal: c_int, info: *mut SigInfo, context: *mut c_void) {
        // SAFETY: with `SA_SIGINFO` the kernel passes a valid `siginfo_t`.
        let addr = unsafe { (*info).addr };
        if let Some((size, site)) = stack_at(addr) {
            report(size, site);
            // SAFETY: `abort` may be called from a signal handler.
            unsafe { abort() };
        }
        // SAFETY: the arguments are the kernel's, passed on unchanged.
        unsafe { pass_on(signal, info, context) };
    }

    /// Hands a fault that is not a coroutine overflow to the previous handler; without one,
    /// restores the default action, so that returning re-runs the faulting instruction and
    /// the process dies of the signal as it would have without gonext.
    unsafe fn pass_on(signal: c_int, info: *mut SigInfo, context: *mut c_void) {
        let handler = PREVIOUS_HANDLER.load(Ordering::Relaxed);
        if handler == SIG_DFL || handler == SIG_IGN {
            let default = SigAction { handler: SIG_DFL, mask: [0; 16], flags: 0, restorer: 0 };
            // SAFETY: `sigaction` is async-signal-safe; `default` is a valid action.
            unsafe { sigaction(signal, &default, ptr::null_mut()) };
        } else if PREVIOUS_FLAGS.load(Ordering::Relaxed) & SA_SIGINFO as usize != 0 {
            // SAFETY: the previous action was installed with `SA_SIGINFO`, so its handler
            // has this signature.
            let previous: unsafe extern "C" fn(c_int, *mut SigInfo, *mut c_void) =
                unsafe { std::mem::transmute(handler) };
            // SAFETY: called as the kernel would have called it.
            unsafe { previous(signal, info, context) };
        } else {
            // SAFETY: without `SA_SIGINFO`, the handler takes only the signal number.
            let previous: unsafe extern "C" fn(c_int) = unsafe { std::mem::transmute(handler) };
            // SAFETY: called as the kernel would have called it.
            unsafe { previous(signal) };
        }
    }

    /// Writes the report, without allocating.
    fn report(size: usize, site: &Location<'_>) {
        let mut line = Line { buf: [0; 512], len: 0 };
        line.push(b"\ngonext: the pull coroutine created at ");
        line.push(site.file().as_bytes());
        line.push(b":");
        line.number(site.line() as usize);
        line.push(b":");
        line.number(site.column() as usize);
        line.push(b" overflowed its ");
        line.number(size);
        line.push(b"-byte stack; give it a larger one with PullOptions::stack_size (see gonext::iter::DEFAULT_STACK_SIZE)\n");
        // SAFETY: `write` is async-signal-safe and reads `len` initialized bytes.
        unsafe { write(2, line.buf.as_ptr().cast(), line.len) };
    }

    /// A fixed buffer the report is assembled in; overlong parts are cut.
    struct Line {
        buf: [u8; 512],
        len: usize,
    }

    impl Line {
        fn push(&mut self, bytes: &[u8]) {
            let n = bytes.len().min(self.buf.len() - self.len);
            self.buf[self.len..self.len + n].copy_from_slice(&bytes[..n]);
            self.len += n;
        }

        fn number(&mut self, mut n: usize) {
            let mut digits = [0u8; 20];
            let mut at = digits.len();
            loop {
                at -= 1;
                digits[at] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            self.push(&digits[at..]);
        }
    }
}
