//! tokio inside virtual-time bubbles: runtimes built in a bubble run on its clock, together
//! with std and gonext time (the `std-time` feature).

use gonext::time::{self, Bubble};
use gonext::{sync, thread, virtual_time_test};
use gonext_tests::panic_message;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// A pipe's read and write ends.
fn pipe() -> (OwnedFd, OwnedFd) {
    let mut ends = [0; 2];
    // SAFETY: `ends` has room for the two descriptors.
    assert_eq!(unsafe { libc::pipe(ends.as_mut_ptr()) }, 0);
    // SAFETY: `pipe` returned two fresh descriptors that nothing else owns.
    let read = unsafe { OwnedFd::from_raw_fd(ends[0]) };
    // SAFETY: as above.
    let write = unsafe { OwnedFd::from_raw_fd(ends[1]) };
    (read, write)
}

/// Writes one byte to `fd`.
fn write_byte(fd: &OwnedFd) {
    // SAFETY: a valid descriptor and a one-byte buffer.
    assert_eq!(unsafe { libc::write(fd.as_raw_fd(), b"x".as_ptr().cast(), 1) }, 1);
}

#[virtual_time_test(tokio)]
async fn tokio_sleep_of_an_hour_returns_at_once_and_every_clock_agrees() {
    assert!(time::std_time_is_virtual());
    let (tokio_start, std_start, gonext_start) =
        (tokio::time::Instant::now(), std::time::Instant::now(), time::Instant::now());
    tokio::time::sleep(secs(3600)).await;
    assert_eq!(tokio_start.elapsed(), secs(3600));
    assert_eq!(std_start.elapsed(), secs(3600));
    assert_eq!(gonext_start.elapsed(), secs(3600));
}

#[virtual_time_test(tokio)]
async fn timeout_of_a_pending_future_fires_at_exactly_five_seconds() {
    let start = tokio::time::Instant::now();
    let result = tokio::time::timeout(secs(5), std::future::pending::<()>()).await;
    assert!(result.is_err());
    assert_eq!(start.elapsed(), secs(5));
}

#[virtual_time_test(tokio)]
async fn interval_gives_600_ticks_in_exactly_600_seconds() {
    let start = tokio::time::Instant::now();
    let mut interval = tokio::time::interval(secs(1));
    interval.tick().await; // the first tick is immediate
    for _ in 0..600 {
        interval.tick().await;
    }
    assert_eq!(start.elapsed(), secs(600));
}

#[virtual_time_test(tokio = "multi_thread", worker_threads = 2)]
async fn a_hundred_tasks_on_two_workers_finish_at_exactly_990_ms() {
    let start = tokio::time::Instant::now();
    let tasks: Vec<_> =
        (0..100).map(|i| tokio::spawn(async move { tokio::time::sleep(ms(i * 10)).await })).collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(start.elapsed(), ms(990));
}

#[virtual_time_test(tokio = "multi_thread", worker_threads = 2)]
async fn spawn_blocking_sleeps_in_virtual_time() {
    let start = std::time::Instant::now();
    let slept = tokio::task::spawn_blocking(|| {
        let start = std::time::Instant::now();
        std::thread::sleep(secs(120));
        start.elapsed()
    })
    .await
    .unwrap();
    assert_eq!(slept, secs(120));
    assert_eq!(start.elapsed(), secs(120));
}

#[virtual_time_test(tokio)]
async fn gonext_sleep_awaited_in_a_tokio_task_works() {
    let start = time::Instant::now();
    let task = tokio::spawn(async move {
        time::sleep(secs(3600)).await;
        time::Instant::now() - start
    });
    assert_eq!(task.await.unwrap(), secs(3600));
}

#[virtual_time_test(tokio)]
async fn a_gonext_thread_and_a_tokio_task_wake_at_the_same_instant() {
    let start = time::Instant::now();
    let thread = thread::spawn(move || {
        thread::sleep(secs(10));
        time::Instant::now() - start
    });
    let task = tokio::spawn(async move {
        tokio::time::sleep(secs(10)).await;
        time::Instant::now() - start
    });
    assert_eq!(task.await.unwrap(), secs(10));
    assert_eq!(thread.join().unwrap(), secs(10));
}

