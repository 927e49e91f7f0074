//! The SIA DC-09 transmitter: the panel's alarms to a monitoring centre's alarm receiver.
//!
//! It follows the panel's events (`<root>/security/events`) and reports the ones a centre acts
//! on — burglary by zone and its restore, duress, tamper, troubles, low batteries, openings and
//! closings by user, bypasses, a keypad lockout, a failure to arm — as SIA DCS or Contact ID
//! messages over TCP or UDP ([`report`] says which code each gets, [`dc09`] how it is written).
//! Why a daemon of its own, not a notifier channel: a centre's receiver is a supervised link with
//! its own rules (one message at a time, sequence numbers, answers that must match, polls that
//! prove the panel is alive), and a report must survive the transmitter's death, which a
//! notifier's in-memory queue does not.
//!
//! - **An accepted event is reported, once.** The link acknowledges nothing by itself
//!   (`manual_acks`, a persistent session): an event is acknowledged to the broker only once its
//!   reports are in the queue file ([`queue`], written on a blocking thread, never the runtime's),
//!   and is sent after that; a report leaves the file only when the
//!   receiver has answered `ACK` to its sequence number. After a `kill -9`, the broker redelivers
//!   what was not acknowledged and the file holds what was not yet taken; an event id already
//!   queued or reported is not queued again. (A crash between the receiver's ACK and the file's
//!   write sends that one report again, with the same sequence number.)
//! - **In order, one at a time, retried for ever**: a failure (no connection, no answer, a NAK, an
//!   answer that does not read) waits 1 s doubling to `retry_max_s`; after `fail_over_after`
//!   failures in a row on one receiver the next one in `[[receivers]]` is tried (the backup). A
//!   NAK carrying the receiver's time corrects our clock's offset and is retried at once. A `DUH`
//!   (the receiver does not know the code) is logged as an error and the report dropped: it would
//!   never be taken.
//! - **Supervision**: with nothing to report for `poll_s`, a `NULL` message says the panel is
//!   alive, so the centre notices one that went silent.
//! - **Encryption** when `key` is set (AES-128/192/256 by its length; `SIA_KEY` in the
//!   environment); the key is never logged.

pub mod dc09;
pub mod queue;
pub mod report;
pub mod send;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::metrics::Metric;
use device_runtime::{Ack, Act, ConfigError, Device, DeviceSpec, MqttConfig, Received, Secret, Shutdown};
use protocol::{DeviceKind, Message, PanelEvent, Qos, Timestamp, Topic, Topics};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::dc09::{Account, Body, Key, Reply};
use crate::queue::{Queue, QueueFile};
use crate::report::{Format, Numbers};
use crate::send::Receiver;

/// Reports by what became of them: `queued`, `taken` (ACKed), `failed` (a try that failed:
/// no answer, a NAK, garbage), `refused` (DUH: dropped), `dropped` (made room in a full queue).
pub const REPORTS: Metric = Metric::counter("mqtt_home_sia_reports", "Reports to the monitoring centre, by outcome");
/// Reports waiting for the centre.
pub const WAITING: Metric = Metric::gauge("mqtt_home_sia_reports_waiting", "Reports waiting for the monitoring centre");

/// The first retry after a failure; then doubling up to `retry_max_s`.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// NAKs in a row answered at once (with our clock corrected) before they count as a failure.
const NAKS_AT_ONCE: u32 = 2;

