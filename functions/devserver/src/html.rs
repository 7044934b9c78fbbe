//! The few helpers the pages are rendered with (their templates, maud, escape every value):
//! percent-encoding for links, JSON re-indented without being re-parsed, and UTC times.

use std::fmt::Write;

/// One path segment or query value: every byte but the unreserved ones percent-encoded (a
/// key's `#`, `/`, `%` and `?` included).
pub fn pct(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 3);
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~') {
            out.push(byte as char);
        } else {
            let _ = write!(out, "%{byte:02X}");
        }
    }
    out
}

/// At most `max` characters, with `…` where some were cut.
pub fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_string(),
    }
}

pub use webhook_core::providers::pretty_json;

/// Epoch milliseconds as `2026-11-25 18:30:00 UTC`.
pub fn utc(ms: i64) -> String {
    let seconds = ms.div_euclid(1000);
    let (days, of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        of_day / 3600,
        of_day % 3600 / 60,
        of_day % 60
    )
}

/// How long ago, roughly: `5 s ago`, `3 min ago`, `2 h ago`, `4 d ago`.
pub fn ago(ms: i64, now_ms: i64) -> String {
    let seconds = (now_ms - ms).max(0) / 1000;
    match seconds {
        0..60 => format!("{seconds} s ago"),
        60..3600 => format!("{} min ago", seconds / 60),
        3600..86_400 => format!("{} h ago", seconds / 3600),
        _ => format!("{} d ago", seconds / 86_400),
    }
}

/// The proleptic Gregorian date of a day since 1970-01-01 (Howard Hinnant's algorithm).
fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_percent_encoded_whole() {
        assert_eq!(
            pct("magicline#studio-1001#a/b%c d?"),
            "magicline%23studio-1001%23a%2Fb%25c%20d%3F"
        );
        assert_eq!(pct("ü"), "%C3%BC");
    }

    #[test]
    fn json_is_reindented_without_touching_values() {
        let text =
            r#"{"id":18446744073709551617,"s":"a, b: {c}\" [d]","e":[],"o":{ },"n":[1,2.50]}"#;
        let pretty = pretty_json(text).unwrap();
        assert_eq!(
            pretty,
            "{\n  \"id\": 18446744073709551617,\n  \"s\": \"a, b: {c}\\\" [d]\",\n  \"e\": [],\n  \"o\": {},\n  \"n\": [\n    1,\n    2.50\n  ]\n}"
        );
        let reparsed: serde_json::Value = serde_json::from_str(&pretty).unwrap();
        assert_eq!(
            reparsed,
            serde_json::from_str::<serde_json::Value>(text).unwrap()
        );
        assert_eq!(pretty_json("{\"a\": 1"), None);
        assert_eq!(pretty_json("not json"), None);
    }

    #[test]
    fn times_are_utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_795_640_400_000), "2026-11-25 21:00:00 UTC");
        assert_eq!(utc(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(ago(1_000, 62_000), "1 min ago");
    }

    #[test]
    fn long_text_is_cut_on_a_character() {
        assert_eq!(cut("äöü", 2), "äö…");
        assert_eq!(cut("abc", 3), "abc");
    }
}