/// A gonext thread and a tokio task trading messages, each sleeping before it answers; the
/// (virtual time, event) sequence of one run.
fn ping_pong_trace() -> Vec<(Duration, String)> {
    let trace = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&trace);
    Bubble::new().run(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .on_thread_park(time::runtime_parked)
            .on_thread_unpark(time::runtime_unparked)
            .build()
            .unwrap();
        let start = time::Instant::now();
        let (to_task, mut task_inbox) = tokio::sync::mpsc::channel::<u32>(1);
        let (to_thread, thread_inbox) = sync::chan::<u32>(1);
        let thread_log = Arc::clone(&log);
        let pinger = thread::spawn(move || {
            for round in 0..5 {
                thread::sleep(ms(30));
                to_task.blocking_send(round).unwrap();
                let reply = thread_inbox.recv().unwrap();
                thread_log.lock().unwrap().push((start.elapsed(), format!("thread got {reply}")));
            }
        });
        runtime.block_on(async {
            while let Some(round) = task_inbox.recv().await {
                log.lock().unwrap().push((start.elapsed(), format!("task got {round}")));
                tokio::time::sleep(ms(20)).await;
                to_thread.send_async(round * 10).await.unwrap();
            }
        });
        pinger.join().unwrap();
    });
    Arc::try_unwrap(trace).unwrap().into_inner().unwrap()
}

#[test]
fn a_gonext_thread_and_a_tokio_task_exchange_messages_in_the_same_order_every_run() {
    let first = ping_pong_trace();
    let expected: Vec<(Duration, String)> = (0..5)
        .flat_map(|round| {
            let at = ms(50 * round);
            [(at + ms(30), format!("task got {round}")), (at + ms(50), format!("thread got {}", round * 10))]
        })
        .collect();
    assert_eq!(first, expected);
    for _ in 0..20 {
        assert_eq!(ping_pong_trace(), expected);
    }
}

#[virtual_time_test(tokio)]
async fn a_loopback_tcp_echo_under_a_virtual_timeout_succeeds() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let server = tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut buffer = [0u8; 64];
        loop {
            let read = socket.read(&mut buffer).await.unwrap();
            if read == 0 {
                return;
            }
            socket.write_all(&buffer[..read]).await.unwrap();
        }
    });
    let start = tokio::time::Instant::now();
    let echo = tokio::time::timeout(secs(10), async {
        let mut client = tokio::net::TcpStream::connect(address).await.unwrap();
        let mut received = Vec::new();
        for message in [&b"ping"[..], b"pong", b"virtual"] {
            client.write_all(message).await.unwrap();
            let mut reply = vec![0u8; message.len()];
            client.read_exact(&mut reply).await.unwrap();
            received.extend_from_slice(&reply);
        }
        received
    })
    .await
    .expect("bytes in flight between members never let the virtual timeout fire");
    assert_eq!(echo, b"pingpongvirtual");
    assert_eq!(start.elapsed(), Duration::ZERO, "I/O took no virtual time");
    server.abort();
}

#[virtual_time_test(tokio)]
async fn tokio_retrys_start_takes_exactly_its_schedule() {
    use tokio_retry::Retry;
    use tokio_retry::strategy::ExponentialBackoff;

    let start = tokio::time::Instant::now();
    let mut attempts = 0;
    let result: Result<(), &str> = Retry::start(ExponentialBackoff::from_millis(10).take(3), || {
        attempts += 1;
        async { Err("still down") }
    })
    .await;
    assert_eq!(result, Err("still down"));
    assert_eq!(attempts, 4);
    assert_eq!(start.elapsed(), ms(10 + 100 + 1000));
}

#[virtual_time_test(tokio)]
#[should_panic(expected = "deadlock: all tasks in bubble are blocked")]
async fn a_tokio_task_waiting_for_a_message_nobody_sends_is_a_deadlock_report() {
    let (_sender, receiver) = tokio::sync::oneshot::channel::<()>();
    let _ = receiver.await;
}