/// `config/sia-transmitter.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// The account number the centre gave (3 to 16 hex digits).
    pub account: String,
    /// The receiver number (`R`, hex), when the centre gave one.
    pub receiver_number: Option<u32>,
    /// The line number (`L`, hex).
    pub line: u32,
    pub format: Format,
    /// AES key: 16, 24 or 32 hex characters (AES-128, -192, -256). Unset: unencrypted.
    pub key: Option<Secret>,
    /// The alarm receivers, in order: the first is the primary, the others its backups.
    pub receivers: Vec<Receiver>,
    /// How long a receiver has to answer a message.
    #[serde(deserialize_with = "device_runtime::duration::secs_f64")]
    pub answer_timeout_s: f64,
    /// A `NULL` supervision message after this long with nothing sent; 0: none.
    #[serde(deserialize_with = "device_runtime::duration::secs_f64")]
    pub poll_s: f64,
    /// The longest wait between two tries.
    #[serde(deserialize_with = "device_runtime::duration::secs_f64")]
    pub retry_max_s: f64,
    /// Failures in a row on one receiver before the next one is tried.
    pub fail_over_after: u32,
    /// Where the reports waiting for the centre are kept.
    pub queue_file: PathBuf,
    /// Reports kept while the centre cannot be reached; the oldest that is not an alarm makes room.
    pub queue_max: usize,
    /// Sensor id → the zone number the centre knows it by.
    pub zones: BTreeMap<String, u16>,
    /// User name → user number.
    pub users: BTreeMap<String, u16>,
    /// Area name → area number (a panel without areas reports area 1).
    pub areas: BTreeMap<String, u16>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mqtt: MqttConfig::with_id("sia-transmitter"),
            account: String::new(),
            receiver_number: None,
            line: 0,
            format: Format::SiaDcs,
            key: None,
            receivers: Vec::new(),
            answer_timeout_s: 10.0,
            poll_s: 600.0,
            retry_max_s: 60.0,
            fail_over_after: 2,
            queue_file: PathBuf::from("sia-transmitter.queue.json"),
            queue_max: 1000,
            zones: BTreeMap::new(),
            users: BTreeMap::new(),
            areas: BTreeMap::new(),
        }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "sia-transmitter";

    device_runtime::mqtt_section!(mqtt);

    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        let invalid = |m: String| Err(ConfigError::Invalid(m));
        if !(3..=16).contains(&self.account.len()) || !self.account.chars().all(|c| c.is_ascii_hexdigit()) {
            return invalid(format!(
                "account `{}` must be the account number the centre gave: 3 to 16 hex digits (account = \"1234\")",
                self.account
            ));
        }
        if let Some(key) = &self.key
            && let Err(e) = Key::parse(key.expose())
        {
            return invalid(format!("key: {e}"));
        }
        if self.receivers.is_empty() {
            return invalid("no [[receivers]]: give the centre's alarm receiver (address = \"host:port\")".into());
        }
        for r in &self.receivers {
            if !r.address.rsplit_once(':').is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok()) {
                return invalid(format!("receiver address `{}` must be host:port", r.address));
            }
        }
        if self.answer_timeout_s <= 0.0 || self.retry_max_s < 1.0 || self.fail_over_after == 0 || self.queue_max == 0 {
            return invalid(
                "answer_timeout_s > 0, retry_max_s ≥ 1, fail_over_after ≥ 1 and queue_max ≥ 1, please".into(),
            );
        }
        Ok(())
    }
}

impl Config {
    fn numbers(&self) -> Numbers {
        Numbers { zones: self.zones.clone(), users: self.users.clone(), areas: self.areas.clone() }
    }
}

/// A message on its way: what it is, to which receiver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Send {
    pub seq: u16,
    pub receiver: usize,
    pub message: Vec<u8>,
}

/// What the runner does for the transmitter off its decisions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Job {
    /// A message to a receiver, on a task of its own (the runner goes on at once).
    Send(Send),
    /// The queue to its file, on a blocking thread (two fsyncs: never on the runtime's); then
    /// `ack`, owed for the panel event whose reports it made durable.
    Save { ack: Option<Ack> },
}

/// What is on the wire now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum InFlight {
    Report(u16),
    Poll(u16),
}

/// What a send came to.
#[derive(Debug)]
pub struct Outcome {
    pub receiver: usize,
    pub answer: Result<Reply, String>,
}

/// The transmitter as a [`Device`]: its queue and its link to the receivers, decided here; the
/// sends themselves run on tasks of their own ([`Device::run_job`]).
pub struct Transmitter {
    config: Config,
    topics: Topics,
    numbers: Numbers,
    account: Account,
    key: Option<Key>,
    file: QueueFile,
    queue: Queue,
    /// The receiver tried now (index into `config.receivers`).
    current: usize,
    failures_here: u32,
    failures: u32,
    naks: u32,
    in_flight: Option<InFlight>,
    next_try: Timestamp,
    next_poll: Timestamp,
    /// The receiver's clock minus ours, learnt from a NAK, in ms.
    offset_ms: i64,
    warned: BTreeSet<String>,
    outcomes: (mpsc::UnboundedSender<Outcome>, mpsc::UnboundedReceiver<Outcome>),
}

