//! The recorder: the home's event log, kept in SQLite.
//!
//! It subscribes to the home with a persistent session and keeps every state change (sensors,
//! lights, the panel's status, the siren, the sun's phase), every panel event, every siren command,
//! every availability change, announce and health — not the commands on `panel/set` (they carry
//! PINs) nor the lights' `set` (their effect is the light's state). `mqtt-home history` and the
//! dashboard read the same file.
//!
//! **Nothing accepted is lost.** The link acknowledges nothing by itself (`manual_acks`): a QoS 1
//! message is acknowledged to the broker only once the transaction holding it is committed, so a
//! `kill -9` or a power cut loses nothing the broker still holds, and a restart resumes from the
//! persistent session. Messages are committed in groups — whenever no message is waiting, or
//! `batch_max` have gathered — so a flood is one transaction per group, not per message. A message
//! the broker redelivers (DUP) after a crash is recognised: a state already stored is no change,
//! an event already stored is not stored twice.
//!
//! **Failures are visible and recoverable.** A database that cannot be opened or written (a
//! directory, a full disk, a locked or corrupt file) is one error line, a retained `trouble` on
//! `<root>/devices/<id>/health`, and a retry every 5 s; the messages stay unacknowledged (the
//! broker keeps them and stops sending past its in-flight window) until a commit succeeds.
//! Payloads the contract cannot read are kept raw in a table of their own.

use std::collections::HashSet;
use std::path::PathBuf;
use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Ack, Act, ConfigError, Device, DeviceSpec, MqttConfig, Received, Shutdown};
use protocol::{DeviceKind, Health, HealthState, Qos, Timestamp, Topic, Topics};
use serde::{Deserialize, Serialize};

use store::classify::{Changes, classify};
use store::{Durability, Entry, Retention, Store, StoreError, Unreadable};

pub use store::DEFAULT_DATABASE;
/// How long after a failed commit it is tried again.
pub const RETRY: Duration = Duration::from_secs(5);
/// How often old records are pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
/// The shortest time the panel's events may be kept (EN 50131 panels keep a year and more).
const PANEL_MIN_AGE: Duration = Duration::from_secs(365 * 24 * 3600);
const DAY_S: u64 = 24 * 3600;
/// Topics whose unreadable messages are each warned about once, at most.
const WARNED_TOPICS: usize = 1000;

/// `config/recorder.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    /// The SQLite file (created with its directory's permissions).
    pub database: PathBuf,
    /// `full`: each commit is on the disk before its messages are acknowledged (survives a power
    /// cut); `normal`: in the operating system (survives a crash of the recorder only).
    pub durability: Durability,
    /// Records older than this are pruned (the panel's events excepted): 30d, 12h, or seconds.
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub max_age_s: u64,
    /// The panel's events are kept this long; at least a year.
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub panel_max_age_s: u64,
    /// At most this many records besides the panel's events; the oldest are pruned first.
    pub max_rows: u64,
    /// At most this many messages in one transaction.
    pub batch_max: usize,
    /// Share the work with other recorders of this group (`$share/<group>/...`, Mosquitto 2; not
    /// NATS): each message is recorded by one of them, in its own database.
    pub share_group: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            mqtt: MqttConfig::with_id("recorder"),
            database: PathBuf::from(DEFAULT_DATABASE),
            durability: Durability::Full,
            max_age_s: 30 * DAY_S,
            panel_max_age_s: 2 * 365 * DAY_S,
            max_rows: 5_000_000,
            batch_max: 5_000,
            share_group: None,
        }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "recorder";

    device_runtime::mqtt_section!(mqtt);

    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        device_runtime::config::validate_share_group(&self.share_group)?;
        if Duration::from_secs(self.panel_max_age_s) < PANEL_MIN_AGE {
            return Err(ConfigError::Invalid(format!(
                "panel_max_age_s = {} is less than a year: an alarm panel's event log is kept at least 365 days",
                self.panel_max_age_s
            )));
        }
        if self.max_age_s < 3600 {
            return Err(ConfigError::Invalid(format!("max_age_s = {} must be at least an hour", self.max_age_s)));
        }
        if self.max_rows < 1000 {
            return Err(ConfigError::Invalid(format!("max_rows = {} must be at least 1000", self.max_rows)));
        }
        if !(1..=100_000).contains(&self.batch_max) {
            return Err(ConfigError::Invalid(format!("batch_max = {} must be 1 to 100000", self.batch_max)));
        }
        if self.database.as_os_str().is_empty() {
            return Err(ConfigError::Invalid("database must name a file".into()));
        }
        Ok(())
    }
}

