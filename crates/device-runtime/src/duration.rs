//! Durations as people write them, in flags and config files alike: `1s`, `500ms`, `2m`, `1h 30m`
//! (humantime's syntax), or a bare number in the unit the key or flag names — seconds for `_s`
//! keys and `SECONDS` flags, minutes for `_min` keys. So `interval_s = 10`, `interval_s = "10s"`
//! and `--interval 500ms` all read as people mean them.
//!
//! The serde helpers keep each field's type (`u64` seconds, `f64` seconds, `u64` minutes), so the
//! code that uses the value does not change and `--print-config` still prints numbers.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

/// Reads `text` as a duration; a bare number counts in `unit`.
pub fn parse(text: &str, unit: Duration) -> Result<Duration, String> {
    let text = text.trim();
    if let Ok(n) = text.parse::<f64>() {
        return from_number(n, unit);
    }
    humantime::parse_duration(text)
        .map_err(|e| format!("`{text}` is not a duration ({e}); write e.g. 500ms, 10s, 2m or 1h 30m"))
}

fn from_number(n: f64, unit: Duration) -> Result<Duration, String> {
    if !n.is_finite() || n < 0.0 {
        return Err(format!("{n} is not a duration: it must be a number of {} at least 0", unit_name(unit)));
    }
    Ok(unit.mul_f64(n))
}

fn unit_name(unit: Duration) -> &'static str {
    if unit == Duration::from_secs(60) { "minutes" } else { "seconds" }
}

/// For clap: a duration flag whose bare numbers are seconds, as fractional seconds.
pub fn secs_f64_arg(text: &str) -> Result<f64, String> {
    parse(text, Duration::from_secs(1)).map(|d| d.as_secs_f64())
}

/// For clap: a duration flag whose bare numbers are seconds, in whole seconds.
pub fn secs_arg(text: &str) -> Result<u64, String> {
    whole(parse(text, Duration::from_secs(1))?, Duration::from_secs(1))
}

/// For clap: a duration flag whose bare numbers are minutes, in whole minutes.
pub fn minutes_arg(text: &str) -> Result<u64, String> {
    whole(parse(text, Duration::from_secs(60))?, Duration::from_secs(60))
}

fn whole(d: Duration, unit: Duration) -> Result<u64, String> {
    let n = d.as_secs_f64() / unit.as_secs_f64();
    if (n - n.round()).abs() > 1e-9 {
        return Err(format!("{} is not a whole number of {}", humantime::format_duration(d), unit_name(unit)));
    }
    Ok(n.round() as u64)
}

/// Reads a duration from a number (in `unit`) or a string.
struct DurationVisitor {
    unit: Duration,
}

impl Visitor<'_> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a duration such as \"10s\", \"500ms\", \"2m\", or a number of {}", unit_name(self.unit))
    }

    fn visit_u64<E: de::Error>(self, n: u64) -> Result<Duration, E> {
        from_number(n as f64, self.unit).map_err(E::custom)
    }

    fn visit_i64<E: de::Error>(self, n: i64) -> Result<Duration, E> {
        from_number(n as f64, self.unit).map_err(E::custom)
    }

    fn visit_f64<E: de::Error>(self, n: f64) -> Result<Duration, E> {
        from_number(n, self.unit).map_err(E::custom)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Duration, E> {
        parse(text, self.unit).map_err(E::custom)
    }
}

fn duration<'de, D: Deserializer<'de>>(deserializer: D, unit: Duration) -> Result<Duration, D::Error> {
    deserializer.deserialize_any(DurationVisitor { unit })
}

/// `#[serde(deserialize_with = "duration::secs")]` on a `u64` of whole seconds.
pub fn secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let unit = Duration::from_secs(1);
    whole(duration(deserializer, unit)?, unit).map_err(de::Error::custom)
}

/// `#[serde(deserialize_with = "duration::secs_f64")]` on an `f64` of seconds.
pub fn secs_f64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<f64, D::Error> {
    Ok(duration(deserializer, Duration::from_secs(1))?.as_secs_f64())
}

/// `#[serde(default, deserialize_with = "duration::opt_secs")]` on an `Option<u64>` of whole seconds.
pub fn opt_secs<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
    secs(deserializer).map(Some)
}

/// `#[serde(deserialize_with = "duration::minutes")]` on a `u64` of whole minutes.
pub fn minutes<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
    let unit = Duration::from_secs(60);
    whole(duration(deserializer, unit)?, unit).map_err(de::Error::custom)
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;

    use super::*;

    #[derive(Debug, Deserialize, PartialEq)]
    struct Keys {
        #[serde(deserialize_with = "secs")]
        refresh_s: u64,
        #[serde(deserialize_with = "secs_f64")]
        interval_s: f64,
        #[serde(default, deserialize_with = "opt_secs")]
        supervision_s: Option<u64>,
        #[serde(deserialize_with = "minutes")]
        override_min: u64,
    }

    fn keys(text: &str) -> Result<Keys, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn numbers_count_in_the_keys_unit_and_strings_say_their_own() {
        let bare = keys("refresh_s = 60\ninterval_s = 0.5\noverride_min = 30\n").unwrap();
        assert_eq!(bare, Keys { refresh_s: 60, interval_s: 0.5, supervision_s: None, override_min: 30 });
        let written =
            keys("refresh_s = \"1m\"\ninterval_s = \"500ms\"\nsupervision_s = \"10m\"\noverride_min = \"2h\"\n")
                .unwrap();
        assert_eq!(written, Keys { refresh_s: 60, interval_s: 0.5, supervision_s: Some(600), override_min: 120 });
    }

    #[test]
    fn bad_durations_say_what_to_write() {
        let err = keys("refresh_s = \"soon\"\ninterval_s = 1\noverride_min = 1\n").unwrap_err();
        assert!(err.contains("refresh_s") && err.contains("10s"), "{err}");
        let err = keys("refresh_s = \"1500ms\"\ninterval_s = 1\noverride_min = 1\n").unwrap_err();
        assert!(err.contains("whole number of seconds"), "{err}");
        let err = keys("refresh_s = -1\ninterval_s = 1\noverride_min = 1\n").unwrap_err();
        assert!(err.contains("at least 0"), "{err}");
    }

    #[test]
    fn flags_read_the_same_way() {
        assert_eq!(secs_f64_arg("1s"), Ok(1.0));
        assert_eq!(secs_f64_arg("250ms"), Ok(0.25));
        assert_eq!(secs_f64_arg("2.5"), Ok(2.5));
        assert_eq!(secs_arg("2m"), Ok(120));
        assert_eq!(minutes_arg("45"), Ok(45));
        assert_eq!(minutes_arg("1h"), Ok(60));
        assert!(secs_arg("1.5s").is_err());
        assert!(secs_f64_arg("fast").unwrap_err().contains("500ms"));
    }
}