impl Transmitter {
    /// Reads the queue file; one that cannot be read is an error.
    pub fn new(config: Config, now: Timestamp) -> Result<Transmitter, String> {
        let key = config.key.as_ref().map(|k| Key::parse(k.expose())).transpose().map_err(|e| format!("key: {e}"))?;
        let file = QueueFile::new(&config.queue_file);
        let queue = file.load()?;
        if !queue.pending.is_empty() {
            tracing::info!("{} reports from before the restart wait for the centre", queue.pending.len());
        }
        let account =
            Account { number: config.account.to_uppercase(), receiver: config.receiver_number, line: config.line };
        Ok(Transmitter {
            topics: Topics::new(&config.mqtt.topic_root),
            numbers: config.numbers(),
            account,
            key,
            file,
            queue,
            current: 0,
            failures_here: 0,
            failures: 0,
            naks: 0,
            in_flight: None,
            next_try: now,
            next_poll: now.plus(secs(config.poll_s)),
            offset_ms: 0,
            warned: BTreeSet::new(),
            outcomes: mpsc::unbounded_channel(),
            config,
        })
    }

    /// Reports waiting for the centre.
    pub fn waiting(&self) -> usize {
        self.queue.pending.len()
    }

    /// Queues the reports of `event` (in memory: a [`Job::Save`] makes them durable); whether
    /// there were any.
    fn accept(&mut self, event: &PanelEvent, now: Timestamp) -> bool {
        let id = match &event.id {
            Some(id) => id.clone(),
            None => format!("{} {}", event.event.as_str(), event.ts.as_millis()),
        };
        if self.queue.knows(&id) {
            tracing::debug!("event {id} again (a redelivery): already reported or queued");
            return false;
        }
        let signals = report::signals(event, &self.numbers);
        if signals.is_empty() {
            return false;
        }
        for sensor in self.numbers.unnumbered(event) {
            if self.warned.insert(sensor.to_owned()) {
                tracing::warn!("sensor {sensor} has no zone number: reported as zone 0 (add it to [zones])");
            }
        }
        for signal in signals {
            self.queue.push(&id, signal, now, self.config.queue_max);
        }
        true
    }

    /// The queue's file was written (or not): the event it made durable is acknowledged, and the
    /// next report goes. Not written: not acknowledged, so the broker keeps the event for the
    /// next session, and the reports are sent all the same.
    fn saved(&mut self, ack: Option<Ack>, outcome: Result<(), String>, now: Timestamp) -> Vec<Act<Job>> {
        let mut acts = Vec::new();
        match outcome {
            Ok(()) => acts.extend(ack.map(Act::Ack)),
            Err(e) => tracing::error!("{e}: the reports are kept in memory and sent, but would not survive a restart"),
        }
        acts.extend(self.pump(now));
        acts
    }

    /// The next message, when one is due and none is on the wire.
    fn pump(&mut self, now: Timestamp) -> Vec<Act<Job>> {
        if self.in_flight.is_some() || now < self.next_try {
            return Vec::new();
        }
        let (seq, body, in_flight) = match self.queue.pending.front() {
            Some(head) => (head.seq, head.signal.body(self.config.format), InFlight::Report(head.seq)),
            None if self.config.poll_s > 0.0 && now >= self.next_poll => {
                let seq = self.queue.next_seq();
                (seq, Body::Null, InFlight::Poll(seq))
            }
            None => return Vec::new(),
        };
        let their_now = Timestamp(now.as_millis().saturating_add_signed(self.offset_ms));
        let message = dc09::frame(&self.account, seq, &body, their_now, self.key.as_ref(), &mut dc09::random_pad);
        self.in_flight = Some(in_flight);
        vec![Act::Job(Job::Send(Send { seq, receiver: self.current, message }))]
    }

    /// A send came back: what it came to, counted.
    fn on_outcome(&mut self, outcome: Outcome, now: Timestamp) -> Vec<Act<Job>> {
        let report = matches!(self.in_flight, Some(InFlight::Report(_)));
        let counted = match &outcome.answer {
            Ok(Reply::Ack { .. }) if report => Some("taken"),
            Ok(Reply::Duh { .. }) if report => Some("refused"),
            Ok(Reply::Ack { .. } | Reply::Duh { .. }) => None,
            Ok(Reply::Nak { .. } | Reply::Unreadable(_)) | Err(_) => Some("failed"),
        };
        let mut acts = self.answered(outcome, now);
        acts.extend(counted.map(|outcome| Act::count(REPORTS, &[("outcome", outcome)], 1)));
        acts.push(self.waiting_gauge());
        acts
    }

