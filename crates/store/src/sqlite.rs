//! The event log on disk: one SQLite file, written by the recorder, read by `mqtt-home history`
//! and the dashboard.
//!
//! Schema (version 1):
//! - `record`: one row per message kept (see [`crate::Record`]); `received_ms` is the
//!   recorder's clock, `ts_ms` the message's own, `digest` a hash of topic and payload to find a
//!   redelivered message. Indexed by time, by device and by digest.
//! - `unreadable`: messages the contract cannot read, raw, with the reason.
//! - `latest`: the last state stored per state topic, so a restart knows which states are changes.
//!
//! WAL mode: readers (history, the dashboard) never block the writer. A group of messages is one
//! transaction; with `synchronous = FULL` (the default) a commit is on the disk when
//! [`Store::commit`] returns, so acknowledging the messages then loses nothing to a power cut.
//! Opening a file that is not a database, a directory, a full disk: each is a [`StoreError`] that
//! says what and where, never a panic.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use protocol::Timestamp;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

use crate::classify::{Entry, Kind};

const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS record (
    id INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    ts_ms INTEGER,
    kind TEXT NOT NULL,
    device TEXT,
    user TEXT,
    topic TEXT NOT NULL,
    summary TEXT NOT NULL,
    payload TEXT NOT NULL,
    redelivered INTEGER NOT NULL DEFAULT 0,
    digest INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS record_by_time ON record(received_ms);
CREATE INDEX IF NOT EXISTS record_by_digest ON record(digest);
CREATE INDEX IF NOT EXISTS record_by_device ON record(device, received_ms);
CREATE TABLE IF NOT EXISTS unreadable (
    id INTEGER PRIMARY KEY,
    received_ms INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    error TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS latest (
    topic TEXT PRIMARY KEY,
    state_key TEXT NOT NULL
) WITHOUT ROWID;
";

/// Why the log cannot be opened, written or read.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot open the database {path}: {source}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("database {path}: {source}")]
    Sql { path: PathBuf, source: rusqlite::Error },
    #[error("database {path} was written by a newer recorder (schema {found}, this one knows {SCHEMA_VERSION})")]
    Newer { path: PathBuf, found: i64 },
}

/// How durable a commit is before its messages are acknowledged.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Durability {
    /// On the disk (fsync per commit): survives a power cut.
    Full,
    /// In the operating system (fsync at checkpoints): survives the recorder being killed, not a
    /// power cut.
    Normal,
}

/// What a commit did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Committed {
    pub records: usize,
    pub unreadable: usize,
    /// Redelivered events found already stored, not stored twice.
    pub duplicates: usize,
}

/// What to keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Records older than this go (the panel's events excepted).
    pub max_age: Duration,
    /// The panel's events older than this go (at least a year).
    pub panel_max_age: Duration,
    /// At most this many records besides the panel's; the oldest go first.
    pub max_rows: u64,
}

/// What one pruning removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pruned {
    pub records: usize,
    pub unreadable: usize,
}

/// A question for the log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Query {
    pub since: Timestamp,
    pub until: Option<Timestamp>,
    pub device: Option<String>,
    pub kind: Option<Kind>,
    /// The most recent `limit` records (still printed oldest first).
    pub limit: Option<u64>,
}

/// A record read back.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Row {
    pub id: i64,
    pub received: Timestamp,
    pub ts: Option<Timestamp>,
    pub kind: String,
    pub device: Option<String>,
    pub user: Option<String>,
    pub topic: String,
    pub summary: String,
    pub payload: String,
    pub redelivered: bool,
}

/// The log, open for writing (the recorder) or reading (everyone else).
pub struct Store {
    conn: Connection,
    path: PathBuf,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).finish()
    }
}

