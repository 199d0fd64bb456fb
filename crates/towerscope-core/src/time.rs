//! UTC date and time text without a date library: the JSON log lines and the alert
//! notifiers both write RFC 3339 timestamps.

/// Days since 1970-01-01 to a civil date `(year, month, day)` (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) for a Unix second, on the stack.
///
/// ```
/// assert_eq!(&towerscope_core::utc_second(951_782_400), b"2000-02-29T00:00:00");
/// ```
pub fn utc_second(secs: i64) -> [u8; 19] {
    use std::io::Write as _;
    let (y, mo, d) = civil_from_days(secs.div_euclid(86_400));
    let rem = secs.rem_euclid(86_400);
    let mut buf = [0u8; 19];
    let mut w = &mut buf[..];
    let _ = write!(
        w,
        "{y:04}-{mo:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    buf
}

/// RFC 3339 in UTC with milliseconds (`2023-11-14T22:13:20.000Z`).
///
/// ```
/// use std::time::{Duration, SystemTime};
/// let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_700_000_000_250);
/// assert_eq!(towerscope_core::rfc3339_millis(t), "2023-11-14T22:13:20.250Z");
/// ```
pub fn rfc3339_millis(t: std::time::SystemTime) -> String {
    let d = t
        .duration_since(std::time::SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = i64::try_from(d.as_secs()).unwrap_or(i64::MAX);
    let head = utc_second(secs);
    format!(
        "{}.{:03}Z",
        std::str::from_utf8(&head).unwrap_or("1970-01-01T00:00:00"),
        d.subsec_millis()
    )
}
