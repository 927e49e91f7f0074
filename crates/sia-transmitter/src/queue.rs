//! The reports waiting for the centre, on disk: an event accepted for reporting is reported,
//! even across a `kill -9`.
//!
//! The whole queue is one small JSON file, written to a temporary file, synced, and renamed over
//! the old one (then the directory is synced): a crash leaves the old queue or the new one, never
//! half of either. It is written when a report is added (before the panel's event is
//! acknowledged to the broker) and when one is taken by the centre. Each report keeps the
//! sequence number it was first sent with, so a report sent again after a crash is the same
//! message to the receiver.

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};

use protocol::Timestamp;
use serde::{Deserialize, Serialize};

use crate::report::Signal;

/// Panel event ids remembered after their reports left: a redelivered event is not reported again.
const REMEMBERED: usize = 256;

/// One report waiting.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    pub seq: u16,
    pub signal: Signal,
    /// The panel event it came from (`<run>-<n>`), or `poll` for a periodic test.
    pub event_id: String,
    pub queued_at: Timestamp,
}

/// What is on disk.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Queue {
    /// The last sequence number given (1..=9999, then 1 again).
    pub last_seq: u16,
    pub pending: VecDeque<Pending>,
    /// Ids of events whose reports are all gone: a redelivery of one is not queued again.
    pub reported: VecDeque<String>,
    /// Reports made room for when the queue was full (never an alarm while another one could go).
    pub dropped: u64,
}

impl Queue {
    /// The next sequence number: 0001 to 9999, then 0001 again (0000 is the receivers' own).
    pub fn next_seq(&mut self) -> u16 {
        self.last_seq = if self.last_seq >= 9999 { 1 } else { self.last_seq + 1 };
        self.last_seq
    }

    /// Whether an event with this id was already queued or reported.
    pub fn knows(&self, event_id: &str) -> bool {
        self.reported.iter().any(|id| id == event_id) || self.pending.iter().any(|p| p.event_id == event_id)
    }

    /// Adds `signal` for `event_id`; when `max` are waiting, the oldest that is not an alarm makes
    /// room (or the oldest, if all are alarms).
    pub fn push(&mut self, event_id: &str, signal: Signal, now: Timestamp, max: usize) {
        while self.pending.len() >= max.max(1) {
            let victim = self.pending.iter().skip(1).position(|p| !p.signal.code.is_alarm()).map_or(0, |i| i + 1);
            self.pending.remove(victim);
            self.dropped += 1;
        }
        let seq = self.next_seq();
        self.pending.push_back(Pending { seq, signal, event_id: event_id.to_owned(), queued_at: now });
    }

    /// The centre took the head (`seq`): it leaves, and its event is remembered once its last
    /// report is gone. False when the head is not `seq`.
    pub fn taken(&mut self, seq: u16) -> bool {
        if self.pending.front().is_none_or(|p| p.seq != seq) {
            return false;
        }
        let done = self.pending.pop_front().expect("front");
        if !self.pending.iter().any(|p| p.event_id == done.event_id) {
            self.reported.push_back(done.event_id);
            while self.reported.len() > REMEMBERED {
                self.reported.pop_front();
            }
        }
        true
    }
}

/// The queue's file.
#[derive(Debug, Clone)]
pub struct QueueFile {
    path: PathBuf,
}

impl QueueFile {
    pub fn new(path: impl Into<PathBuf>) -> QueueFile {
        QueueFile { path: path.into() }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The queue as last saved; empty when there is no file yet. A file that cannot be read is an
    /// error naming it (it is left alone for someone to look at).
    pub fn load(&self) -> Result<Queue, String> {
        match std::fs::read(&self.path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                format!(
                    "{} is not a report queue ({e}); move it away to start with an empty queue",
                    self.path.display()
                )
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Queue::default()),
            Err(e) => Err(format!("cannot read {}: {e}", self.path.display())),
        }
    }

    /// Writes `queue` durably: a temporary file, synced, renamed over the old one, the directory synced.
    pub fn save(&self, queue: &Queue) -> Result<(), String> {
        let dir = self.path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let fail = |what: &str, e: std::io::Error| format!("cannot {what} {}: {e}", self.path.display());
        std::fs::create_dir_all(dir).map_err(|e| fail("create the directory of", e))?;
        let tmp = self.path.with_extension("tmp");
        let bytes = serde_json::to_vec(queue).expect("a queue serializes");
        let mut file = std::fs::File::create(&tmp).map_err(|e| fail("write", e))?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(|e| fail("write", e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| fail("replace", e))?;
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::Code;

    fn signal(code: Code) -> Signal {
        Signal { code, number: 1, area: 1 }
    }

    #[test]
    fn sequence_numbers_run_from_1_to_9999_and_round() {
        let mut q = Queue { last_seq: 9998, ..Queue::default() };
        assert_eq!((q.next_seq(), q.next_seq(), q.next_seq()), (9999, 1, 2));
    }

    #[test]
    fn a_full_queue_drops_the_oldest_that_is_not_an_alarm_and_never_the_head() {
        let mut q = Queue::default();
        q.push("e1", signal(Code::Closing), Timestamp(1), 3);
        q.push("e2", signal(Code::Burglary), Timestamp(2), 3);
        q.push("e3", signal(Code::Opening), Timestamp(3), 3);
        q.push("e4", signal(Code::Duress), Timestamp(4), 3);
        let ids: Vec<&str> = q.pending.iter().map(|p| p.event_id.as_str()).collect();
        assert_eq!(ids, ["e1", "e2", "e4"], "e3 (an opening) made room; the head may be on the wire");
        assert_eq!(q.dropped, 1);
    }

    #[test]
    fn an_event_is_known_while_queued_and_after_its_last_report_left() {
        let mut q = Queue::default();
        q.push("e1", signal(Code::Bypass), Timestamp(1), 10);
        q.push("e1", signal(Code::Bypass), Timestamp(1), 10);
        assert!(q.knows("e1") && !q.knows("e2"));
        assert!(!q.taken(2), "only the head can be taken");
        assert!(q.taken(1));
        assert!(q.reported.is_empty(), "one report of e1 is still waiting");
        assert!(q.taken(2));
        assert!(q.knows("e1") && q.pending.is_empty());
    }

    #[test]
    fn the_file_round_trips_and_a_broken_one_is_an_error_naming_it() {
        let dir = tempfile::tempdir().unwrap();
        let file = QueueFile::new(dir.path().join("sub/queue.json"));
        assert_eq!(file.load().unwrap(), Queue::default());
        let mut q = Queue::default();
        q.push("e1", signal(Code::Burglary), Timestamp(5), 10);
        file.save(&q).unwrap();
        assert_eq!(file.load().unwrap(), q);
        std::fs::write(file.path(), b"{not json").unwrap();
        let e = file.load().unwrap_err();
        assert!(e.contains("queue.json") && e.contains("move it away"), "{e}");
    }
}