impl Store {
    /// Opens (creating if needed) the log for writing.
    pub fn open(path: &Path, durability: Durability) -> Result<Store, StoreError> {
        let open = |source| StoreError::Open { path: path.to_owned(), source };
        let conn = Connection::open(path).map_err(open)?;
        let store = Store { conn, path: path.to_owned() };
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        // `journal_mode` answers with a row; a file that is not a database fails here, on first use.
        store
            .conn
            .query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))
            .and_then(|()| store.conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};")))
            .and_then(|()| store.conn.busy_timeout(Duration::from_secs(5)))
            .map_err(open)?;
        let found: i64 = store.conn.query_row("PRAGMA user_version", [], |r| r.get(0)).map_err(|e| store.sql(e))?;
        if found > SCHEMA_VERSION {
            return Err(StoreError::Newer { path: path.to_owned(), found });
        }
        store.conn.execute_batch(SCHEMA).map_err(|e| store.sql(e))?;
        store.conn.execute_batch(&format!("PRAGMA user_version = {SCHEMA_VERSION};")).map_err(|e| store.sql(e))?;
        Ok(store)
    }

    /// Opens an existing log read-only (history, the dashboard); never creates one.
    pub fn open_read_only(path: &Path) -> Result<Store, StoreError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX | OpenFlags::SQLITE_OPEN_URI;
        let conn = Connection::open_with_flags(path, flags)
            .map_err(|source| StoreError::Open { path: path.to_owned(), source })?;
        let store = Store { conn, path: path.to_owned() };
        store.conn.busy_timeout(Duration::from_secs(5)).map_err(|e| store.sql(e))?;
        // A file that is not a database (or not ours) fails on its first query.
        store.conn.query_row("SELECT count(*) FROM latest", [], |_| Ok(())).map_err(|e| store.sql(e))?;
        Ok(store)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn sql(&self, source: rusqlite::Error) -> StoreError {
        StoreError::Sql { path: self.path.clone(), source }
    }

    /// The last state stored per topic.
    pub fn latest(&self) -> Result<HashMap<String, String>, StoreError> {
        let mut statement = self.conn.prepare("SELECT topic, state_key FROM latest").map_err(|e| self.sql(e))?;
        let rows = statement
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))
            .and_then(|rows| rows.collect::<Result<HashMap<_, _>, _>>())
            .map_err(|e| self.sql(e))?;
        Ok(rows)
    }

    /// Stores `entries` in one transaction: all of them or none. A redelivered message with a
    /// time of its own, already stored (same topic and payload), is not stored again.
    pub fn commit(&mut self, entries: &[Entry]) -> Result<Committed, StoreError> {
        let path = self.path.clone();
        let sql = |source| StoreError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sql)?;
        let mut done = Committed::default();
        {
            let mut insert = tx
                .prepare_cached(
                    "INSERT INTO record
                     (received_ms, ts_ms, kind, device, user, topic, summary, payload, redelivered, digest)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)",
                )
                .map_err(sql)?;
            let mut latest =
                tx.prepare_cached("INSERT OR REPLACE INTO latest (topic, state_key) VALUES (?1, ?2)").map_err(sql)?;
            let mut unreadable = tx
                .prepare_cached("INSERT INTO unreadable (received_ms, topic, payload, error) VALUES (?1, ?2, ?3, ?4)")
                .map_err(sql)?;
            let mut seen = tx
                .prepare_cached("SELECT 1 FROM record WHERE digest = ?1 AND topic = ?2 AND payload = ?3 LIMIT 1")
                .map_err(sql)?;
            for entry in entries {
                match entry {
                    Entry::Record(r) => {
                        // A message that carries its own time and is already stored word for
                        // word is the same message again (it was committed, its ack did not get
                        // out; rumqttd redelivers without DUP). One without a time of its own (a
                        // bare `ON`) cannot be told from an earlier, real repeat: dropping it could
                        // lose a command, so it is stored, flagged `redelivered` if it came DUP.
                        let digest = digest(&r.topic, &r.payload);
                        if r.ts.is_some() && (r.redelivered || r.state_key.is_none()) {
                            let stored = seen
                                .query_row(params![digest, r.topic, r.payload], |_| Ok(()))
                                .optional()
                                .map_err(sql)?;
                            if stored.is_some() {
                                done.duplicates += 1;
                                continue;
                            }
                        }
                        insert
                            .execute(params![
                                millis(r.received),
                                r.ts.map(millis),
                                r.kind.as_str(),
                                r.device,
                                r.user,
                                r.topic,
                                r.summary,
                                r.payload,
                                r.redelivered,
                                digest
                            ])
                            .map_err(sql)?;
                        if let Some(key) = &r.state_key {
                            latest.execute(params![r.topic, key]).map_err(sql)?;
                        }
                        done.records += 1;
                    }
                    Entry::Unreadable(u) => {
                        unreadable.execute(params![millis(u.received), u.topic, u.payload, u.error]).map_err(sql)?;
                        done.unreadable += 1;
                    }
                }
            }
        }
        tx.commit().map_err(sql)?;
        Ok(done)
    }

    /// Removes what `retention` no longer keeps, as of `now`.
    pub fn prune(&mut self, retention: &Retention, now: Timestamp) -> Result<Pruned, StoreError> {
        let before = |age: Duration| millis(Timestamp(now.0.saturating_sub(age.as_millis() as u64)));
        let panel = Kind::Panel.as_str();
        let path = self.path.clone();
        let sql = |source| StoreError::Sql { path: path.clone(), source };
        let tx = self.conn.transaction().map_err(sql)?;
        let mut records = tx
            .execute(
                "DELETE FROM record WHERE received_ms < ?1 AND (kind != ?3 OR received_ms < ?2)",
                params![before(retention.max_age), before(retention.panel_max_age), panel],
            )
            .map_err(sql)?;
        let cut: Option<i64> = tx
            .query_row(
                "SELECT id FROM record WHERE kind != ?1 ORDER BY id DESC LIMIT 1 OFFSET ?2",
                params![panel, retention.max_rows as i64],
                |r| r.get(0),
            )
            .optional()
            .map_err(sql)?;
        if let Some(cut) = cut {
            records +=
                tx.execute("DELETE FROM record WHERE kind != ?1 AND id <= ?2", params![panel, cut]).map_err(sql)?;
        }
        let unreadable = tx
            .execute("DELETE FROM unreadable WHERE received_ms < ?1", params![before(retention.max_age)])
            .map_err(sql)?;
        tx.commit().map_err(sql)?;
        Ok(Pruned { records, unreadable })
    }

    /// The records `query` asks for, oldest first.
    pub fn history(&self, query: &Query) -> Result<Vec<Row>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT id, received_ms, ts_ms, kind, device, user, topic, summary, payload, redelivered FROM record
                 WHERE received_ms >= ?1 AND received_ms <= ?2
                   AND (?3 IS NULL OR device = ?3) AND (?4 IS NULL OR kind = ?4)
                 ORDER BY id DESC LIMIT ?5",
            )
            .map_err(|e| self.sql(e))?;
        let until = query.until.map_or(i64::MAX, millis);
        let limit = query.limit.map_or(-1, |l| l as i64);
        let kind = query.kind.map(Kind::as_str);
        let mut rows = statement
            .query_map(params![millis(query.since), until, query.device, kind, limit], |r| {
                Ok(Row {
                    id: r.get(0)?,
                    received: Timestamp(r.get::<_, i64>(1)? as u64),
                    ts: r.get::<_, Option<i64>>(2)?.map(|t| Timestamp(t as u64)),
                    kind: r.get(3)?,
                    device: r.get(4)?,
                    user: r.get(5)?,
                    topic: r.get(6)?,
                    summary: r.get(7)?,
                    payload: r.get(8)?,
                    redelivered: r.get(9)?,
                })
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        rows.reverse();
        Ok(rows)
    }

    /// How many records of `kind` fall in each `bucket` from `since` to `until`, oldest first
    /// (the dashboard's activity chart).
    pub fn activity(
        &self,
        kind: Kind,
        since: Timestamp,
        until: Timestamp,
        bucket: Duration,
    ) -> Result<Vec<u64>, StoreError> {
        let width = bucket.as_millis().max(1) as i64;
        let buckets = (until.0.saturating_sub(since.0) as i64 + width - 1) / width;
        let mut counts = vec![0u64; buckets.max(0) as usize];
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT (received_ms - ?1) / ?3, count(*) FROM record
                 WHERE kind = ?4 AND received_ms >= ?1 AND received_ms < ?2 GROUP BY 1",
            )
            .map_err(|e| self.sql(e))?;
        let rows = statement
            .query_map(params![millis(since), millis(until), width, kind.as_str()], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?))
            })
            .and_then(|rows| rows.collect::<Result<Vec<_>, _>>())
            .map_err(|e| self.sql(e))?;
        for (index, count) in rows {
            if let Some(slot) = counts.get_mut(index as usize) {
                *slot = count as u64;
            }
        }
        Ok(counts)
    }

    /// When each device last went offline (its last `offline` availability record).
    pub fn went_offline(&self) -> Result<HashMap<String, Timestamp>, StoreError> {
        let mut statement = self
            .conn
            .prepare_cached(
                "SELECT device, max(received_ms) FROM record
                 WHERE kind = ?1 AND summary = 'offline' AND device IS NOT NULL GROUP BY device",
            )
            .map_err(|e| self.sql(e))?;
        statement
            .query_map(params![Kind::Availability.as_str()], |r| {
                Ok((r.get::<_, String>(0)?, Timestamp(r.get::<_, i64>(1)? as u64)))
            })
            .and_then(|rows| rows.collect::<Result<HashMap<_, _>, _>>())
            .map_err(|e| self.sql(e))
    }

    /// Records of `kind`.
    pub fn count(&self, kind: Kind) -> Result<u64, StoreError> {
        self.conn
            .query_row("SELECT count(*) FROM record WHERE kind = ?1", params![kind.as_str()], |r| r.get::<_, i64>(0))
            .map(|n| n as u64)
            .map_err(|e| self.sql(e))
    }

    /// Rows in `record` and `unreadable`.
    pub fn counts(&self) -> Result<(u64, u64), StoreError> {
        let count = |table: &str| -> Result<u64, StoreError> {
            self.conn
                .query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get::<_, i64>(0))
                .map(|n| n as u64)
                .map_err(|e| self.sql(e))
        };
        Ok((count("record")?, count("unreadable")?))
    }
}

