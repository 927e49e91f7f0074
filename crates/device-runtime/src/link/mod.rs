//! The MQTT link: one task owns rumqttc's event loop and runs it the way production devices do.
//!
//! In pieces: [`state`] decides (a pure state machine, table-tested), [`driver`] is the async edge
//! that owns the event loop and carries the decisions out; [`options`] (connection options per
//! broker, TLS), [`publisher`] (what the daemon sends with, and its acks), [`subscriptions`]
//! (SUBSCRIBE and SUBACK), [`resend`] (what a lost connection left unsent), [`discovery`] (Home
//! Assistant's configs). What the link does, whichever piece does it:
//!
//! - Reconnects with exponential backoff and jitter (rumqttc has none: polling again at once spins
//!   a core), capped at 2 s so that every daemon is back within 3 s of the broker's return, however
//!   long the outage was. A refused connection (bad credentials) is reported once, clearly, and
//!   retried slowly.
//! - Subscribes on the first connect of the process, and again whenever the broker reports no
//!   session (rumqttc does not restore subscriptions).
//! - Several brokers (`--broker a,b,c`, a clustered engine's nodes): a broker that is lost, cannot
//!   be reached, or does not answer CONNECT within 5 s is followed by the next one of the list,
//!   round and round, with the same backoff. Where the engine shares sessions between its nodes
//!   (NATS keeps them in JetStream) the session resumes; elsewhere the link subscribes again. One
//!   log line says where it is connected now. A list is for one cluster's nodes: an independent
//!   broker it comes back to would hand over what it queued for the old session meanwhile.
//! - Last Will: `<root>/devices/<id>/availability` = `offline`, retained. On every connect it
//!   publishes `online` and its announce message, retained, after its subscriptions: `online`
//!   means "hears its topics". On shutdown it publishes `offline` and disconnects cleanly, so the
//!   will is not needed.
//! - Persistent session (clean session off, a stable client id) where the spec asks for it, so a
//!   command sent during a short outage is delivered and a reading queued during it is not lost.
//! - TCP_NODELAY on: with Nagle every hop waits for the next message or an ACK (10–22 ms per event
//!   measured at 100 events/s instead of ~0.3 ms).
//! - Payloads above `max_payload_bytes` are refused before sending (rumqttc would otherwise drop the
//!   connection and, with a persistent session, re-send it after every reconnect, forever) and
//!   ignored with one log line when received. The client's own incoming packet limit is MQTT's own
//!   maximum, so no message a broker can deliver costs the connection (a poison message would
//!   otherwise be redelivered on every reconnect and stand between the daemon and every later
//!   message). MQTT 5's Maximum Packet Size would let the broker drop such messages instead, but
//!   NATS and rumqttd's v4 listener speak only MQTT 3.1.1; the broker's `message_size_limit` (set in
//!   `mosquitto/mosquitto.conf`) is what bounds the memory one such message can take.
//!
//! Acknowledged after use, where the spec asks for it (`manual_acks`: the recorder): a QoS 1
//! message is acknowledged to the broker only when the daemon says so ([`Publisher::ack`]), after
//! it has made the message durable, so the broker keeps (and, after a reconnect, redelivers)
//! everything not yet stored. An [`Ack`] belongs to the connection that delivered the message: one
//! from an earlier connection is not sent (the broker redelivers that message with the DUP flag,
//! and its packet id may by then name a different message). What is left: an ack queued in the
//! instant a connection drops is sent on the next one; it acknowledges the redelivered copy of a
//! message already stored, which is harmless unless the broker has re-used that packet id by the
//! time the copy is acknowledged a second time.
//!
//! Acks are written in bulk. rumqttc's event loop writes one request per turn and reads up to ten
//! packets, so acks handed to it one by one fall behind a flood, and the broker's in-flight window
//! does not stop it: Mosquitto 2.0.11 enforces `max_inflight_messages` for a live session but not
//! for messages queued for a resumed one once the client acknowledges (measured: after acking 500
//! of 20 000 queued messages, the other 19 500 came unacknowledged). A recorder draining 1 M queued
//! readings held up to ~260 000 acks in rumqttc's queue, 128 bytes each (74 MiB). So only the
//! first ack of a group goes through rumqttc (the *nudge*, which wakes the event loop); the acks
//! behind it wait in a list of packet ids, and once rumqttc has written the nudge the link writes
//! them all to the socket itself, in order, and flushes once.
//!
//! Flow control, one way only: the link hands every message to the daemon through a bounded inbox
//! and waits for room there, so a daemon that falls behind a flood makes the link stop reading and
//! the broker keeps what it has not delivered (TCP backpressure), instead of the daemon's memory
//! growing with the backlog (1 M readings at 86 k/s grew the panel from 6 to 95 MiB through an
//! unbounded channel). The daemon never waits on the link: its request queue has no bound (its
//! publishes follow from what it reads, so they are bounded by the inbox), and the event loop task
//! uses `try_publish`/`try_subscribe`. So there is no circular wait. Nothing read is dropped.

