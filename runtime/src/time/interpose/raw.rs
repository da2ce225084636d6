//! The real operations behind the interposers: raw system calls (which no interposer can
//! see), `errno`, and libc's own definitions of the symbols gonext replaces, found with
//! `dlsym(RTLD_NEXT)`.
//!
//! Nothing here may call a libc function that gonext interposes (`clock_gettime`, `syscall`,
//! the sleeps, `pthread_create`): inside this crate those names bind to gonext's own
//! definitions.

use std::ffi::{CStr, c_int, c_long, c_void};
use std::sync::atomic::{AtomicPtr, AtomicU32, Ordering};
use std::time::Duration;

/// A system call with up to six arguments, made directly (never through libc's `syscall`).
/// Returns the kernel's result: a negative errno on failure.
///
/// # Safety
///
/// The arguments must be valid for system call `number`.
#[inline]
pub(crate) unsafe fn syscall6(number: c_long, args: [c_long; 6]) -> c_long {
    let ret: c_long;
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the caller passes arguments valid for the call; the kernel clobbers only rcx
    // and r11 besides rax, and does not touch the stack.
    unsafe {
        std::arch::asm!(
            "syscall",
            inlateout("rax") number => ret,
            in("rdi") args[0],
            in("rsi") args[1],
            in("rdx") args[2],
            in("r10") args[3],
            in("r8") args[4],
            in("r9") args[5],
            lateout("rcx") _,
            lateout("r11") _,
            options(nostack),
        );
    }
    #[cfg(target_arch = "aarch64")]
    // SAFETY: the caller passes arguments valid for the call; the kernel returns in x0 and
    // preserves every other register.
    unsafe {
        std::arch::asm!(
            "svc 0",
            in("x8") number,
            inlateout("x0") args[0] => ret,
            in("x1") args[1],
            in("x2") args[2],
            in("x3") args[3],
            in("x4") args[4],
            in("x5") args[5],
            options(nostack),
        );
    }
    ret
}

/// Turns a kernel result into libc's convention: `-1` with `errno` set on failure.
pub(crate) fn libc_result(ret: c_long) -> c_long {
    if (-4095..0).contains(&ret) {
        set_errno(-ret as c_int);
        return -1;
    }
    ret
}

pub(crate) fn set_errno(code: c_int) {
    // SAFETY: `__errno_location` has no preconditions.
    let slot = unsafe { libc::__errno_location() };
    // SAFETY: it returns the calling thread's errno slot, valid for writes for the thread's
    // lifetime.
    unsafe { *slot = code };
}

/// Waits while `word` holds `expected`, for at most `timeout`, on a private futex.
pub(crate) fn futex_wait(word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
    let timespec = timeout.map(timespec_of);
    let timeout_ptr = timespec.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
    // SAFETY: `word` and the timespec outlive the call; FUTEX_WAIT reads them only.
    unsafe {
        syscall6(
            libc::SYS_futex,
            [
                word.as_ptr() as c_long,
                (libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG) as c_long,
                expected as c_long,
                timeout_ptr as c_long,
                0,
                0,
            ],
        );
    }
}

/// Wakes one thread waiting on `word`.
pub(crate) fn futex_wake(word: &AtomicU32) {
    // SAFETY: FUTEX_WAKE only uses the address as a key.
    unsafe {
        syscall6(
            libc::SYS_futex,
            [word.as_ptr() as c_long, (libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG) as c_long, 1, 0, 0, 0],
        );
    }
}

pub(crate) fn timespec_of(duration: Duration) -> libc::timespec {
    libc::timespec {
        tv_sec: libc::time_t::try_from(duration.as_secs()).unwrap_or(libc::time_t::MAX),
        tv_nsec: c_long::from(duration.subsec_nanos() as i32),
    }
}

/// A valid timespec as a duration since the clock's origin; `None` when out of range.
pub(crate) fn duration_of(timespec: &libc::timespec) -> Option<Duration> {
    let secs = u64::try_from(timespec.tv_sec).ok()?;
    let nanos = u32::try_from(timespec.tv_nsec).ok().filter(|&n| n < 1_000_000_000)?;
    Some(Duration::new(secs, nanos))
}

/// The real `clock_gettime`, through the vDSO when libc has it.
pub(crate) fn real_clock(clock: libc::clockid_t) -> Duration {
    let mut now = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `now` is valid for writes.
    unsafe { real_clock_gettime(clock, &mut now) };
    duration_of(&now).unwrap_or_default()
}

