//! The recorder's log, read-only: recent records and the activity chart.
//!
//! The file is opened for each request on a blocking thread (SQLite in WAL mode never blocks the
//! recorder, which writes it), so a database that appears, goes or is replaced later is simply
//! noticed on the next request. A file that is missing, a directory or not a database is a
//! [`HistoryError`] the page shows as "history unavailable: <reason>".

use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::{Message, SensorKind, SensorState, Timestamp, Topics};
use serde::{Deserialize, Serialize};
use store::classify::Kind;
use store::{Query, Row, Store};

/// The longest look back a request may ask for.
pub const MAX_SINCE: Duration = Duration::from_secs(400 * 24 * 3600);
/// The most records one request returns.
pub const MAX_LIMIT: u64 = 1000;
/// The most sensor records the chart counts (a day of changes is far fewer).
const CHART_ROWS: u64 = 200_000;
const HOUR: Duration = Duration::from_secs(3600);

/// Why history cannot be answered.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The question is wrong (400).
    #[error("{0}")]
    BadRequest(String),
    /// The log cannot be read (503).
    #[error("history unavailable: {0}")]
    Unavailable(String),
}

/// `GET /api/history` parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryParams {
    /// How far back: `24h`, `30m`, `7d` [default: 24h].
    pub since: Option<String>,
    /// One of the recorder's kinds: panel, alarm, sensor, light, phase, availability.
    pub kind: Option<String>,
    pub device: Option<String>,
    /// The most recent this many [default: 200, at most 1000].
    pub limit: Option<u64>,
}

/// `GET /api/activity` parameters.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityParams {
    /// How far back, in whole hours: `24h` [default], at most `7d`.
    pub since: Option<String>,
}

/// Openings and motion per hour, for the chart.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Activity {
    /// The start of the first hour.
    pub since: Timestamp,
    pub bucket_s: u64,
    /// Doors and windows opened, per hour, oldest first.
    pub openings: Vec<u64>,
    /// Motion detected, per hour.
    pub motion: Vec<u64>,
    /// Every record of each of the recorder's kinds, per hour.
    pub records: Vec<(String, Vec<u64>)>,
}

/// How far back `since` reaches from `now`: a duration (`24h`, the default) or a time with any
/// offset ([`Timestamp::parse_since`], as `mqtt-home history --since` reads it), in the past and
/// at most `max` ago.
fn parse_since(since: Option<&str>, now: Timestamp, max: Duration) -> Result<Duration, HistoryError> {
    let text = since.unwrap_or("24h");
    let start = Timestamp::parse_since(text, now).map_err(|e| HistoryError::BadRequest(format!("since {e}")))?;
    let back = now.since(start);
    if back.is_zero() || back > max {
        return Err(HistoryError::BadRequest(format!(
            "since `{text}` must be in the past and at most {} ago",
            humantime::format_duration(max)
        )));
    }
    Ok(back)
}

fn open(path: &Path) -> Result<Store, HistoryError> {
    if path.is_dir() {
        return Err(HistoryError::Unavailable(format!(
            "{} is a directory, not the recorder's database (dashboard.database)",
            path.display()
        )));
    }
    if !path.exists() {
        return Err(HistoryError::Unavailable(format!(
            "{} does not exist: is the recorder running, and is dashboard.database its file?",
            path.display()
        )));
    }
    Store::open_read_only(path).map_err(|e| HistoryError::Unavailable(e.to_string()))
}

async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, HistoryError> + Send + 'static,
) -> Result<T, HistoryError> {
    tokio::task::spawn_blocking(work)
        .await
        .unwrap_or_else(|e| Err(HistoryError::Unavailable(format!("the database thread failed: {e}"))))
}

