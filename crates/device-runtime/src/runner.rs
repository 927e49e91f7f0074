//! The one edge loop every daemon runs on.
//!
//! A daemon is a [`Device`]: what it subscribes to, when it next wants to be woken, and what it does
//! on a connect, a message, a deadline — each a plain method that takes `now` and returns [`Act`]s,
//! so its decisions are tested without a broker. [`run`] owns everything else: the [`Link`], the
//! clock, decoding messages into [`protocol::Message`] (an unknown topic is logged and ignored;
//! a payload that cannot be read goes to the device as the `Unreadable` it is, for the device to
//! say what it means), publishing in order, and
//! shutdown. Work that is neither a decision nor a publish (the panel's state file) is a
//! [`Device::Job`], carried out in order by [`Device::run_job`], whose outcome is the device's
//! next input.
//!
//! A device that must not lose what it was sent (the recorder) takes messages as they came
//! ([`Device::on_received`], with the retain and DUP flags and the [`Ack`] they are owed), answers
//! with [`Act::Ack`] once they are durable, and commits in groups: [`Device::on_idle`] is called
//! whenever no message is waiting, and [`Device::on_stop`] before the link says goodbye.

use std::collections::VecDeque;
use std::future::Future;

use protocol::{Message, Payload, Timestamp, Topic, Topics, Unreadable};

use crate::config::MqttConfig;
use crate::link::{Ack, DeviceSpec, Inbound, Link, Publisher};
use crate::metrics::{self, Metric};
use crate::shutdown::Shutdown;

/// A message to publish: the topic (its QoS and retain flag come from the contract) and the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    pub topic: Topic,
    pub payload: Vec<u8>,
}

impl Outgoing {
    pub fn new<P: Payload>(topic: Topic, payload: &P) -> Outgoing {
        Outgoing { topic, payload: payload.encode() }
    }
}

/// What a device asks of the runner, done in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act<J> {
    Publish(Outgoing),
    /// A line for the log (info), written when its turn comes: after what came before it went out.
    Note(String),
    /// Device-specific work, done in order by [`Device::run_job`] (e.g. saving a file), once the
    /// publishes before it are on the wire (or [`JOB_WAIT`] passed): a job never delays them.
    Job(J),
    /// Acknowledges a message to the broker (devices with `manual_acks` only).
    Ack(Ack),
    /// A publish outside the contract, at QoS 1: a foreign device's command topic (the bridge).
    Foreign {
        topic: String,
        payload: Vec<u8>,
        retain: bool,
    },
    /// A metric of the daemon's own ([`crate::metrics`]): a counter's increment or a gauge's
    /// value, with labels beside `daemon`, which the runner adds.
    Metric {
        metric: Metric,
        labels: Vec<(&'static str, String)>,
        value: i64,
    },
}

/// How long a job waits for the publishes before it to be written (a link without a broker
/// writes nothing).
pub const JOB_WAIT: std::time::Duration = std::time::Duration::from_millis(50);

impl<J> Act<J> {
    pub fn publish<P: Payload>(topic: Topic, payload: &P) -> Act<J> {
        Act::Publish(Outgoing::new(topic, payload))
    }