    fn waiting_gauge(&self) -> Act<Job> {
        Act::gauge(WAITING, &[], i64::try_from(self.queue.pending.len()).unwrap_or(i64::MAX))
    }

    fn answered(&mut self, outcome: Outcome, now: Timestamp) -> Vec<Act<Job>> {
        let Some(sent) = self.in_flight.take() else { return Vec::new() };
        let seq = match sent {
            InFlight::Report(s) | InFlight::Poll(s) => s,
        };
        let receiver = self.config.receivers[outcome.receiver].clone();
        let what = self.describe(sent);
        let mut acts = Vec::new();
        match outcome.answer {
            Ok(Reply::Ack { seq: acked }) if acked == seq => {
                if self.failures > 0 {
                    tracing::info!("{receiver} takes reports again");
                }
                self.failures = 0;
                self.failures_here = 0;
                self.naks = 0;
                self.next_try = now;
                self.next_poll = now.plus(secs(self.config.poll_s));
                if let InFlight::Report(_) = sent {
                    self.queue.taken(seq);
                    acts.push(Act::Note(format!("{receiver} took {what} (seq {seq:04})")));
                    // The next report first; the file follows (a crash between the two sends
                    // this one again, with its sequence number).
                    acts.extend(self.pump(now));
                    acts.push(Act::Job(Job::Save { ack: None }));
                }
            }
            Ok(Reply::Duh { .. }) => {
                self.naks = 0;
                if let InFlight::Report(_) = sent {
                    tracing::error!(
                        "{receiver} does not know {what} (DUH): dropped; ask the centre which codes it reads"
                    );
                    self.queue.taken(seq);
                    acts.push(Act::Job(Job::Save { ack: None }));
                }
            }
            Ok(Reply::Nak { their_time: Some(theirs) }) if self.naks < NAKS_AT_ONCE => {
                self.naks += 1;
                self.offset_ms = theirs.as_millis() as i64 - now.as_millis() as i64;
                tracing::warn!(
                    "{receiver} refused {what} (NAK): our clock is {} ms off theirs; sent again",
                    -self.offset_ms
                );
            }
            Ok(Reply::Ack { seq: other }) => {
                self.failed(format!("{receiver} acknowledged seq {other:04}, not {seq:04}"), now)
            }
            Ok(Reply::Nak { .. }) => self.failed(format!("{receiver} refused {what} (NAK)"), now),
            Ok(Reply::Unreadable(why)) => self.failed(format!("{receiver} answered what does not read: {why}"), now),
            Err(why) => self.failed(why, now),
        }
        acts.extend(self.pump(now));
        acts
    }

    fn failed(&mut self, why: String, now: Timestamp) {
        self.failures += 1;
        self.failures_here += 1;
        self.naks = 0;
        let waiting = self.queue.pending.len();
        if self.failures == 1 {
            tracing::warn!("{why}; {waiting} reports waiting, retrying");
        } else {
            tracing::debug!("still failing ({} tries): {why}", self.failures);
        }
        let n = self.config.receivers.len();
        if n > 1 && self.failures_here >= self.config.fail_over_after {
            let from = self.current;
            self.current = (self.current + 1) % n;
            self.failures_here = 0;
            tracing::warn!(
                "{} failed {} times in a row: trying {}",
                self.config.receivers[from],
                self.config.fail_over_after,
                self.config.receivers[self.current]
            );
            self.next_try = now;
            return;
        }
        self.next_try = now.plus(backoff(self.failures, secs(self.config.retry_max_s)));
    }

    fn describe(&self, sent: InFlight) -> String {
        match (sent, self.queue.pending.front()) {
            (InFlight::Report(_), Some(head)) => {
                format!(
                    "{} zone {} area {} ({:?})",
                    head.signal.code.sia(),
                    head.signal.number,
                    head.signal.area,
                    head.signal.code
                )
            }
            _ => "a supervision poll".to_owned(),
        }
    }
}