/// The records `params` asks for, oldest first.
pub async fn history(database: PathBuf, params: HistoryParams) -> Result<Vec<Row>, HistoryError> {
    let since = parse_since(params.since.as_deref(), Timestamp::now(), MAX_SINCE)?;
    let kind = params.kind.as_deref().map(str::parse::<Kind>).transpose().map_err(HistoryError::BadRequest)?;
    let limit = params.limit.unwrap_or(200);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(HistoryError::BadRequest(format!("limit {limit} must be 1 to {MAX_LIMIT}")));
    }
    let query = Query {
        since: Timestamp(Timestamp::now().as_millis().saturating_sub(since.as_millis() as u64)),
        until: None,
        device: params.device,
        kind,
        limit: Some(limit),
    };
    blocking(move || open(&database)?.history(&query).map_err(|e| HistoryError::Unavailable(e.to_string()))).await
}

/// Openings and motion per hour over the hours `params` asks for, ending with the current hour.
pub async fn activity(database: PathBuf, topics: Topics, params: ActivityParams) -> Result<Activity, HistoryError> {
    let since = parse_since(params.since.as_deref(), Timestamp::now(), Duration::from_secs(7 * 24 * 3600))?;
    let hours = since.as_secs().div_ceil(3600).max(1);
    let hour_ms = HOUR.as_millis() as u64;
    let until = Timestamp((Timestamp::now().as_millis() / hour_ms + 1) * hour_ms);
    let start = Timestamp(until.as_millis() - hours * hour_ms);
    blocking(move || {
        let store = open(&database)?;
        let unavailable = |e: store::StoreError| HistoryError::Unavailable(e.to_string());
        let query =
            Query { since: start, until: Some(until), device: None, kind: Some(Kind::Sensor), limit: Some(CHART_ROWS) };
        let rows = store.history(&query).map_err(unavailable)?;
        let (mut openings, mut motion) = (vec![0u64; hours as usize], vec![0u64; hours as usize]);
        for row in rows {
            let Ok(Message::Sensor { kind, reading, .. }) =
                Message::decode(&topics, &row.topic, row.payload.as_bytes())
            else {
                continue;
            };
            let slot = (row.received.as_millis().saturating_sub(start.as_millis()) / hour_ms) as usize;
            let series = match (kind, reading.state) {
                (SensorKind::Motion, SensorState::Motion) => &mut motion,
                (SensorKind::Door | SensorKind::Window, SensorState::Open) => &mut openings,
                _ => continue,
            };
            if let Some(count) = series.get_mut(slot) {
                *count += 1;
            }
        }
        let mut records = Vec::new();
        for kind in Kind::ALL {
            records.push((kind.as_str().to_owned(), store.activity(kind, start, until, HOUR).map_err(unavailable)?));
        }
        Ok(Activity { since: start, bucket_s: HOUR.as_secs(), openings, motion, records })
    })
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_bounded_duration() {
        let now = Timestamp::parse_rfc3339("2026-12-02T12:00:00Z").unwrap();
        let since = |text| parse_since(text, now, MAX_SINCE);
        assert_eq!(since(None).unwrap(), Duration::from_secs(86_400));
        assert_eq!(since(Some("90m")).unwrap(), Duration::from_secs(5400));
        // A time, with an offset and a fraction, as the CLI takes it.
        assert_eq!(since(Some("2026-12-02T12:42:00.5+02:00")).unwrap(), Duration::from_millis(4_679_500));
        assert!(since(Some("yesterday")).unwrap_err().to_string().contains("neither a duration"));
        assert!(since(Some("0s")).is_err());
        assert!(since(Some("1000d")).is_err());
        assert!(since(Some("2026-12-03T00:00:00Z")).is_err(), "in the future");
    }

    #[test]
    fn a_missing_file_or_a_directory_is_unavailable_with_a_reason() {
        let dir = tempfile::tempdir().unwrap();
        let err = open(dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("history unavailable: ") && err.contains("is a directory"), "{err}");
        let err = open(&dir.path().join("none.db")).unwrap_err().to_string();
        assert!(err.contains("does not exist"), "{err}");
    }
}