#[virtual_time_test(tokio)]
#[should_panic(expected = "tokio's clock is paused inside a virtual-time bubble")]
async fn pausing_tokio_inside_a_bubble_panics_explaining_the_two_clocks() {
    tokio::time::pause();
    tokio::time::sleep(secs(1)).await; // tokio would advance its own clock, not the bubble's
}

#[test]
fn a_stuck_multi_thread_runtime_is_reported_with_its_threads() {
    let message = panic_message(|| {
        Bubble::new().run(|| {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .on_thread_park(time::runtime_parked)
                .on_thread_unpark(time::runtime_unparked)
                .build()
                .unwrap();
            let (_sender, receiver) = tokio::sync::oneshot::channel::<()>();
            runtime.block_on(time::root_future(async {
                let _ = receiver.await;
            }));
        });
    });
    assert!(message.starts_with("deadlock: all tasks in bubble are blocked"), "{message}");
    assert!(message.contains("root (started at tests/tokio_time.rs:"), "{message}");
    assert!(message.contains("std-thread-"), "tokio's worker threads are members: {message}");
    assert!(message.contains("a runtime's idle park (std-time)"), "{message}");
}

#[test]
fn a_runtime_built_by_hand_with_only_time_runs_on_the_bubbles_clock() {
    time::bubble(|| {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_time().build().unwrap();
        let start = std::time::Instant::now();
        runtime.block_on(async { tokio::time::sleep(secs(3600)).await });
        assert_eq!(start.elapsed(), secs(3600));
    });
}

#[test]
fn an_untimed_poll_outside_a_runtime_park_waits_for_the_outside_world() {
    let (read_end, write_end) = pipe();
    let outside = std::thread::spawn(move || {
        std::thread::sleep(ms(50));
        write_byte(&write_end);
    });
    time::bubble(move || {
        let sleeper = thread::spawn(|| thread::sleep(secs(1)));
        let start = std::time::Instant::now();
        let mut fds = [libc::pollfd { fd: read_end.as_raw_fd(), events: libc::POLLIN, revents: 0 }];
        // SAFETY: one valid entry; the thread outside writes to the pipe.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, -1) };
        assert_eq!(ready, 1);
        assert_eq!(start.elapsed(), Duration::ZERO, "the clock waited: the poll counted as running");
        sleeper.join().unwrap();
    });
    outside.join().unwrap();
}

#[test]
fn a_finite_poll_of_a_member_is_a_virtual_timeout() {
    time::bubble(|| {
        let start = std::time::Instant::now();
        let mut fds = [libc::pollfd { fd: -1, events: 0, revents: 0 }];
        // SAFETY: one valid entry (a negative fd is ignored by poll).
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), 1, 90_000) };
        assert_eq!(ready, 0);
        assert_eq!(start.elapsed(), secs(90));
    });
}

#[test]
fn select_on_a_pipe_wakes_when_another_member_writes() {
    time::bubble(|| {
        let (read_end, write_end) = pipe();
        let read_fd = read_end.as_raw_fd();
        let writer = thread::spawn(move || {
            thread::sleep(secs(3));
            write_byte(&write_end);
        });
        let start = std::time::Instant::now();
        // SAFETY: a zeroed fd_set is a valid empty set.
        let mut readable: libc::fd_set = unsafe { std::mem::zeroed() };
        // SAFETY: a descriptor below FD_SETSIZE, in a valid set.
        unsafe { libc::FD_SET(read_fd, &mut readable) };
        let mut timeout = libc::timeval { tv_sec: 10, tv_usec: 0 };
        // SAFETY: valid sets and timeout for the call.
        let ready = unsafe {
            libc::select(read_fd + 1, &mut readable, std::ptr::null_mut(), std::ptr::null_mut(), &mut timeout)
        };
        assert_eq!(ready, 1);
        // SAFETY: the set the call filled in.
        assert!(unsafe { libc::FD_ISSET(read_fd, &readable) });
        assert_eq!(start.elapsed(), secs(3));
        assert_eq!((timeout.tv_sec, timeout.tv_usec), (7, 0), "select left the virtual time remaining");
        writer.join().unwrap();
    });
}

/// README.md's tokio example, as written there (extracted by `build.rs`).
mod readme {
    include!(concat!(env!("OUT_DIR"), "/readme_tokio_time.rs"));
}