/// The wait after `failures` failures: 1 s, 2 s, 4 s … up to `max`.
pub fn backoff(failures: u32, max: Duration) -> Duration {
    FIRST_RETRY.saturating_mul(1u32 << failures.saturating_sub(1).min(16)).min(max)
}

fn secs(s: f64) -> Duration {
    Duration::from_secs_f64(s.max(0.0))
}

impl Device for Transmitter {
    type Job = Job;

    fn spec(&self) -> DeviceSpec {
        let mut spec = DeviceSpec::new(DeviceKind::AlarmTransmitter);
        let receivers = self.config.receivers.iter().map(|r| format!("receiver:{r}"));
        spec.capabilities = std::iter::once("sia-dc09".to_owned()).chain(receivers).collect();
        spec.subscriptions = vec![(self.topics.name(&Topic::PanelEvents), Qos::AtLeastOnce)];
        spec.manual_acks = true;
        spec
    }

    fn on_start(&mut self, now: Timestamp) -> Vec<Act<Job>> {
        self.pump(now)
    }

    fn on_received(&mut self, topics: &Topics, received: Received, now: Timestamp) -> Vec<Act<Job>> {
        let mut acts = Vec::new();
        let (waiting, dropped) = (self.queue.pending.len(), self.queue.dropped);
        let queued_any = match Message::decode(topics, &received.topic, &received.payload) {
            Ok(Message::PanelEvent(event)) => self.accept(&event, now),
            Ok(_) => false,
            Err(e) => {
                tracing::warn!("ignored a message: {}", e.why);
                acts.push(Act::count(device_runtime::metrics::DECODE_FAILURES, &[], 1));
                false
            }
        };
        let dropped = self.queue.dropped - dropped;
        let queued = self.queue.pending.len() + dropped as usize - waiting;
        if queued > 0 {
            acts.push(Act::count(REPORTS, &[("outcome", "queued")], queued as u64));
            acts.push(Act::count(REPORTS, &[("outcome", "dropped")], dropped));
            acts.push(self.waiting_gauge());
        }
        if queued_any {
            // Acknowledged, and sent, once its reports are on disk.
            acts.push(Act::Job(Job::Save { ack: received.ack }));
        } else {
            acts.extend(received.ack.map(Act::Ack));
            acts.extend(self.pump(now));
        }
        acts
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        if self.in_flight.is_some() {
            return None;
        }
        if !self.queue.pending.is_empty() {
            return Some(self.next_try);
        }
        (self.config.poll_s > 0.0).then(|| self.next_poll.max(self.next_try))
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<Job>> {
        self.pump(now)
    }

    async fn wake(&mut self) -> Vec<Act<Job>> {
        match self.outcomes.1.recv().await {
            Some(outcome) => self.on_outcome(outcome, Timestamp::now()),
            None => std::future::pending().await,
        }
    }

    /// A send: on a task of its own, returning at once (the MQTT side goes on meanwhile). A save:
    /// on a blocking thread, awaited.
    async fn run_job(&mut self, job: Job) -> Vec<Act<Job>> {
        let send = match job {
            Job::Send(send) => send,
            Job::Save { ack } => {
                let (file, queue) = (self.file.clone(), self.queue.clone());
                let outcome = tokio::task::spawn_blocking(move || file.save(&queue))
                    .await
                    .unwrap_or_else(|e| Err(format!("the save failed: {e}")));
                return self.saved(ack, outcome, Timestamp::now());
            }
        };
        let receiver = self.config.receivers[send.receiver].clone();
        let timeout = secs(self.config.answer_timeout_s);
        let key = self.key.clone();
        let outcomes = self.outcomes.0.clone();
        tokio::spawn(async move {
            let answer =
                send::exchange(&receiver, &send.message, timeout).await.map(|a| dc09::parse_reply(&a, key.as_ref()));
            let _ = outcomes.send(Outcome { receiver: send.receiver, answer });
        });
        Vec::new()
    }
}

/// Runs the transmitter until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mqtt = config.mqtt.clone();
    let transmitter = Transmitter::new(config, Timestamp::now()).map_err(|e| anyhow::anyhow!(e))?;
    device_runtime::runner::run(transmitter, &mqtt, shutdown).await
}

#[cfg(test)]
mod tests;
