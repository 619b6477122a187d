//! The one time format of plexusctl's output: RFC 3339 in UTC (`2023-11-14T22:13:20Z`),
//! in tables, JSON, YAML and exports alike. The store keeps Unix seconds; they are turned
//! into text only here, and `import` reads both forms back.

use serde::Serializer;
use serde_json::Value;

/// Fields of the store's records (allocations, history events, blocks, network records)
/// that hold Unix seconds.
pub const TIME_FIELDS: &[&str] = &["created_at", "updated_at", "at", "claimed_at", "emptied_at"];

/// Fields holding opaque user data (endpoint details, network objects): never rewritten.
const OPAQUE_FIELDS: &[&str] = &["details", "definition", "networks"];

/// `secs` since the Unix epoch as `YYYY-MM-DDTHH:MM:SSZ`.
pub fn rfc3339(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)` (also with a space or `t` for `T`,
/// `z` for `Z`) into Unix seconds; fractions are dropped.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let b = text.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || !matches!(b[10], b'T' | b't' | b' ') {
        return None;
    }
    if b[13] != b':' || b[16] != b':' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let s = text.get(range)?;
        s.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| s.parse().ok())?
    };
    let (year, month, day) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hour, minute, second) = (num(11..13)?, num(14..16)?, num(17..19)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    if second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ => {
            let sign = match rest.as_bytes().first()? {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = rest[1..].split_once(':')?;
            if h.len() != 2 || m.len() != 2 {
                return None;
            }
            sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60)
        }
    };
    let days = days_from_civil(year, month, day);
    Some(days * 86_400 + hour * 3600 + minute * 60 + second - offset)
}

/// Serializes Unix seconds as RFC 3339 (for `#[serde(serialize_with)]`).
pub fn serialize<S: Serializer>(secs: &i64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&rfc3339(*secs))
}

/// Replaces every number under one of [`TIME_FIELDS`] in `value` (at any depth) by its
/// RFC 3339 text: for the store's own records printed as JSON or YAML.
pub fn times_to_text(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, field) in object.iter_mut() {
                if TIME_FIELDS.contains(&key.as_str())
                    && let Some(secs) = field.as_i64()
                {
                    *field = Value::String(rfc3339(secs));
                } else if !OPAQUE_FIELDS.contains(&key.as_str()) {
                    times_to_text(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(times_to_text),
        _ => {}
    }
}

/// The inverse of [`times_to_text`]: RFC 3339 text under one of [`TIME_FIELDS`] becomes
/// Unix seconds again (numbers are left alone, so both forms are read).
pub fn times_to_seconds(value: &mut Value) {
    match value {
        Value::Object(object) => {
            for (key, field) in object.iter_mut() {
                if TIME_FIELDS.contains(&key.as_str())
                    && let Some(secs) = field.as_str().and_then(parse_rfc3339)
                {
                    *field = Value::from(secs);
                } else if !OPAQUE_FIELDS.contains(&key.as_str()) {
                    times_to_seconds(field);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(times_to_seconds),
        _ => {}
    }
}

/// Howard Hinnant's civil_from_days: (year, month, day) of a day count since 1970-01-01.
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(month <= 2), month, day)
}

/// Howard Hinnant's days_from_civil, the inverse of [`civil_from_days`].
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use serde_json::json;

    use super::*;

    #[test]
    fn known_instants() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59Z");
        assert_eq!(parse_rfc3339("2023-11-14T22:13:20Z"), Some(1_700_000_000));
        assert_eq!(
            parse_rfc3339("2023-11-15T00:13:20.5+02:00"),
            Some(1_700_000_000)
        );
        for bad in [
            "2023-11-14",
            "2023-13-14T22:13:20Z",
            "2023-11-14T22:13:20",
            "x",
        ] {
            assert_eq!(parse_rfc3339(bad), None, "{bad}");
        }
    }

    #[test]
    fn record_times_become_text_and_back() {
        let mut v = json!({"allocations": [{"ip": "10.0.0.1", "created_at": 1_700_000_000,
                           "owner": {"details": {"at": 5}}}],
                           "history": [{"at": 0, "seq": 7}], "revision": 3});
        times_to_text(&mut v);
        assert_eq!(v["allocations"][0]["created_at"], "2023-11-14T22:13:20Z");
        assert_eq!(v["history"][0]["at"], "1970-01-01T00:00:00Z");
        assert_eq!(v["history"][0]["seq"], 7, "other numbers stay numbers");
        assert_eq!(
            v["allocations"][0]["owner"]["details"]["at"], 5,
            "details are opaque"
        );
        assert_eq!(v["revision"], 3);
        times_to_seconds(&mut v);
        assert_eq!(v["allocations"][0]["created_at"], 1_700_000_000);
        assert_eq!(v["history"][0]["at"], 0);
    }

    proptest! {
        #[test]
        fn text_round_trips(secs in -62_135_596_800i64..253_402_300_799) {
            prop_assert_eq!(parse_rfc3339(&rfc3339(secs)), Some(secs));
        }
    }
}