impl Config {
    fn retention(&self) -> Retention {
        Retention {
            max_age: Duration::from_secs(self.max_age_s),
            panel_max_age: Duration::from_secs(self.panel_max_age_s),
            max_rows: self.max_rows,
        }
    }
}

/// Work done off the decision path, on a blocking thread: the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Job {
    /// Commit what is pending (opening the database first if it is not open).
    Commit,
    /// Remove what retention no longer keeps.
    Prune,
}

/// The recorder as a [`Device`].
pub struct Recorder {
    config: Config,
    topics: Topics,
    /// `None` until it opens, and again after a failure (reopened on the next try).
    store: Option<Store>,
    changes: Changes,
    /// Entries to store and the acks they (and the messages that were no change) are owed, in the
    /// order received: acks go out in that order once the entries are committed.
    pending: Vec<Entry>,
    acks: Vec<Ack>,
    /// What stops the recorder, while something does.
    trouble: Option<String>,
    retry_at: Option<Timestamp>,
    prune_at: Timestamp,
    warned: HashSet<String>,
}

impl Recorder {
    pub fn new(config: Config, now: Timestamp) -> Recorder {
        let topics = Topics::new(&config.mqtt.topic_root);
        Recorder {
            config,
            topics,
            store: None,
            changes: Changes::default(),
            pending: Vec::new(),
            acks: Vec::new(),
            trouble: None,
            retry_at: None,
            prune_at: now,
            warned: HashSet::new(),
        }
    }

    /// Messages received and not yet acknowledged.
    pub fn unacknowledged(&self) -> usize {
        self.acks.len()
    }

    fn health(&self, now: Timestamp) -> Act<Job> {
        let health = Health {
            state: if self.trouble.is_some() { HealthState::Trouble } else { HealthState::Ok },
            problems: self.trouble.iter().cloned().collect(),
            device_id: self.config.mqtt.id.clone(),
            ts: now,
        };
        Act::publish(Topic::Health(self.config.mqtt.id.clone()), &health)
    }

    /// A commit or an open failed: say so once, keep everything, try again later.
    fn failed(&mut self, error: &StoreError, now: Timestamp) -> Vec<Act<Job>> {
        self.store = None;
        self.retry_at = Some(now.plus(RETRY));
        let problem = format!(
            "{error}; {} messages kept unacknowledged (the broker holds them), retrying every {} s",
            self.acks.len(),
            RETRY.as_secs()
        );
        let first = self.trouble.is_none();
        self.trouble = Some(problem);
        if first {
            tracing::error!(
                "{error}: check the path and free space (recorder.database); nothing is lost, retrying every {} s",
                RETRY.as_secs()
            );
            vec![self.health(now)]
        } else {
            tracing::debug!("still failing: {error}");
            Vec::new()
        }
    }

    fn recovered(&mut self, now: Timestamp) -> Vec<Act<Job>> {
        self.retry_at = None;
        if self.trouble.take().is_some() {
            tracing::info!("the database {} works again", self.config.database.display());
            return vec![self.health(now)];
        }
        Vec::new()
    }

    fn warn_unreadable(&mut self, topic: &str, error: &str) {
        if self.warned.len() < WARNED_TOPICS && self.warned.insert(topic.to_owned()) {
            tracing::warn!("kept an unreadable message from {topic} in the unreadable table: {error}");
        }
    }