    /// Adds `by` to the counter `metric` with `labels` (and the daemon's).
    pub fn count(metric: Metric, labels: &[(&'static str, &str)], by: u64) -> Act<J> {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        Act::Metric { metric, labels, value: i64::try_from(by).unwrap_or(i64::MAX) }
    }

    /// Sets the gauge `metric` with `labels` (and the daemon's) to `value`.
    pub fn gauge(metric: Metric, labels: &[(&'static str, &str)], value: i64) -> Act<J> {
        let labels = labels.iter().map(|(k, v)| (*k, (*v).to_owned())).collect();
        Act::Metric { metric, labels, value }
    }
}

/// The payloads published among `acts` that decode as `P`, in order: what a device's step said,
/// for its tests.
pub fn published<P: Payload, J>(acts: &[Act<J>]) -> Vec<P> {
    acts.iter()
        .filter_map(|act| match act {
            Act::Publish(out) => P::decode(&out.payload).ok(),
            Act::Note(_) | Act::Job(_) | Act::Ack(_) | Act::Foreign { .. } | Act::Metric { .. } => None,
        })
        .collect()
}

/// A daemon, seen from the runner. Every method but [`Device::wake`] and [`Device::run_job`] is
/// synchronous: decisions never wait.
pub trait Device: Send {
    /// Work the runner cannot do for the device; most devices have none (`()`).
    type Job: Send;

    /// What it is, what it subscribes to and publishes.
    fn spec(&self) -> DeviceSpec;

    /// What to do before the first connect (queued by the link until it is up).
    fn on_start(&mut self, _now: Timestamp) -> Vec<Act<Self::Job>> {
        Vec::new()
    }

    /// What to do on every (re)connect, after `online` and the subscriptions.
    fn on_connected(&mut self, _now: Timestamp) -> Vec<Act<Self::Job>> {
        Vec::new()
    }

    /// The connection to the broker was lost (the link reconnects by itself; `on_connected`
    /// follows). What the device has published meanwhile waits in the link.
    fn on_disconnected(&mut self, _now: Timestamp) -> Vec<Act<Self::Job>> {
        Vec::new()
    }

    /// The link published this device's reflex ([`DeviceSpec::reflex`]) to the message it takes
    /// next: the device leaves that publish out of what its step sends.
    fn on_reflex(&mut self) {}

    /// A message on one of the subscribed topics, decoded; or, when its payload is not what the
    /// contract says its topic carries, the [`Unreadable`] it is (a sensor's is a trouble, a
    /// command's a refusal, most are a log line).
    fn on_message(&mut self, _message: Result<Message, Unreadable>, _now: Timestamp) -> Vec<Act<Self::Job>> {
        Vec::new()
    }

    /// A message on a topic outside the contract, which the device subscribed to itself (the
    /// panel's tracked people's presence topics); `foreign.raw` is its payload. By default it is
    /// logged and ignored.
    fn on_foreign(&mut self, foreign: Unreadable, _now: Timestamp) -> Vec<Act<Self::Job>> {
        tracing::warn!("ignored a message: {}", foreign.why);
        Vec::new()
    }

    /// A message as the broker delivered it. By default it is decoded ([`Message::decode`]) and
    /// handed to [`Device::on_message`], or, on a topic outside the contract, to
    /// [`Device::on_foreign`].
    fn on_received(&mut self, topics: &Topics, received: Received, now: Timestamp) -> Vec<Act<Self::Job>> {
        match Message::decode(topics, &received.topic, &received.payload) {
            Err(e) if e.parsed.is_none() => self.on_foreign(e, now),
            Err(e) => {
                let mut acts = vec![Act::count(metrics::DECODE_FAILURES, &[], 1)];
                acts.extend(self.on_message(Err(e), now));
                acts
            }
            message => self.on_message(message, now),
        }
    }

    /// A message over `max_payload_bytes` was dropped by the link (devices with `manual_acks` only,
    /// which owe it an ack in its turn). By default it is acknowledged at once.
    fn on_oversized(&mut self, _topic: &str, _size: usize, ack: Ack, _now: Timestamp) -> Vec<Act<Self::Job>> {
        vec![Act::Ack(ack)]
    }

    /// No message is waiting: the moment to commit what was gathered (the recorder's group commit).
    fn on_idle(&mut self, _now: Timestamp) -> Vec<Act<Self::Job>> {
        Vec::new()
    }

    /// Shutdown: the last acts, done before the link says goodbye.
    fn on_stop(&mut self, _now: Timestamp) -> Vec<Act<Self::Job>> {
        Vec::new()
    }

    /// The earliest time [`Device::on_deadline`] has something to do.
    fn next_deadline(&self) -> Option<Timestamp> {
        None
    }

    /// Time passed: one or more deadlines may be due at `now`.
    fn on_deadline(&mut self, _now: Timestamp) -> Vec<Act<Self::Job>> {
        Vec::new()
    }

    /// An input source of the device's own (the panel's keypad thread). Never completes by default.
    fn wake(&mut self) -> impl Future<Output = Vec<Act<Self::Job>>> + Send {
        std::future::pending()
    }

    /// Carries out a job; what it returns is done next, after the acts already queued.
    fn run_job(&mut self, _job: Self::Job) -> impl Future<Output = Vec<Act<Self::Job>>> + Send {
        async { Vec::new() }
    }
}

/// A message as the broker delivered it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    pub topic: String,
    pub payload: Vec<u8>,
    /// Sent retained (the broker's stored state).
    pub retained: bool,
    /// The broker's DUP flag: it may have been delivered before.
    pub redelivered: bool,
    /// The acknowledgement it is owed (`manual_acks`, QoS 1 or 2).
    pub ack: Option<Ack>,
}

/// Runs `device` on the broker of `config` until `shutdown`.
pub async fn run<D: Device>(mut device: D, config: &MqttConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    let topics = Topics::new(&config.topic_root);
    let mut link = Link::start(config, device.spec(), shutdown.clone())?;
    let publisher = link.publisher.clone();
    let mut stats = metrics::Runner::new(&config.id);
    let acts = device.on_start(Timestamp::now());
    perform(&mut device, &publisher, &mut stats, acts).await;
    loop {
        let wake = device.next_deadline().map(instant);
        let acts = tokio::select! {
            () = shutdown.wait() => break,
            () = sleep_until(wake) => device.on_deadline(Timestamp::now()),
            acts = device.wake() => acts,
            inbound = link.inbox.recv() => match inbound {
                None => break,
                Some(inbound) => {
                    if link.reflexed() {
                        device.on_reflex();
                        // The broker hands the reflex on before the step competes with it.
                        link.reflex_heard(REFLEX_WAIT).await;
                    }
                    take(&mut device, &topics, &mut stats, inbound)
                }
            },
        };
        perform(&mut device, &publisher, &mut stats, acts).await;
        if link.inbox.is_empty() {
            let acts = device.on_idle(Timestamp::now());
            perform(&mut device, &publisher, &mut stats, acts).await;
        }
    }
    let acts = device.on_stop(Timestamp::now());
    perform(&mut device, &publisher, &mut stats, acts).await;
    link.finish().await;
    Ok(())
}

/// How long the step of a message the link had a reflex to waits for the broker to acknowledge
/// that reflex (its own PUBACK, by packet id): once the broker has handed it to its subscribers,
/// the step, its publishes and its disk no longer compete with it for the machine's cores. The
/// broker is woken on the core the daemon runs on; a daemon that steps at once keeps it waiting
/// (measured: the siren reached its subscribers ~120 µs after the write, ~35 µs once it waits).
pub const REFLEX_WAIT: std::time::Duration = std::time::Duration::from_millis(20);

/// What the link brought, to the device (and counted).
fn take<D: Device>(device: &mut D, topics: &Topics, stats: &mut metrics::Runner, inbound: Inbound) -> Vec<Act<D::Job>> {
    match inbound {
        Inbound::Connected { .. } => {
            stats.connected();
            device.on_connected(Timestamp::now())
        }
        Inbound::Message { topic, payload, retained, redelivered, ack } => {
            stats.received(topics.parse(&topic).map_or("foreign", |t| t.kind()));
            let received = Received { topic, payload, retained, redelivered, ack };
            device.on_received(topics, received, Timestamp::now())
        }
        Inbound::Oversized { topic, size, ack } => device.on_oversized(&topic, size, ack, Timestamp::now()),
        Inbound::Disconnected => {
            stats.disconnected();
            device.on_disconnected(Timestamp::now())
        }
    }
}

/// Does `acts` in order; a job's outcome joins the end of the queue.
///
/// What a step publishes goes on the wire before anything else of this turn: once something is
/// published, the link's task is let run (it writes the request) before the log lines of the
/// step are written and before the loop takes its next input. Without that, a panel reading a
/// burst of messages would take up to tokio's budget of them (128) before its siren command
/// left, and its log line for the siren would be written to stderr first.
async fn perform<D: Device>(
    device: &mut D,
    publisher: &Publisher,
    stats: &mut metrics::Runner,
    acts: Vec<Act<D::Job>>,
) {
    let mut queue = VecDeque::from(acts);
    let mut notes = Vec::new();
    // Recorded after the yield, as the log lines: nothing stands between a step and its publishes.
    let mut measures = Vec::new();
    let mut published = false;
    while let Some(act) = queue.pop_front() {
        match act {
            Act::Publish(out) => {
                let name = publisher.topics().name(&out.topic);
                if let Err(e) = publisher.send_bytes(&name, out.payload, out.topic.qos(), out.topic.retained()).await {
                    tracing::error!("{e}");
                }
                stats.published(out.topic.kind());
                published = true;
            }
            Act::Foreign { topic, payload, retain } => {
                if let Err(e) = publisher.send_bytes(&topic, payload, protocol::Qos::AtLeastOnce, retain).await {
                    tracing::error!("{e}");
                }
                stats.published("foreign");
                published = true;
            }
            Act::Note(line) => notes.push(line),
            Act::Ack(ack) => publisher.ack(ack),
            Act::Metric { metric, labels, value } => measures.push((metric, labels, value)),
            Act::Job(job) => {
                publisher.written(JOB_WAIT).await;
                published = false;
                log(&mut notes);
                queue.extend(device.run_job(job).await);
            }
        }
    }
    if published {
        tokio::task::yield_now().await;
    }
    for (metric, labels, value) in measures {
        metrics::record(metric, &stats.labels(&labels), value);
    }
    stats.unacknowledged(publisher.unacknowledged());
    log(&mut notes);
}

fn log(notes: &mut Vec<String>) {
    for line in notes.drain(..) {
        tracing::info!("{line}");
    }
}

/// The runtime's instant for a wall-clock deadline (one already past is now). Timestamps count
/// milliseconds: waking a millisecond late never finds the deadline not yet due.
fn instant(at: Timestamp) -> tokio::time::Instant {
    tokio::time::Instant::now() + at.since(Timestamp::now()) + std::time::Duration::from_millis(1)
}

/// Sleeps until `at`, or for ever.
async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
