use gonext::virtual_time_test;

#[virtual_time_test(start = "2000-01-01T00:00:00+24:00")]
fn offset_past_a_day() {}

// A multi-byte character where the offset belongs is an error, not a panic of the macro.
#[virtual_time_test(start = "2000-01-01T00:00:00€+.+")]
fn offset_with_a_euro_sign() {}

fn main() {}