mod discovery;
mod driver;
mod options;
mod publisher;
pub mod reflex;
mod resend;
pub mod state;
mod subscriptions;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::discovery::Entity;
use protocol::{DeviceKind, Qos, Topics};
use rumqttc::AsyncClient;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use self::driver::{Driver, Parts};
pub use self::publisher::{Ack, Publisher};
use self::publisher::{Progress, WaitingAcks};
use self::reflex::Fired;
pub use self::reflex::Reflex;
pub use self::state::LAST_RETRY;
use crate::config::MqttConfig;
use crate::shutdown::Shutdown;

/// The largest packet the client accepts from the broker: MQTT's own limit (the remaining length
/// is at most 268 435 455 bytes). rumqttc drops the connection on a packet above its limit, and the
/// broker would redeliver it on every reconnect; read and discarded, it costs one log line.
pub const INCOMING_PACKET_LIMIT: usize = 268_435_455;
/// Messages read from the broker and not yet taken by the daemon, at most.
pub const INBOX_CAPACITY: usize = 1024;

/// Why the link cannot be set up or cannot send.
#[derive(Debug, thiserror::Error)]
pub enum LinkError {
    #[error("cannot read CA file {path}: {source}")]
    CaFile { path: std::path::PathBuf, source: std::io::Error },
    #[error("refused to publish {size} bytes on {topic}: the limit is {max} bytes (mqtt.max_payload_bytes)")]
    PayloadTooLarge { topic: String, size: usize, max: usize },
    #[error("the MQTT link has stopped; cannot publish on {topic}")]
    Closed { topic: String },
}

/// What a daemon is and what it listens to.
#[derive(Debug, Clone)]
pub struct DeviceSpec {
    pub kind: DeviceKind,
    pub capabilities: Vec<String>,
    /// Topic filters to subscribe to, with their QoS.
    pub subscriptions: Vec<(String, Qos)>,
    /// Topics this device publishes state on (for the announce message).
    pub state_topics: Vec<String>,
    /// Topics this device takes commands on (for the announce message).
    pub command_topics: Vec<String>,
    /// Keep the session across disconnects (clean session off). Daemons that take commands want this.
    pub persistent_session: bool,
    /// Keep a retained availability (Last Will) and announce message. Off for short-lived tools
    /// such as the control CLI, which must not leave a device behind in the broker.
    pub presence: bool,
    /// The daemon acknowledges each QoS 1 message itself ([`Publisher::ack`]) once it has made
    /// it durable, instead of the link acknowledging it on receipt.
    pub manual_acks: bool,
    /// Subscribe again on the first connect of the process even when the broker kept the
    /// session, to be sent the retained state again (a restarted daemon needs it). Off for a
    /// daemon that keeps its own history (the recorder): the session's queued messages bring
    /// everything it missed, in order, and a retained copy sent ahead of them would be out of order.
    pub retained_on_restart: bool,
    /// What this device shows in Home Assistant (published when `mqtt.ha_discovery` is on).
    pub discovery: Vec<Entity>,
    /// Subscribe as one of a group (`$share/<group>/<filter>`): the broker gives each message to
    /// one member, so several instances of a stateless consumer split the load. Only for daemons
    /// whose state is theirs alone (the recorder, the notifier), never for the panel; Mosquitto 2
    /// shares among MQTT 3.1.1 clients too, NATS does not (nothing arrives).
    pub share_group: Option<String>,
    /// What the link publishes itself the moment a message is read (see [`reflex`]): the
    /// panel's siren command. None for most daemons.
    pub reflex: Option<Arc<dyn Reflex>>,
}