/// The real `clock_gettime(clock, tp)`.
///
/// # Safety
///
/// As libc's: `tp` must be valid for writes.
pub(crate) unsafe fn real_clock_gettime(clock: libc::clockid_t, tp: *mut libc::timespec) -> c_int {
    type ClockGettime = unsafe extern "C" fn(libc::clockid_t, *mut libc::timespec) -> c_int;
    // SAFETY: the type of libc's `clock_gettime`.
    static REAL: RealFn<ClockGettime> = unsafe { RealFn::new(c"clock_gettime") };
    match REAL.get(super::clock::clock_gettime as *const () as usize) {
        // SAFETY: the caller passes a valid `tp`.
        Some(real) => unsafe { real(clock, tp) },
        // SAFETY: as above, through the kernel.
        None => unsafe {
            libc_result(syscall6(libc::SYS_clock_gettime, [clock as c_long, tp as c_long, 0, 0, 0, 0]))
                as c_int
        },
    }
}

/// libc's definition of a symbol gonext also defines, looked up once, as a function pointer
/// of type `F`. The lookup cannot use a `OnceLock`: waiting on one parks on a futex, which
/// would re-enter the interposer.
pub(crate) struct RealFn<F> {
    name: &'static CStr,
    address: AtomicPtr<c_void>,
    signature: std::marker::PhantomData<F>,
}

/// Marks a lookup that found nothing usable.
const MISSING: *mut c_void = std::ptr::dangling_mut();

impl<F: Copy> RealFn<F> {
    /// # Safety
    ///
    /// `F` must be the `unsafe extern "C" fn` type of libc's `name`.
    pub(crate) const unsafe fn new(name: &'static CStr) -> RealFn<F> {
        assert!(size_of::<F>() == size_of::<*mut c_void>());
        RealFn { name, address: AtomicPtr::new(std::ptr::null_mut()), signature: std::marker::PhantomData }
    }

    /// The next definition after gonext's own (`ours`); `None` if there is none, in which
    /// case the caller falls back to the system call.
    pub(crate) fn get(&self, ours: usize) -> Option<F> {
        let mut address = self.address.load(Ordering::Relaxed);
        if address.is_null() {
            // SAFETY: `dlsym` takes a NUL-terminated name; RTLD_NEXT searches the objects
            // loaded after the one that calls it, i.e. libc for the executable.
            address = unsafe { libc::dlsym(libc::RTLD_NEXT, self.name.as_ptr()) };
            if address.is_null() || address as usize == ours {
                address = MISSING;
            }
            self.address.store(address, Ordering::Relaxed);
        }
        // SAFETY: `address` is libc's `name`, whose type `F` is (see `new`), a function
        // pointer of the same size as the address.
        (address != MISSING).then(|| unsafe { std::mem::transmute_copy::<*mut c_void, F>(&address) })
    }
}

/// A spin lock for the interposers' own tables: a std mutex would wait and wake through the
/// futex interposer that uses the table.
pub(crate) struct SpinLock<T> {
    locked: std::sync::atomic::AtomicBool,
    value: std::cell::UnsafeCell<T>,
}

// SAFETY: the value is only reached with the lock held, by one thread at a time.
unsafe impl<T: Send> Sync for SpinLock<T> {}

impl<T> SpinLock<T> {
    pub(crate) const fn new(value: T) -> SpinLock<T> {
        SpinLock {
            locked: std::sync::atomic::AtomicBool::new(false),
            value: std::cell::UnsafeCell::new(value),
        }
    }

    /// Runs `f` with the value, the lock held.
    pub(crate) fn with<R>(&self, f: impl FnOnce(&mut T) -> R) -> R {
        struct Unlock<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Unlock<'_> {
            fn drop(&mut self) {
                self.0.store(false, Ordering::Release);
            }
        }
        while self.locked.compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed).is_err() {
            std::hint::spin_loop();
        }
        let _unlock = Unlock(&self.locked);
        // SAFETY: the lock is held, so this is the only reference to the value.
        f(unsafe { &mut *self.value.get() })
    }
}

/// `ppoll` of `fds` with a zero timeout, through the kernel: the number of descriptors with
/// events (each `revents` filled in), or a negative errno.
pub(crate) fn poll_now(fds: &mut [libc::pollfd]) -> c_long {
    let zero = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `fds` is valid for reads and writes of its length, `zero` outlives the call,
    // and no signal mask is given.
    unsafe {
        syscall6(
            libc::SYS_ppoll,
            [fds.as_mut_ptr() as c_long, fds.len() as c_long, &zero as *const _ as c_long, 0, 0, 0],
        )
    }
}