    /// Opens the store if needed, on a blocking thread; the changes it knows join the ones in memory.
    async fn open(&mut self) -> Result<Store, StoreError> {
        if let Some(store) = self.store.take() {
            return Ok(store);
        }
        let (path, durability) = (self.config.database.clone(), self.config.durability);
        let opened = tokio::task::spawn_blocking(move || {
            let store = Store::open(&path, durability)?;
            let latest = store.latest()?;
            Ok::<_, StoreError>((store, latest))
        })
        .await
        .expect("the database thread never panics");
        let (store, latest) = opened?;
        tracing::info!("recording to {} ({} states known)", store.path().display(), latest.len());
        self.changes.merge_older(latest);
        Ok(store)
    }

    async fn commit(&mut self, now: Timestamp) -> Vec<Act<Job>> {
        let mut store = match self.open().await {
            Ok(store) => store,
            Err(e) => return self.failed(&e, now),
        };
        let entries = std::mem::take(&mut self.pending);
        let (store, entries, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = store.commit(&entries);
            (store, entries, outcome)
        })
        .await
        .expect("the database thread never panics");
        match outcome {
            Ok(done) => {
                self.store = Some(store);
                if done.duplicates > 0 {
                    tracing::info!("{} redelivered messages were already recorded", done.duplicates);
                }
                let mut acts = self.recovered(now);
                acts.push(Act::count(ROWS, &[("table", "records")], done.records as u64));
                acts.push(Act::count(ROWS, &[("table", "unreadable")], done.unreadable as u64));
                let oldest = entries.iter().map(|e| match e {
                    Entry::Record(r) => r.received,
                    Entry::Unreadable(u) => u.received,
                });
                if let Some(oldest) = oldest.min() {
                    acts.push(Act::gauge(LAG, &[], Timestamp::now().since(oldest).as_millis() as i64));
                }
                acts.extend(self.acks.drain(..).map(Act::Ack));
                acts
            }
            Err(e) => {
                // Put back in front of anything that came since (nothing: jobs run in turn).
                let later = std::mem::replace(&mut self.pending, entries);
                self.pending.extend(later);
                self.failed(&e, now)
            }
        }
    }

    async fn prune(&mut self, now: Timestamp) -> Vec<Act<Job>> {
        self.prune_at = now.plus(PRUNE_EVERY);
        let Some(mut store) = self.store.take() else { return Vec::new() };
        let retention = self.config.retention();
        let (store, outcome) = tokio::task::spawn_blocking(move || {
            let outcome = store.prune(&retention, now);
            (store, outcome)
        })
        .await
        .expect("the database thread never panics");
        match outcome {
            Ok(pruned) => {
                self.store = Some(store);
                if pruned.records + pruned.unreadable > 0 {
                    tracing::info!("pruned {} records and {} unreadable messages", pruned.records, pruned.unreadable);
                }
                Vec::new()
            }
            Err(e) => self.failed(&e, now),
        }
    }

    /// Whether there is something to commit or acknowledge, and no failure is waiting for its retry.
    fn may_commit(&self) -> bool {
        self.retry_at.is_none() && !(self.acks.is_empty() && self.pending.is_empty())
    }
}

/// Rows written, by table (`records`, `unreadable`).
pub const ROWS: device_runtime::metrics::Metric =
    device_runtime::metrics::Metric::counter("mqtt_home_recorder_rows", "Rows the recorder committed, by table");
/// How long the oldest message of the last commit waited between its arrival and the commit.
pub const LAG: device_runtime::metrics::Metric = device_runtime::metrics::Metric::gauge(
    "mqtt_home_recorder_lag_milliseconds",
    "From the arrival of the oldest message of the last commit to the commit, in ms",
);

impl Device for Recorder {
    type Job = Job;

    fn spec(&self) -> DeviceSpec {
        let t = &self.topics;
        // What a watcher of the home reads, and the siren's commands (who sounded it, and why).
        let mut filters = t.state_and_events();
        filters.push(t.name(&Topic::AlarmControl));
        let mut spec = DeviceSpec::new(DeviceKind::Recorder);
        spec.capabilities = vec!["history".into(), format!("database:{}", self.config.database.display())];
        spec.subscriptions = filters.into_iter().map(|f| (f, Qos::AtLeastOnce)).collect();
        spec.state_topics = vec![t.name(&Topic::Health(self.config.mqtt.id.clone()))];
        spec.discovery = protocol::discovery::health(t, &self.config.mqtt.id);
        spec.manual_acks = true;
        spec.retained_on_restart = false;
        spec.share_group = self.config.share_group.clone();
        spec
    }

