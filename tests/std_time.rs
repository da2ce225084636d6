//! Virtual time for std code (the `std-time` feature): std's clocks, sleeps, timed waits and
//! threads inside bubbles.

use gonext::virtual_time_test;
use std::time::{Duration, Instant, SystemTime};

#[virtual_time_test]
fn std_sleep_of_an_hour_returns_at_once_with_exact_clocks() {
    let start = Instant::now();
    let wall = SystemTime::now();
    std::thread::sleep(Duration::from_secs(3600));
    assert_eq!(start.elapsed(), Duration::from_secs(3600));
    assert_eq!(wall.elapsed().unwrap(), Duration::from_secs(3600));
    assert_eq!(gonext::time::Instant::now().into_std(), Instant::now());
}
