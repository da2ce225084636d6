//! Every rule a `#[virtual_time_test]` can break: unknown or repeated options, values that
//! are not durations, RFC 3339 times, tokio flavours or worker counts, and test functions that
//! cannot be tests.

use std::time::Duration;

use proc_macro2::Span;
use quote::ToTokens;
use syn::spanned::Spanned;
use syn::{FnArg, ItemFn, LitStr};

use super::parse::{Input, RawOption, RawValue, example};

/// The options, typed.
#[derive(Default)]
pub(super) struct Options {
    /// Seconds and nanoseconds since the Unix epoch.
    pub(super) start: Option<(u64, u32)>,
    pub(super) timeout: Option<Duration>,
    pub(super) stall: Option<Duration>,
    /// A tokio runtime to run the async body on, and the span of the option that asked for it.
    pub(super) tokio: Option<(TokioFlavor, Span)>,
    /// `worker_threads = N`, and its span.
    pub(super) worker_threads: Option<(usize, Span)>,
    /// `trace = "path"`: where the bubble's trace goes.
    pub(super) trace: Option<String>,
    /// `timeline = N`: how many events failure reports end with.
    pub(super) timeline: Option<usize>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(super) enum TokioFlavor {
    CurrentThread,
    MultiThread,
}

pub(super) struct Test {
    pub(super) options: Options,
    pub(super) function: ItemFn,
}

pub(super) fn validate(input: Input) -> syn::Result<Test> {
    let mut errors = Vec::new();
    let mut options = Options::default();
    let mut seen: Vec<String> = Vec::new();
    for option in &input.options {
        let key = option.key.to_string();
        if seen.contains(&key) {
            errors.push(syn::Error::new(option.key.span(), format!("`{key}` is given twice")));
            continue;
        }
        seen.push(key);
        if let Err(error) = apply(&mut options, option) {
            errors.push(error);
        }
    }
    errors.extend(check_tokio(&options, &input.function));
    errors.extend(check_function(&input.function));
    let mut errors = errors.into_iter();
    match errors.next() {
        Some(first) => Err(errors.fold(first, |mut all, next| {
            all.combine(next);
            all
        })),
        None => Ok(Test { options, function: input.function }),
    }
}

fn apply(options: &mut Options, option: &RawOption) -> syn::Result<()> {
    let key = option.key.to_string();
    match key.as_str() {
        "start" => {
            options.start = Some(parse_rfc3339(&string(option)?.value()).map_err(invalid(option))?);
        }
        "timeout" => {
            options.timeout = Some(parse_duration(&string(option)?.value()).map_err(invalid(option))?);
        }
        "stall" => {
            let stall = parse_duration(&string(option)?.value()).map_err(invalid(option))?;
            if stall.is_zero() {
                return Err(invalid(option)("the stall limit must be positive".to_owned()));
            }
            options.stall = Some(stall);
        }
        "tokio" => options.tokio = Some((tokio_flavor(option)?, option.key.span())),
        "trace" => {
            let path = string(option)?;
            if path.value().trim().is_empty() {
                return Err(syn::Error::new(
                    path.span(),
                    "`trace` takes the path of the file to write, e.g. trace = \"target/retry.json\"",
                ));
            }
            options.trace = Some(path.value());
        }
        "timeline" => options.timeline = Some(count(option, "timeline = 20")?),
        "worker_threads" => options.worker_threads = Some((worker_threads(option)?, option.key.span())),
        other => {
            return Err(syn::Error::new(
                option.key.span(),
                format!(
                    "unknown option `{other}`; #[virtual_time_test] accepts `start`, `timeout`, `stall`, \
                     `trace`, `timeline`, `tokio` and `worker_threads`"
                ),
            ));
        }
    }
    Ok(())
}

/// The string value of an option that takes one.
fn string(option: &RawOption) -> syn::Result<&LitStr> {
    let key = &option.key;
    match &option.value {
        Some(RawValue::Str(value)) => Ok(value),
        Some(RawValue::Int(value)) => Err(syn::Error::new(
            value.span(),
            format!("`{key}` takes a string literal, e.g. {key} = \"{}\"", example(key)),
        )),
        None => Err(syn::Error::new(
            key.span(),
            format!("`{key}` needs a value, e.g. {key} = \"{}\"", example(key)),
        )),
    }
}

/// The error for an option's invalid string value, with an example.
fn invalid(option: &RawOption) -> impl Fn(String) -> syn::Error + '_ {
    move |what| {
        let span = option.value.as_ref().map_or(option.key.span(), |value| match value {
            RawValue::Str(value) => value.span(),
            RawValue::Int(value) => value.span(),
        });
        syn::Error::new(span, format!("{what}; write e.g. {} = \"{}\"", option.key, example(&option.key)))
    }
}