/// FNV-1a of topic and payload: stable across builds (the file outlives the binary), as an
/// SQLite integer.
fn digest(topic: &str, payload: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in topic.bytes().chain([0]).chain(payload.bytes()) {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3);
    }
    hash as i64
}

fn millis(t: Timestamp) -> i64 {
    i64::try_from(t.0).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use protocol::Topics;

    use super::*;
    use crate::classify::classify;

    const HOUR: Duration = Duration::from_secs(3600);

    fn entry(topic: &str, payload: &str, at: u64, redelivered: bool) -> Entry {
        classify(&Topics::default(), topic, payload.as_bytes(), redelivered, Timestamp(at))
    }

    fn open() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(&dir.path().join("home.db"), Durability::Normal).unwrap();
        (dir, store)
    }

    #[test]
    fn a_commit_is_read_back_in_order_with_its_latest_states() {
        let (_dir, mut store) = open();
        let entries = [
            entry("home/security/door/front", "OPEN", 1_000, false),
            entry("home/control/alarm", "ON", 2_000, false),
            entry("home/security/door/front", "MOTION", 3_000, false),
        ];
        let done = store.commit(&entries).unwrap();
        assert_eq!(done, Committed { records: 2, unreadable: 1, duplicates: 0 });
        let rows = store.history(&Query::default()).unwrap();
        let summaries: Vec<&str> = rows.iter().map(|r| r.summary.as_str()).collect();
        assert_eq!(summaries, ["door OPEN", "siren command ON"]);
        assert_eq!(store.latest().unwrap().get("home/security/door/front").map(String::as_str), Some("OPEN"));
        assert_eq!(store.counts().unwrap(), (2, 1));
    }

    #[test]
    fn a_redelivered_event_already_stored_is_not_stored_twice() {
        let (_dir, mut store) = open();
        let event = r#"{"event":"armed","mode":"away","message":"armed away","device_id":"panel","ts":"2026-11-26T03:40:47.000Z"}"#;
        store.commit(&[entry("home/security/events", event, 1_000, false)]).unwrap();
        let done = store
            .commit(&[
                entry("home/security/events", event, 2_000, true),
                entry("home/control/alarm", "OFF", 2_000, true),
            ])
            .unwrap();
        assert_eq!((done.records, done.duplicates), (1, 1));
        // Without a time of its own a repeat cannot be told from a redelivery: kept, and flagged.
        store.commit(&[entry("home/control/alarm", "ON", 3_000, false)]).unwrap();
        let again = store.commit(&[entry("home/control/alarm", "ON", 4_000, true)]).unwrap();
        assert_eq!((again.records, again.duplicates), (1, 0), "a bare command is never dropped as a copy");
        let rows = store.history(&Query::default()).unwrap();
        assert!(rows.iter().any(|r| r.summary == "siren command ON" && r.redelivered));
    }

    #[test]
    fn queries_filter_by_time_device_kind_and_limit() {
        let (_dir, mut store) = open();
        let entries: Vec<Entry> = (0..10)
            .map(|i| {
                let id = if i % 2 == 0 { "front" } else { "back" };
                let state = if i % 4 < 2 { "OPEN" } else { "CLOSED" };
                entry(&format!("home/security/door/{id}"), state, i * 1000, false)
            })
            .chain([entry("home/control/alarm", "ON", 10_000, false)])
            .collect();
        store.commit(&entries).unwrap();
        let q = |since, device: Option<&str>, kind, limit| Query {
            since: Timestamp(since),
            until: None,
            device: device.map(str::to_owned),
            kind,
            limit,
        };
        assert_eq!(store.history(&q(0, None, None, None)).unwrap().len(), 11);
        assert_eq!(store.history(&q(5_000, None, None, None)).unwrap().len(), 6);
        assert_eq!(store.history(&q(0, Some("front"), None, None)).unwrap().len(), 5);
        assert_eq!(store.history(&q(0, None, Some(Kind::Alarm), None)).unwrap().len(), 1);
        let last = store.history(&q(0, None, Some(Kind::Sensor), Some(3))).unwrap();
        let times: Vec<u64> = last.iter().map(|r| r.received.0).collect();
        assert_eq!(times, [7_000, 8_000, 9_000], "the most recent, oldest first");
    }

    #[test]
    fn pruning_keeps_the_panels_events_a_year_and_bounds_the_rest() {
        let (_dir, mut store) = open();
        let day = 24 * HOUR.as_millis() as u64;
        let event = r#"{"event":"armed","device_id":"panel","ts":"2026-11-26T08:00:00.000Z","message":""}"#;
        let entries = [
            entry("home/security/events", event, 0, false),
            entry("home/control/alarm", "ON", 0, false),
            entry("home/control/alarm", "OFF", 40 * day, false),
            entry("home/control/alarm", "ON", 41 * day, false),
            entry("home/control/alarm", "OFF", 42 * day, false),
        ];
        store.commit(&entries).unwrap();
        let retention = Retention { max_age: 30 * 24 * HOUR, panel_max_age: 400 * 24 * HOUR, max_rows: 2 };
        let pruned = store.prune(&retention, Timestamp(45 * day)).unwrap();
        assert_eq!(pruned.records, 2, "one too old, one over the row bound");
        let kinds: Vec<String> = store
            .history(&Query::default())
            .unwrap()
            .into_iter()
            .map(|r| format!("{} {}", r.kind, r.summary))
            .collect();
        assert_eq!(kinds, ["panel armed", "alarm siren command ON", "alarm siren command OFF"]);
        let later = store.prune(&retention, Timestamp(401 * day)).unwrap();
        assert_eq!(later.records, 3);
    }

    #[test]
    fn activity_counts_per_bucket() {
        let (_dir, mut store) = open();
        let ms = HOUR.as_millis() as u64;
        let entries: Vec<Entry> = [0, 1, ms + 5, 3 * ms]
            .iter()
            .enumerate()
            .map(|(i, at)| entry(&format!("home/security/motion/m{i}"), "MOTION", *at, false))
            .collect();
        store.commit(&entries).unwrap();
        let counts = store.activity(Kind::Sensor, Timestamp(0), Timestamp(4 * ms), HOUR).unwrap();
        assert_eq!(counts, [2, 1, 0, 1]);
    }

    #[test]
    fn what_is_not_a_database_is_an_error_that_names_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let e = Store::open(dir.path(), Durability::Full).unwrap_err().to_string();
        assert!(e.contains(&dir.path().display().to_string()), "{e}");
        let junk = dir.path().join("junk.db");
        std::fs::write(&junk, b"this is not a database, it is a text file of some length......").unwrap();
        assert!(Store::open(&junk, Durability::Full).is_err());
        assert!(Store::open_read_only(&junk).is_err());
        assert!(Store::open_read_only(&dir.path().join("missing.db")).is_err(), "history never creates a log");
    }
}
