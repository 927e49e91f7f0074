//! Timestamps on the wire: printed as RFC 3339 in UTC with milliseconds
//! (`2026-11-22T18:04:05.120Z`), read with any offset or as an epoch number.
//!
//! Inside the code a [`Timestamp`] is milliseconds since the Unix epoch, so deadlines can be
//! persisted and compared after a restart. Parsing and printing are jiff's: a hand-written
//! calendar here refused `+00:00`, which is what Python's `isoformat()` writes.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Wall-clock time in milliseconds since the Unix epoch (UTC).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The current wall-clock time.
    pub fn now() -> Timestamp {
        let since_epoch = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        Timestamp(since_epoch.as_millis() as u64)
    }

    pub fn from_secs(secs: u64) -> Timestamp {
        Timestamp(secs * 1000)
    }

    pub fn as_millis(self) -> u64 {
        self.0
    }

    /// This time plus `d`, saturating.
    pub fn plus(self, d: std::time::Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_millis() as u64))
    }

    /// How long after `earlier` this is; zero when `earlier` is later.
    pub fn since(self, earlier: Timestamp) -> std::time::Duration {
        std::time::Duration::from_millis(self.0.saturating_sub(earlier.0))
    }

    /// Parses an RFC 3339 time with any offset (`Z`, `+00:00` as Python's `isoformat()` writes
    /// it, `+01:00`), fractional seconds optional; jiff reads it.
    pub fn parse_rfc3339(s: &str) -> Option<Timestamp> {
        let t: jiff::Timestamp = s.trim().parse().ok()?;
        u64::try_from(t.as_millisecond()).ok().map(Timestamp)
    }

    /// A moment in the past as people write it, for `history --since` and `/api/history`: a
    /// duration back from `now` (`90m`, `24h`, `7d`, `1h30m`), or a time — RFC 3339 with any
    /// offset and fraction (`2026-12-02T12:42:00+02:00`, `2026-12-02T12:42:00.5+02:00`,
    /// `2026-12-02T10:42:00Z`) or an epoch number. The error says what is accepted.
    pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
        let text = text.trim();
        if let Ok(back) = humantime::parse_duration(text) {
            return Ok(Timestamp(now.0.saturating_sub(u64::try_from(back.as_millis()).unwrap_or(u64::MAX))));
        }
        if let Some(at) = Timestamp::parse_rfc3339(text) {
            return Ok(at);
        }
        if let Some(at) = text.parse::<f64>().ok().and_then(Timestamp::from_epoch) {
            return Ok(at);
        }
        Err(format!(
            "`{text}` is neither a duration (90m, 24h, 7d) nor a time (2026-12-02T12:42:00+02:00, or an epoch number)"
        ))
    }

    /// An epoch number as devices send it: seconds (a fraction allowed), or milliseconds when
    /// it is too large to be seconds (1e11 seconds is the year 5138; 1e11 milliseconds, 1973).
    pub fn from_epoch(n: f64) -> Option<Timestamp> {
        if !n.is_finite() || n < 0.0 {
            return None;
        }
        let ms = if n >= 1e11 { n } else { n * 1000.0 };
        // jiff's range ends in the year 9999: 253 402 300 799 999 ms.
        (ms <= 253_402_300_799_999.0).then(|| Timestamp(ms.round() as u64))
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC with milliseconds; a time past jiff's range (the end of the year 9999) prints as its end.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = i64::try_from(self.0)
            .ok()
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
            .unwrap_or(jiff::Timestamp::MAX);
        write!(f, "{t:.3}")
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    /// An RFC 3339 string with any offset, or an epoch number (see [`Timestamp::from_epoch`]).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = Timestamp;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 time like 2026-11-22T18:04:05.120Z, or an epoch number")
            }

            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<Timestamp, E> {
                Timestamp::parse_rfc3339(s)
                    .ok_or_else(|| E::custom(format!("`{s}` is not an RFC 3339 time like 2026-11-22T18:04:05.120Z")))
            }

            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Timestamp, E> {
                self.visit_f64(n as f64)
            }

            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Timestamp, E> {
                self.visit_f64(n as f64)
            }

            fn visit_f64<E: serde::de::Error>(self, n: f64) -> Result<Timestamp, E> {
                Timestamp::from_epoch(n).ok_or_else(|| E::custom(format!("{n} is not a time since the epoch")))
            }
        }
        deserializer.deserialize_any(Visitor)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_reads_durations_and_times_with_any_offset_and_fraction() {
        use super::Timestamp;
        let now = Timestamp::parse_rfc3339("2026-12-02T12:00:00Z").unwrap();
        let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
        let cases = [
            ("90m", at("2026-12-02T10:30:00Z")),
            ("24h", at("2026-12-01T12:00:00Z")),
            ("7d", at("2026-11-25T12:00:00Z")),
            ("1h 30m", at("2026-12-02T10:30:00Z")),
            // The finding: an offset was refused, and a fraction with an offset read as UTC.
            ("2026-12-02T12:42:00+02:00", at("2026-12-02T10:42:00Z")),
            ("2026-12-02T12:42:00.5+02:00", at("2026-12-02T10:42:00.500Z")),
            ("2026-12-02T10:42:00Z", at("2026-12-02T10:42:00Z")),
            ("2026-12-02T05:42:00-05:00", at("2026-12-02T10:42:00Z")),
            (" 2026-12-02t10:42:00.25z ", at("2026-12-02T10:42:00.250Z")),
            ("1796220000", Timestamp(1_796_220_000_000)),
            ("1796220000123", Timestamp(1_796_220_000_123)),
        ];
        for (text, want) in cases {
            assert_eq!(Timestamp::parse_since(text, now), Ok(want), "{text}");
        }
        for bad in ["yesterday", "", "12:42", "2026-13-02T00:00:00Z", "-5m"] {
            let error = Timestamp::parse_since(bad, now).unwrap_err();
            assert!(error.contains("neither a duration"), "{bad}: {error}");
        }
    }

    use super::*;

    #[test]
    fn formats_known_instants() {
        assert_eq!(Timestamp(0).to_string(), "1970-01-01T00:00:00.000Z");
        assert_eq!(Timestamp(951_782_400_000).to_string(), "2000-02-29T00:00:00.000Z");
        assert_eq!(Timestamp(1_795_370_645_120).to_string(), "2026-11-22T18:04:05.120Z");
    }

    #[test]
    fn parse_is_the_inverse_of_display() {
        for ms in [0, 1, 951_782_400_000, 1_795_370_645_120, 4_102_444_799_999] {
            let t = Timestamp(ms);
            assert_eq!(Timestamp::parse_rfc3339(&t.to_string()), Some(t));
        }
        assert_eq!(Timestamp::parse_rfc3339("2026-11-22T18:04:05Z"), Some(Timestamp(1_795_370_645_000)));
    }

    #[test]
    fn any_offset_and_epoch_numbers_are_read() {
        let at = Timestamp(1_795_370_645_120);
        let t = Some(at);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-22T18:04:05.120+00:00"), t);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-22T19:04:05.120+01:00"), t);
        assert_eq!(Timestamp::parse_rfc3339("2026-11-22T18:04:05.120782+00:00"), t);
        assert_eq!(Timestamp::from_epoch(1_795_370_645.12), t);
        assert_eq!(Timestamp::from_epoch(1_795_370_645_120.0), t);
        assert_eq!(Timestamp::from_epoch(-1.0), None);
        let read = |json: &str| serde_json::from_str::<Timestamp>(json).map_err(|e| e.to_string());
        assert_eq!(read("1795370645.12"), Ok(at));
        assert_eq!(read(r#""2026-11-22T18:04:05.120+00:00""#), Ok(at));
        assert!(read(r#""yesterday""#).unwrap_err().contains("`yesterday` is not an RFC 3339 time"));
        assert!(Timestamp(u64::MAX).to_string().starts_with("9999-12-"), "past the range: its end");
    }

    #[test]
    fn parse_rejects_malformed_times() {
        for bad in ["", "2026-11-22", "2026-13-01T00:00:00Z", "2026-11-22T18:04:05.Z", "x026-11-22T18:04:05Z"] {
            assert_eq!(Timestamp::parse_rfc3339(bad), None, "{bad}");
        }
    }
}