/// `tokio` alone (a current-thread runtime) or `tokio = "current_thread" | "multi_thread"`.
fn tokio_flavor(option: &RawOption) -> syn::Result<TokioFlavor> {
    if option.value.is_none() {
        return Ok(TokioFlavor::CurrentThread);
    }
    let flavor = string(option)?;
    match flavor.value().as_str() {
        "current_thread" => Ok(TokioFlavor::CurrentThread),
        "multi_thread" => Ok(TokioFlavor::MultiThread),
        other => Err(syn::Error::new(
            flavor.span(),
            format!(
                "unknown tokio flavor `{other}`; write tokio = \"current_thread\" or tokio = \"multi_thread\""
            ),
        )),
    }
}

/// An option's integer value (`example` shows one).
fn count(option: &RawOption, example: &str) -> syn::Result<usize> {
    let key = &option.key;
    let Some(RawValue::Int(count)) = &option.value else {
        let span = match &option.value {
            Some(RawValue::Str(value)) => value.span(),
            _ => key.span(),
        };
        return Err(syn::Error::new(span, format!("`{key}` takes an integer, e.g. {example}")));
    };
    count
        .base10_parse::<usize>()
        .map_err(|_| syn::Error::new(count.span(), format!("`{key}` takes an integer, e.g. {example}")))
}

/// `worker_threads = N`, a positive integer.
fn worker_threads(option: &RawOption) -> syn::Result<usize> {
    match count(option, "worker_threads = 4")? {
        0 => Err(syn::Error::new_spanned(
            option.value.as_ref().map(|value| match value {
                RawValue::Int(count) => count.to_token_stream(),
                RawValue::Str(text) => text.to_token_stream(),
            }),
            "a tokio runtime needs at least one worker thread",
        )),
        workers => Ok(workers),
    }
}

/// A tokio runtime runs an `async fn`; `worker_threads` is an option of the multi-thread one.
fn check_tokio(options: &Options, function: &ItemFn) -> Vec<syn::Error> {
    let mut errors = Vec::new();
    if let Some((_, span)) = options.tokio
        && function.sig.asyncness.is_none()
    {
        errors.push(syn::Error::new(
            span,
            "`tokio` runs the test on a tokio runtime, which needs an `async fn`; make the test `async`",
        ));
    }
    if let Some((_, span)) = options.worker_threads
        && !matches!(options.tokio, Some((TokioFlavor::MultiThread, _)))
    {
        errors.push(syn::Error::new(
            span,
            "`worker_threads` sets the size of a multi-thread runtime: add tokio = \"multi_thread\"",
        ));
    }
    errors
}

fn check_function(function: &ItemFn) -> Vec<syn::Error> {
    let sig = &function.sig;
    let mut errors = Vec::new();
    if let Some(arg) = sig.inputs.first() {
        let span = match arg {
            FnArg::Receiver(receiver) => receiver.span(),
            FnArg::Typed(typed) => typed.span(),
        };
        errors.push(syn::Error::new(span, "a #[virtual_time_test] function takes no arguments"));
    }
    if !sig.generics.params.is_empty() {
        errors
            .push(syn::Error::new(sig.generics.span(), "a #[virtual_time_test] function cannot be generic"));
    }
    if let Some(constness) = &sig.constness {
        errors.push(syn::Error::new(constness.span(), "a #[virtual_time_test] function cannot be `const`"));
    }
    errors
}