impl DeviceSpec {
    pub fn new(kind: DeviceKind) -> DeviceSpec {
        DeviceSpec {
            kind,
            capabilities: Vec::new(),
            subscriptions: Vec::new(),
            state_topics: Vec::new(),
            command_topics: Vec::new(),
            persistent_session: true,
            presence: true,
            manual_acks: false,
            retained_on_restart: true,
            discovery: Vec::new(),
            share_group: None,
            reflex: None,
        }
    }
}

/// What the link hands to its daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inbound {
    /// Connected (or reconnected). The subscriptions, then `online` and the announce, are queued by
    /// then, not yet acknowledged: a message another client publishes at once may come before the
    /// subscription; one published after it saw this device `online` does not.
    Connected { session_present: bool },
    /// A message on one of the subscribed topics, no larger than `max_payload_bytes`.
    Message {
        topic: String,
        payload: Vec<u8>,
        /// Sent retained: the broker's stored state (on subscribe), or published retained.
        retained: bool,
        /// The broker's DUP flag: it may have delivered this message before.
        redelivered: bool,
        /// What to hand to [`Publisher::ack`] once the message is durable (`manual_acks` and
        /// QoS 1 or 2 only).
        ack: Option<Ack>,
    },
    /// A message over `max_payload_bytes`, read and dropped; sent only to a daemon that
    /// acknowledges by itself, which owes it an ack in its turn.
    Oversized { topic: String, size: usize, ack: Ack },
    /// The connection was lost; the link is trying again (a `Connected` follows when it is back).
    Disconnected,
}

/// A running link: its publisher, its inbox, and the task that owns the event loop.
pub struct Link {
    pub publisher: Publisher,
    pub inbox: mpsc::Receiver<Inbound>,
    fired: Arc<Fired>,
    task: JoinHandle<()>,
}

impl Link {
    /// Starts the link's task. Connecting happens in the background: an unreachable broker is retried, not fatal.
    pub fn start(config: &MqttConfig, mut spec: DeviceSpec, shutdown: Shutdown) -> Result<Link, LinkError> {
        spec.reflex = reflex::usable(spec.reflex.take());
        let brokers = options::per_broker(config, &spec)?;
        for bad in config.broker.set_aside() {
            tracing::warn!("{bad}; it is left out, the other brokers are used: {}", config.broker);
        }
        // No bound on requests that matters (flume allocates as it fills; it adds one to the
        // bound, so not usize::MAX): see the module's flow control.
        let (client, mut eventloop) = AsyncClient::new(brokers[0].1.clone(), usize::MAX / 2);
        eventloop.set_network_options(options::network());
        let (tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let progress = Arc::new(Progress::default());
        let acks = Arc::new(Mutex::new(WaitingAcks::default()));
        let fired = Arc::new(Fired::default());
        let parts = Parts {
            client: client.clone(),
            brokers,
            tx,
            progress: progress.clone(),
            acks: acks.clone(),
            fired: fired.clone(),
        };
        let driver = Driver::new(config, spec, parts);
        let task = tokio::spawn(driver.run(eventloop, shutdown).in_current_span());
        let publisher = Publisher {
            client,
            topics: Topics::new(&config.topic_root),
            device_id: config.id.clone(),
            max_payload: config.max_payload_bytes,
            progress,
            acks,
        };
        Ok(Link { publisher, inbox, fired, task })
    }

    /// Whether the link fired a reflex for the message just taken from the inbox (the first
    /// one taken after it fired: the inbox was empty then). Asked once per message; true once.
    pub fn reflexed(&self) -> bool {
        self.fired.take()
    }

    /// Waits until the broker has acknowledged the reflex the link fired last, or `within` has
    /// passed (at once when none waits). The broker acknowledges once it has handed the publish
    /// to its subscribers: a daemon that steps after it does not compete with the broker for
    /// the core the broker was woken on.
    pub async fn reflex_heard(&self, within: Duration) {
        self.fired.heard(within).await;
    }

    /// Waits up to `timeout` for the first connect; false if it did not come (or the link stopped).
    /// For short-lived tools; daemons do not wait: they run and the link connects when it can.
    pub async fn connected(&mut self, timeout: Duration) -> bool {
        let connected = async {
            while let Some(inbound) = self.inbox.recv().await {
                if matches!(inbound, Inbound::Connected { .. }) {
                    return true;
                }
            }
            false
        };
        tokio::time::timeout(timeout, connected).await.unwrap_or(false)
    }

    /// Waits until the link's task has said goodbye (after shutdown was triggered).
    pub async fn finish(self) {
        drop(self.inbox);
        let _ = self.task.await;
    }
}