    fn on_start(&mut self, _now: Timestamp) -> Vec<Act<Job>> {
        // Opens the database (and learns the states it holds) before the first message is read.
        vec![Act::Job(Job::Commit)]
    }

    fn on_connected(&mut self, now: Timestamp) -> Vec<Act<Job>> {
        vec![self.health(now)]
    }

    fn on_received(&mut self, topics: &Topics, received: Received, now: Timestamp) -> Vec<Act<Job>> {
        let entry = classify(topics, &received.topic, &received.payload, received.redelivered, now);
        let keep = match &entry {
            Entry::Record(record) => self.changes.admit(record),
            Entry::Unreadable(u) => {
                let (topic, error) = (u.topic.clone(), u.error.clone());
                self.warn_unreadable(&topic, &error);
                true
            }
        };
        if keep {
            self.pending.push(entry);
        }
        // A QoS 0 message is owed no ack; it is stored all the same.
        self.acks.extend(received.ack);
        if self.pending.len() >= self.config.batch_max && self.retry_at.is_none() {
            return vec![Act::Job(Job::Commit)];
        }
        Vec::new()
    }

    fn on_oversized(&mut self, topic: &str, size: usize, ack: Ack, now: Timestamp) -> Vec<Act<Job>> {
        let error = format!(
            "{size} bytes, over mqtt.max_payload_bytes ({}): dropped unread",
            self.config.mqtt.max_payload_bytes
        );
        self.pending.push(Entry::Unreadable(Unreadable {
            received: now,
            topic: topic.to_owned(),
            payload: Vec::new(),
            error,
        }));
        self.acks.push(ack);
        Vec::new()
    }

    fn on_idle(&mut self, _now: Timestamp) -> Vec<Act<Job>> {
        if self.may_commit() { vec![Act::Job(Job::Commit)] } else { Vec::new() }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        Some(self.retry_at.map_or(self.prune_at, |retry| retry.min(self.prune_at)))
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<Job>> {
        let mut acts = Vec::new();
        if self.retry_at.is_some_and(|at| at <= now) {
            self.retry_at = None;
            acts.push(Act::Job(Job::Commit));
        }
        if self.prune_at <= now {
            acts.push(Act::Job(Job::Prune));
        }
        acts
    }

    fn on_stop(&mut self, _now: Timestamp) -> Vec<Act<Job>> {
        if self.pending.is_empty() && self.acks.is_empty() { Vec::new() } else { vec![Act::Job(Job::Commit)] }
    }

    async fn run_job(&mut self, job: Job) -> Vec<Act<Job>> {
        let now = Timestamp::now();
        match job {
            Job::Commit => self.commit(now).await,
            Job::Prune => self.prune(now).await,
        }
    }
}

/// Runs the recorder until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let mqtt = config.mqtt.clone();
    device_runtime::runner::run(Recorder::new(config, Timestamp::now()), &mqtt, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_keeps_the_panels_events_a_year() {
        assert!(Config::default().validate().is_ok());
        let short = Config { panel_max_age_s: 100 * DAY_S, ..Config::default() };
        assert!(short.validate().unwrap_err().to_string().contains("365 days"));
    }

    #[test]
    fn it_subscribes_to_no_command_that_carries_a_pin() {
        let recorder = Recorder::new(Config::default(), Timestamp(0));
        let spec = recorder.spec();
        let topics = Topics::default();
        for (filter, _) in &spec.subscriptions {
            assert_ne!(filter, &topics.name(&Topic::PanelSet));
            assert!(!filter.ends_with("/set") && !filter.ends_with('#'), "{filter}");
        }
        assert!(spec.manual_acks && spec.persistent_session && !spec.retained_on_restart);
    }
}