/// Go-style durations: one or more `<number><unit>` with units `ns`, `us`, `µs`, `ms`, `s`,
/// `m`, `h`, and an optional fraction (`1.5s`, `1h30m`).
pub(crate) fn parse_duration(text: &str) -> Result<Duration, String> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return Err("empty duration".to_owned());
    }
    let mut total = Duration::ZERO;
    while !rest.is_empty() {
        let number_len = rest.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_len);
        let unit_len = after.find(|c: char| c.is_ascii_digit() || c == '.').unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_len);
        let value: f64 =
            number.parse().map_err(|_| format!("`{text}` is not a duration: bad number `{number}`"))?;
        let unit_nanos = match unit {
            "ns" => 1.0,
            "us" | "µs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            "" => {
                return Err(format!(
                    "`{text}` is not a duration: `{number}` needs a unit (ns, us, ms, s, m, h)"
                ));
            }
            other => {
                return Err(format!(
                    "`{text}` is not a duration: unknown unit {other:?} (use ns, us, ms, s, m, h)"
                ));
            }
        };
        total += Duration::from_nanos((value * unit_nanos).round() as u64);
        rest = after;
    }
    Ok(total)
}

/// RFC 3339 timestamps (`2024-02-29T12:00:00Z`, `…T12:00:00.5+02:00`) as seconds and
/// nanoseconds since the Unix epoch.
pub(crate) fn parse_rfc3339(text: &str) -> Result<(u64, u32), String> {
    let bad = |why: &str| format!("`{text}` is not an RFC 3339 time: {why}");
    let bytes = text.as_bytes();
    if bytes.len() < 20 || bytes[4] != b'-' || bytes[7] != b'-' || !matches!(bytes[10], b'T' | b't' | b' ') {
        return Err(bad("expected YYYY-MM-DDTHH:MM:SS followed by Z or an offset"));
    }
    if bytes[13] != b':' || bytes[16] != b':' {
        return Err(bad("expected HH:MM:SS"));
    }
    let field = |range: std::ops::Range<usize>| -> Result<u64, String> {
        text.get(range).and_then(|s| s.parse().ok()).ok_or_else(|| bad("non-numeric date or time field"))
    };
    let (year, month, day) = (field(0..4)?, field(5..7)?, field(8..10)?);
    let (hour, minute, second) = (field(11..13)?, field(14..16)?, field(17..19)?);
    if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
        return Err(bad("no such date"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(bad("no such time of day"));
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.find(|c: char| !c.is_ascii_digit()).unwrap_or(fraction.len());
        if digits == 0 || digits > 9 {
            return Err(bad("the fraction of a second needs 1 to 9 digits"));
        }
        nanos = format!("{:0<9}", &fraction[..digits]).parse().map_err(|_| bad("bad fraction"))?;
        rest = &fraction[digits..];
    }
    // Matched as bytes: the text may hold multi-byte characters anywhere.
    let offset_secs: i64 = match rest.as_bytes() {
        b"Z" | b"z" => 0,
        &[sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] if [h1, h2, m1, m2].iter().all(u8::is_ascii_digit) => {
            let two_digits = |tens: u8, ones: u8| i64::from((tens - b'0') * 10 + (ones - b'0'));
            let (hours, minutes) = (two_digits(h1, h2), two_digits(m1, m2));
            if hours > 23 || minutes > 59 {
                return Err(bad("the offset must be between -23:59 and +23:59"));
            }
            let magnitude = hours * 3600 + minutes * 60;
            if sign == b'-' { -magnitude } else { magnitude }
        }
        _ => return Err(bad("expected Z or an offset like +02:00 after the time")),
    };
    let days = days_from_civil(year as i64, month, day);
    let local = days * 86_400 + (hour * 3600 + minute * 60 + second) as i64;
    let utc = local - offset_secs;
    let utc = u64::try_from(utc).map_err(|_| bad("before the Unix epoch (1970-01-01T00:00:00Z)"))?;
    Ok((utc, nanos))
}

fn days_in_month(year: u64, month: u64) -> u64 {
    let leap = year.is_multiple_of(4) && (!year.is_multiple_of(100) || year.is_multiple_of(400));
    match month {
        2 if leap => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Howard Hinnant's civil-to-days algorithm: days since 1970-01-01.
fn days_from_civil(year: i64, month: u64, day: u64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let month = month as i64;
    let doy = (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + day as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::{days_from_civil, parse_duration, parse_rfc3339};
    use proptest::prelude::*;
    use std::time::Duration;

    #[test]
    fn durations_follow_go_syntax() {
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("10").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("10 min").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn rfc3339_times_become_unix_seconds() {
        assert_eq!(parse_rfc3339("2000-01-01T00:00:00Z"), Ok((946_684_800, 0)));
        assert_eq!(parse_rfc3339("2024-02-29T12:00:00.25Z"), Ok((1_709_208_000, 250_000_000)));
        assert_eq!(parse_rfc3339("2000-01-01T02:00:00+02:00"), Ok((946_684_800, 0)));
        assert!(parse_rfc3339("2023-02-29T00:00:00Z").unwrap_err().contains("no such date"));
        assert!(parse_rfc3339("1969-12-31T23:59:59Z").unwrap_err().contains("before the Unix epoch"));
        assert!(parse_rfc3339("tomorrow").is_err());
        assert!(parse_rfc3339("2000-01-01T00:00:00+24:00").unwrap_err().contains("offset must be"));
        assert!(parse_rfc3339("2000-01-01T00:00:00€+.+").unwrap_err().contains("expected Z or an offset"));
    }

    /// The civil date of a day count since 1970-01-01 (Hinnant's inverse), to build inputs.
    fn civil_from_days(days: i64) -> (i64, u64, u64) {
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z - era * 146_097;
        let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let day = (doy - (153 * mp + 2) / 5 + 1) as u64;
        let month = if mp < 10 { mp + 3 } else { mp - 9 } as u64;
        (yoe + era * 400 + i64::from(month <= 2), month, day)
    }

    fn unit() -> impl Strategy<Value = (&'static str, u64)> {
        prop::sample::select(vec![
            ("ns", 1),
            ("us", 1_000),
            ("µs", 1_000),
            ("ms", 1_000_000),
            ("s", 1_000_000_000),
            ("m", 60_000_000_000),
            ("h", 3_600_000_000_000),
        ])
    }

    proptest! {
        #[test]
        fn any_text_is_a_duration_or_an_error(text in "\\PC{0,24}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn any_number_and_unit_soup_is_a_duration_or_an_error(text in "[0-9.µsmhnu ]{0,24}") {
            let _ = parse_duration(&text);
        }

        #[test]
        fn go_durations_are_the_sum_of_their_parts(parts in prop::collection::vec((0u64..100_000, unit()), 1..4)) {
            let text: String = parts.iter().map(|(n, (unit, _))| format!("{n}{unit}")).collect();
            let nanos: u64 = parts.iter().map(|(n, (_, scale))| n * scale).sum();
            prop_assert_eq!(parse_duration(&text), Ok(Duration::from_nanos(nanos)));
        }

        #[test]
        fn any_text_is_a_time_or_an_error(text in "\\PC{0,32}") {
            let _ = parse_rfc3339(&text);
        }

        #[test]
        fn any_suffix_after_a_well_formed_time_is_a_time_or_an_error(
            time in "[12][09][0-9]{2}-0[1-9]-[0-2][1-8][Tt ][01][0-9]:[0-5][0-9]:[0-5][0-9]",
            // Offset-like characters and multi-byte ones, which slicing by byte must respect.
            suffix in "[+\\-Zz:.0-9é€]{0,7}",
        ) {
            let _ = parse_rfc3339(&format!("{time}{suffix}"));
        }

        #[test]
        fn rfc3339_times_round_trip(seconds in 0i64..253_402_300_800, nanos in 0u32..1_000_000_000, offset_minutes in -1439i64..=1439) {
            let local = seconds + offset_minutes * 60;
            prop_assume!((0..253_402_300_800).contains(&local));
            let (year, month, day) = civil_from_days(local.div_euclid(86_400));
            prop_assert_eq!(days_from_civil(year, month, day), local.div_euclid(86_400));
            let second_of_day = local.rem_euclid(86_400);
            let sign = if offset_minutes < 0 { '-' } else { '+' };
            let text = format!(
                "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{nanos:09}{sign}{:02}:{:02}",
                second_of_day / 3600,
                second_of_day / 60 % 60,
                second_of_day % 60,
                offset_minutes.abs() / 60,
                offset_minutes.abs() % 60,
            );
            prop_assert_eq!(parse_rfc3339(&text), Ok((seconds as u64, nanos)));
        }
    }
}
