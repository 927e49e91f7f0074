//! The MQTT link: one task owns rumqttc's event loop and runs it the way production devices do.
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

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::discovery::{self, Node};
use protocol::{Announce, Availability, DeviceKind, Payload, Qos, Timestamp, Topic, Topics};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, LastWill, MqttOptions, NetworkOptions, Outgoing,
    Packet, PubAck, PubRec, QoS, Request, SubscribeReasonCode, Transport,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::broker::BrokerUrl;
use crate::config::MqttConfig;
use crate::shutdown::Shutdown;

/// The largest packet the client accepts from the broker: MQTT's own limit (the remaining length
/// is at most 268 435 455 bytes). rumqttc drops the connection on a packet above its limit, and the
/// broker would redeliver it on every reconnect; read and discarded, it costs one log line.
pub const INCOMING_PACKET_LIMIT: usize = 268_435_455;
/// Messages read from the broker and not yet taken by the daemon, at most.
pub const INBOX_CAPACITY: usize = 1024;
/// Room for the topic and headers around a payload.
const PACKET_OVERHEAD: usize = 4 * 1024;
const FIRST_RETRY: Duration = Duration::from_millis(250);
/// The longest wait between two attempts: after an outage of any length, a daemon is back within
/// this (plus the connect itself) of the broker's return.
pub const LAST_RETRY: Duration = Duration::from_secs(2);
const REFUSED_RETRY: Duration = Duration::from_secs(15);
/// A refused subscription is tried again after this, doubling up to a minute.
const RESUBSCRIBE_FIRST: Duration = Duration::from_secs(2);
const LAST_RETRY_SUBSCRIBE: Duration = Duration::from_secs(60);
/// How long a broker has to accept TCP and answer CONNECT; then the next one is tried.
const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a clean shutdown may take to publish `offline` and disconnect.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);
/// The longest wait to write a group of acks (rumqttc's own network timeout is 5 s).
const ACK_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

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
    pub discovery: Vec<discovery::Entity>,
    /// Subscribe as one of a group (`$share/<group>/<filter>`): the broker gives each message to
    /// one member, so several instances of a stateless consumer split the load. Only for daemons
    /// whose state is theirs alone (the recorder, the notifier), never for the panel; Mosquitto 2
    /// shares among MQTT 3.1.1 clients too, NATS does not (nothing arrives).
    pub share_group: Option<String>,
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

/// The acknowledgement a message is owed, for a daemon that acknowledges messages itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pkid: u16,
    qos: Qos,
    /// The connection that delivered the message (counted from 1).
    connection: u64,
}

/// Publishes on behalf of one device. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    client: AsyncClient,
    topics: Topics,
    device_id: String,
    max_payload: usize,
    progress: Arc<Progress>,
    acks: Arc<Mutex<WaitingAcks>>,
}

/// The acks behind the one rumqttc is about to write (see the module's "Acks are written in bulk").
#[derive(Debug, Default)]
struct WaitingAcks {
    /// The packet id of the ack in rumqttc's queue, until it is written.
    nudge: Option<u16>,
    /// Acks that came after the nudge, in order.
    waiting: Vec<(u16, Qos)>,
}

impl WaitingAcks {
    /// Forgets every ack of a connection that has ended: rumqttc drops the acks in its queue too.
    fn connection_ended(&mut self) {
        self.nudge = None;
        self.waiting.clear();
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher").field("device_id", &self.device_id).field("topics", &self.topics).finish()
    }
}

impl Publisher {
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Publishes `payload` on `topic` with the QoS and retain flag the contract gives the topic.
    pub async fn send<P: Payload>(&self, topic: &Topic, payload: &P) -> Result<(), LinkError> {
        self.send_bytes(&self.topics.name(topic), payload.encode(), topic.qos(), topic.retained()).await
    }

    /// Publishes raw bytes. Never waits on the link: its request queue has no bound.
    pub async fn send_bytes(&self, topic: &str, payload: Vec<u8>, qos: Qos, retain: bool) -> Result<(), LinkError> {
        if payload.len() > self.max_payload {
            return Err(LinkError::PayloadTooLarge {
                topic: topic.to_owned(),
                size: payload.len(),
                max: self.max_payload,
            });
        }
        self.client
            .publish(topic, to_qos(qos), retain, payload)
            .await
            .map_err(|_| LinkError::Closed { topic: topic.to_owned() })?;
        self.progress.queued.fetch_add(1, Ordering::SeqCst);
        if qos != Qos::AtMostOnce {
            self.progress.to_acknowledge.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Acknowledges a message the daemon has made durable. An ack owed by an earlier connection is
    /// not sent: the broker redelivers that message (flagged DUP) and will be acknowledged then.
    pub fn ack(&self, ack: Ack) {
        let mut acks = self.acks.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if ack.connection != self.progress.connection.load(Ordering::SeqCst) {
            tracing::debug!("not acknowledging packet {} of an earlier connection: it is redelivered", ack.pkid);
            return;
        }
        if acks.nudge.is_some() {
            acks.waiting.push((ack.pkid, ack.qos));
            return;
        }
        let mut publish = rumqttc::Publish::new("", to_qos(ack.qos), Vec::new());
        publish.pkid = ack.pkid;
        // The request queue has no bound that matters, so this fails only once the link has stopped.
        if self.client.try_ack(&publish).is_err() {
            tracing::debug!("the link has stopped; packet {} is redelivered on the next connect", ack.pkid);
            return;
        }
        acks.nudge = Some(ack.pkid);
    }

    /// Waits until every publish queued so far has been written to the broker's socket, or
    /// `within` passed (a link without a broker writes nothing). What must not wait for a disk —
    /// the siren — is on the wire before the disk is touched.
    pub async fn written(&self, within: Duration) {
        let target = self.progress.queued.load(Ordering::SeqCst);
        let all_written = async {
            loop {
                let wrote = self.progress.wrote.notified();
                tokio::pin!(wrote);
                wrote.as_mut().enable();
                if self.progress.written.load(Ordering::SeqCst) >= target {
                    return;
                }
                wrote.await;
            }
        };
        let _ = tokio::time::timeout(within, all_written).await;
    }
}

/// How far the link has come with the daemon's publishes.
#[derive(Debug, Default)]
struct Progress {
    /// Publish requests queued so far (the daemon's, `online`, announce, `offline`).
    queued: AtomicU64,
    /// Publishes written to the socket (re-sends after a reconnect count again).
    written: AtomicU64,
    /// The daemon's QoS 1 and 2 publishes, and the PUBACKs and PUBCOMPs received (re-sends after
    /// a reconnect are acknowledged again: a bound, not an exact count).
    to_acknowledge: AtomicU64,
    acked: AtomicU64,
    /// Woken on every write and every acknowledgement.
    wrote: tokio::sync::Notify,
    /// Counts connects and disconnects: acks are sent only for messages of the current connection.
    connection: AtomicU64,
    /// Shutdown's `offline` is in the request queue (or there is none to send).
    goodbye_queued: std::sync::atomic::AtomicBool,
}

impl Progress {
    fn queue(&self, n: u64) {
        self.queued.fetch_add(n, Ordering::SeqCst);
    }

    fn all_written(&self) -> bool {
        self.written.load(Ordering::SeqCst) >= self.queued.load(Ordering::SeqCst)
    }

    /// Waits until everything queued is written and acknowledged, or `within` passed.
    async fn acknowledged(&self, within: Duration) {
        let done = async {
            loop {
                let wrote = self.wrote.notified();
                tokio::pin!(wrote);
                wrote.as_mut().enable();
                let acked = self.acked.load(Ordering::SeqCst) >= self.to_acknowledge.load(Ordering::SeqCst);
                if self.all_written() && acked {
                    return;
                }
                wrote.await;
            }
        };
        let _ = tokio::time::timeout(within, done).await;
    }
}

/// A running link: its publisher, its inbox, and the task that owns the event loop.
pub struct Link {
    pub publisher: Publisher,
    pub inbox: mpsc::Receiver<Inbound>,
    task: JoinHandle<()>,
}

impl Link {
    /// Starts the link's task. Connecting happens in the background: an unreachable broker is retried, not fatal.
    pub fn start(config: &MqttConfig, spec: DeviceSpec, shutdown: Shutdown) -> Result<Link, LinkError> {
        let topics = Topics::new(&config.topic_root);
        let id = config.id.clone();
        let client_id = format!("{}-{}", config.topic_root.replace('/', "-"), id);
        let availability = topics.name(&Topic::Availability(id.clone()));

        // One set of options per broker, the same but for the address: on losing one, the event
        // loop is given the next one's (see `Driver::fail_over`).
        let options_for = |url: &BrokerUrl| -> Result<MqttOptions, LinkError> {
            let mut options = MqttOptions::new(client_id.clone(), url.host.clone(), url.port);
            options
                .set_keep_alive(Duration::from_secs(config.keep_alive_s.max(1)))
                .set_clean_session(!spec.persistent_session)
                .set_max_packet_size(INCOMING_PACKET_LIMIT, config.max_payload_bytes + PACKET_OVERHEAD)
                .set_manual_acks(spec.manual_acks);
            if spec.presence {
                let will = LastWill::new(&availability, Availability::Offline.encode(), QoS::AtLeastOnce, true);
                options.set_last_will(will);
            }
            if let Some(user) = &config.username {
                let password = config.password.as_ref().map(|p| p.expose().to_owned()).unwrap_or_default();
                options.set_credentials(user.clone(), password);
            }
            if url.tls {
                options.set_transport(tls_transport(config)?);
            }
            Ok(options)
        };
        let brokers = config
            .broker
            .urls()
            .iter()
            .map(|url| Ok((url.clone(), options_for(url)?)))
            .collect::<Result<Vec<_>, LinkError>>()?;
        for bad in config.broker.set_aside() {
            tracing::warn!("{bad}; it is left out, the other brokers are used: {}", config.broker);
        }

        // No bound on requests that matters (flume allocates as it fills; it adds one to the
        // bound, so not usize::MAX): see the module's flow control.
        let (client, mut eventloop) = AsyncClient::new(brokers[0].1.clone(), usize::MAX / 2);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        network.set_connection_timeout(CONNECTION_TIMEOUT.as_secs());
        eventloop.set_network_options(network);

        let (tx, inbox) = mpsc::channel(INBOX_CAPACITY);
        let announce = Announce {
            device_id: id.clone(),
            kind: spec.kind,
            capabilities: spec.capabilities.clone(),
            version: protocol::VERSION.to_owned(),
            state_topics: spec.state_topics.clone(),
            command_topics: spec.command_topics.clone(),
            ts: Timestamp(0),
        };
        let progress = Arc::new(Progress::default());
        let acks = Arc::new(Mutex::new(WaitingAcks::default()));
        let home_assistant = HomeAssistant::new(config, &topics, &spec);
        let driver = Driver {
            home_assistant,
            progress: progress.clone(),
            acks: acks.clone(),
            client: client.clone(),
            brokers,
            current: 0,
            unacknowledged: Vec::new(),
            given_back: Vec::new(),
            subscribes: Arc::default(),
            refusals: 0,
            retry: None,
            spec,
            availability,
            announce_topic: topics.name(&Topic::Announce(id.clone())),
            announce,
            tx,
            max_payload: config.max_payload_bytes,
        };
        let task = tokio::spawn(driver.run(eventloop, shutdown).in_current_span());
        Ok(Link {
            publisher: Publisher {
                client,
                topics,
                device_id: id,
                max_payload: config.max_payload_bytes,
                progress,
                acks,
            },
            inbox,
            task,
        })
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

struct Driver {
    home_assistant: HomeAssistant,
    client: AsyncClient,
    /// Every broker with its options, and the one the event loop is on.
    brokers: Vec<(BrokerUrl, MqttOptions)>,
    current: usize,
    /// What a lost connection left unacknowledged or unsent, kept until the next CONNACK says
    /// whether the broker still has the session (see `Driver::resend`).
    unacknowledged: Vec<Request>,
    /// What `resend` gave back to rumqttc on the last CONNACK, in order (see `restore_order`).
    given_back: Vec<Request>,
    /// Each SUBSCRIBE's filters, to read its SUBACK; how many SUBACKs in a row refused one; and
    /// the one pending retry of the refused filters.
    subscribes: Arc<Mutex<Subscribes>>,
    refusals: u32,
    retry: Option<JoinHandle<()>>,
    spec: DeviceSpec,
    availability: String,
    announce_topic: String,
    announce: Announce,
    tx: mpsc::Sender<Inbound>,
    max_payload: usize,
    progress: Arc<Progress>,
    acks: Arc<Mutex<WaitingAcks>>,
}

impl Driver {
    /// The broker the event loop is on (or trying).
    fn url(&self) -> &BrokerUrl {
        &self.brokers[self.current].0
    }

    /// rumqttc keeps what a lost connection left unacknowledged (and what was still queued) to
    /// send again, but forgets it all when the next broker has no session for the client: a
    /// reading published during a fail-over to a broker that does not share sessions, or to a
    /// restarted one without persistence, would be lost. The link keeps it instead, and on the
    /// CONNACK gives it back: as it was on a resumed session (MQTT's retransmission), and on a new
    /// session the messages alone, as new ones (subscriptions are made again anyway; acks and
    /// releases belong to the old session).
    fn resend(&mut self, eventloop: &mut EventLoop, session_present: bool) {
        let requests = std::mem::take(&mut self.unacknowledged);
        let requests: Vec<Request> = if session_present {
            requests
        } else {
            let mut again = Vec::with_capacity(requests.len());
            for request in requests {
                match request {
                    Request::Publish(mut publish) => {
                        publish.pkid = 0;
                        publish.dup = false;
                        again.push(Request::Publish(publish));
                    }
                    Request::Disconnect(d) => again.push(Request::Disconnect(d)),
                    _ => {}
                }
            }
            if !again.is_empty() {
                tracing::info!(
                    "{} messages not acknowledged by the last broker sent again on the new session",
                    again.len()
                );
            }
            again
        };
        let behind = std::mem::take(&mut eventloop.pending);
        self.given_back = requests.clone();
        eventloop.pending.extend(requests);
        eventloop.pending.extend(behind);
    }

    /// After a lost connection: what rumqttc kept to send again, in the order it was first sent.
    fn keep_unacknowledged(&mut self, eventloop: &mut EventLoop) {
        let drained: Vec<Request> = eventloop.pending.drain(..).collect();
        // A publish with a packet id was written before (rumqttc numbers QoS 1 publishes as it
        // writes them): it will be written again, so it counts again in what must be written.
        let rewrites = drained.iter().filter(|r| matches!(r, Request::Publish(p) if p.pkid != 0)).count();
        self.progress.queue(rewrites as u64);
        let given_back = std::mem::take(&mut self.given_back);
        self.unacknowledged.extend(restore_order(&given_back, drained));
    }

    /// After a failure: the next broker of the list (the same one when there is only one).
    fn fail_over(&mut self, eventloop: &mut EventLoop) {
        if self.brokers.len() > 1 {
            self.current = (self.current + 1) % self.brokers.len();
            eventloop.mqtt_options = self.brokers[self.current].1.clone();
        }
    }

    async fn run(mut self, mut eventloop: EventLoop, shutdown: Shutdown) {
        // Goodbye: `offline` goes through the request queue, behind everything the daemon already
        // sent. The DISCONNECT follows once every queued publish is written and acknowledged, so a
        // reading published just before shutdown is delivered, not cut off with the socket.
        let goodbye = {
            let (client, shutdown, topic) = (self.client.clone(), shutdown.clone(), self.availability.clone());
            let progress = self.progress.clone();
            let presence = self.spec.presence;
            tokio::spawn(async move {
                shutdown.wait().await;
                if presence {
                    if client.try_publish(topic, QoS::AtLeastOnce, true, Availability::Offline.encode()).is_ok() {
                        progress.queue(1);
                    }
                } else {
                    // Without presence there is no `offline` to wake the event loop: the DISCONNECT
                    // is queued from here, once the broker has acknowledged what the caller
                    // published (or GOODBYE_TIMEOUT passed). Not at once: a client that closes
                    // with the broker's PUBACKs unread resets the connection, and Mosquitto then
                    // discards what it had received but not yet read — `forget` cleared one topic
                    // of eight that way.
                    progress.acknowledged(GOODBYE_TIMEOUT).await;
                    let _ = client.try_disconnect();
                }
                // Only now may the event loop disconnect: a DISCONNECT queued ahead of `offline`
                // would discard the Last Will too, and the device would never be seen to go.
                progress.goodbye_queued.store(true, Ordering::SeqCst);
            })
        };
        let mut disconnecting = false;
        let mut backoff = Backoff::default();
        let mut subscribed_once = false;
        let mut connected = false;
        let mut failures: u32 = 0;
        let mut goodbye_deadline: Option<tokio::time::Instant> = None;
        loop {
            let event = if connected {
                // A poll is never cancelled while connected: it may hold a request it has taken from
                // the queue but not yet written, and dropping it would lose that request.
                if shutdown.is_triggered() {
                    let deadline =
                        *goodbye_deadline.get_or_insert_with(|| tokio::time::Instant::now() + GOODBYE_TIMEOUT);
                    match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                        Ok(event) => event,
                        Err(_) => {
                            tracing::warn!("could not say goodbye to {} within {GOODBYE_TIMEOUT:?}", self.url());
                            break;
                        }
                    }
                } else {
                    eventloop.poll().await
                }
            } else {
                tokio::select! {
                    biased;
                    () = shutdown.wait() => break,
                    event = eventloop.poll() => event,
                }
            };
            match event {
                Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                    backoff = Backoff::default();
                    let (url, n) = (self.url(), self.brokers.len());
                    let which = if n > 1 { format!(" (broker {} of {n})", self.current + 1) } else { String::new() };
                    let session = if ack.session_present { "session resumed" } else { "new session" };
                    if failures > 0 {
                        tracing::info!("reconnected to {url}{which} after {failures} failed attempts, {session}");
                    } else {
                        tracing::info!("connected to {url}{which} as {}", self.announce.device_id);
                    }
                    failures = 0;
                    connected = true;
                    self.progress.connection.fetch_add(1, Ordering::SeqCst);
                    self.lock_acks().connection_ended();
                    mark_health(true);
                    self.resend(&mut eventloop, ack.session_present);
                    {
                        // SUBSCRIBEs written on the lost connection get no SUBACK; queued ones
                        // are sent again only on a resumed session (`resend`).
                        let mut subscribes = lock(&self.subscribes);
                        subscribes.written.clear();
                        if !ack.session_present {
                            subscribes.queued.clear();
                        }
                    }
                    self.on_connected(ack.session_present, &mut subscribed_once);
                    let _ = self.tx.send(Inbound::Connected { session_present: ack.session_present }).await;
                }
                Ok(Event::Incoming(Packet::Publish(publish))) if self.home_assistant.is_status(&publish.topic) => {
                    if publish.payload.as_ref() == b"online" {
                        tracing::debug!("Home Assistant is online: sending its discovery configs again");
                        self.home_assistant.announce(&self.client, &self.progress);
                    }
                }
                Ok(Event::Incoming(Packet::Publish(publish))) => {
                    if publish.payload.len() > self.max_payload {
                        tracing::warn!(
                            "ignored a {} byte message on {}: larger than mqtt.max_payload_bytes ({})",
                            publish.payload.len(),
                            publish.topic,
                            self.max_payload
                        );
                        // A daemon that acknowledges by itself is told, so that it acknowledges
                        // this one in its turn: acks go in the order messages came (MQTT 3.1.1
                        // 4.6; rumqttd drops a client that breaks it). Unacknowledged, the broker
                        // would hold it and redeliver it on every reconnect.
                        if let Some(ack) = self.ack_for(&publish) {
                            let oversized =
                                Inbound::Oversized { topic: publish.topic, size: publish.payload.len(), ack };
                            let _ = self.tx.send(oversized).await;
                        }
                        continue;
                    }
                    let ack = self.ack_for(&publish);
                    let message = Inbound::Message {
                        topic: publish.topic,
                        payload: publish.payload.to_vec(),
                        retained: publish.retain,
                        redelivered: publish.dup,
                        ack,
                    };
                    // Waits for room in the inbox; the daemon takes from it without publishing
                    // first, so this never waits on the link's own request queue.
                    if self.tx.send(message).await.is_err() {
                        tracing::debug!("daemon stopped reading; message dropped during shutdown");
                    }
                }
                Ok(Event::Incoming(Packet::SubAck(ack))) => self.on_suback(&ack),
                Ok(Event::Incoming(Packet::PubAck(_) | Packet::PubComp(_))) => {
                    self.progress.acked.fetch_add(1, Ordering::SeqCst);
                    self.progress.wrote.notify_waiters();
                }
                Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                    let mut subscribes = lock(&self.subscribes);
                    if let Some(filters) = subscribes.queued.pop_front() {
                        subscribes.written.insert(pkid, filters);
                    }
                }
                Ok(Event::Outgoing(Outgoing::Disconnect)) => {
                    if self.spec.presence {
                        tracing::info!(
                            "{} published offline and disconnected from {}",
                            self.announce.device_id,
                            self.url()
                        );
                    } else {
                        tracing::debug!("{} disconnected from {}", self.announce.device_id, self.url());
                    }
                    break;
                }
                Ok(Event::Outgoing(Outgoing::PubAck(pkid) | Outgoing::PubRec(pkid))) => {
                    self.write_waiting_acks(pkid, &mut eventloop).await;
                }
                Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                    self.progress.written.fetch_add(1, Ordering::SeqCst);
                    self.progress.wrote.notify_waiters();
                }
                Ok(_) => {}
                Err(_) if shutdown.is_triggered() => break,
                Err(error) => {
                    if connected {
                        let _ = self.tx.send(Inbound::Disconnected).await;
                    }
                    connected = false;
                    // Acks owed by this connection are void from now on (see `Publisher::ack`).
                    self.progress.connection.fetch_add(1, Ordering::SeqCst);
                    self.lock_acks().connection_ended();
                    mark_health(false);
                    failures += 1;
                    let delay = backoff.next(&error);
                    self.keep_unacknowledged(&mut eventloop);
                    let failed = self.url().clone();
                    self.fail_over(&mut eventloop);
                    self.report(&error, &failed, failures, delay);
                    tokio::select! {
                        () = shutdown.wait() => break,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
            // The flag first: once it is set, `offline` is counted in what must be written.
            let goodbye_queued = self.progress.goodbye_queued.load(Ordering::SeqCst);
            let all_written = self.progress.all_written();
            if shutdown.is_triggered()
                && goodbye_queued
                && connected
                && !disconnecting
                && all_written
                && eventloop.state.inflight() == 0
            {
                disconnecting = self.client.try_disconnect().is_ok();
            }
        }
        goodbye.abort();
        if let Some(retry) = self.retry.take() {
            retry.abort();
        }
        mark_health(false);
    }

    fn lock_acks(&self) -> std::sync::MutexGuard<'_, WaitingAcks> {
        self.acks.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// rumqttc has written the ack `pkid`: if it was the nudge, writes the acks waiting behind it
    /// straight to the socket, in order, with one flush. A failed write loses only acks: the
    /// broker redelivers those messages, and the next poll finds the broken connection.
    async fn write_waiting_acks(&self, pkid: u16, eventloop: &mut EventLoop) {
        let waiting = {
            let mut acks = self.lock_acks();
            if acks.nudge != Some(pkid) {
                return;
            }
            acks.nudge = None;
            std::mem::take(&mut acks.waiting)
        };
        let Some(network) = eventloop.network.as_mut() else { return };
        let written = async {
            for (pkid, qos) in waiting {
                let packet = match qos {
                    // The state keeps QoS 2's packet ids until the release; a PUBACK needs nothing.
                    Qos::ExactlyOnce => eventloop.state.handle_outgoing_packet(Request::PubRec(PubRec::new(pkid)))?,
                    _ => Some(Packet::PubAck(PubAck::new(pkid))),
                };
                if let Some(packet) = packet {
                    network.write(packet).await?;
                }
            }
            network.flush().await
        };
        match tokio::time::timeout(ACK_WRITE_TIMEOUT, written).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("could not write acks ({e}); their messages are redelivered"),
            Err(_) => tracing::debug!("writing acks took over {ACK_WRITE_TIMEOUT:?}; their messages are redelivered"),
        }
    }

    /// The ack a message is owed by a daemon that acknowledges by itself.
    fn ack_for(&self, publish: &rumqttc::Publish) -> Option<Ack> {
        (self.spec.manual_acks && publish.qos != QoS::AtMostOnce).then(|| Ack {
            pkid: publish.pkid,
            qos: from_qos(publish.qos),
            connection: self.progress.connection.load(Ordering::SeqCst),
        })
    }

    /// Subscribes first, then says `online`: the broker handles one connection's packets in
    /// order, so whoever sees `online` knows this device already hears its topics.
    /// A refused subscription is tried again, 2 s doubling to a minute: an ACL that forbids it
    /// stays a loud error, but on a clustered engine a subscription can also fail for a few
    /// seconds while the loss of a node is handled (NATS: 5–10 s), and a daemon must not go deaf
    /// to its topics until its next reconnect. A SUBACK is read against its own SUBSCRIBE's
    /// filters, found by packet id; one retry waits at a time.
    fn on_suback(&mut self, ack: &rumqttc::SubAck) {
        let failed = |c: &SubscribeReasonCode| matches!(c, SubscribeReasonCode::Failure);
        let filters = lock(&self.subscribes).written.remove(&ack.pkid).unwrap_or_default();
        if !ack.return_codes.iter().any(failed) {
            self.refusals = 0;
            return;
        }
        let refused: Vec<rumqttc::SubscribeFilter> =
            filters.iter().zip(&ack.return_codes).filter(|(_, c)| failed(c)).map(|(f, _)| f.clone()).collect();
        if refused.is_empty() {
            return;
        }
        self.refusals += 1;
        let delay = RESUBSCRIBE_FIRST.saturating_mul(1 << (self.refusals - 1).min(5)).min(LAST_RETRY_SUBSCRIBE);
        let names: Vec<&str> = refused.iter().map(|f| f.path.as_str()).collect();
        let message = format!(
            "the broker refused the subscription to {names:?}: check this user's ACL (mqtt.username), or a \
             clustered broker is still taking over from a lost node; trying again in {} s",
            delay.as_secs()
        );
        if self.refusals == 1 || self.refusals.is_multiple_of(10) {
            tracing::error!("{message}");
        } else {
            tracing::debug!("{message}");
        }
        let (client, subscribes) = (self.client.clone(), self.subscribes.clone());
        if let Some(earlier) = self.retry.replace(tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            subscribe(&client, &subscribes, refused);
        })) {
            earlier.abort();
        }
    }

    fn on_connected(&mut self, session_present: bool, subscribed_once: &mut bool) {
        // On the first connect of this process we subscribe even if the broker kept our session:
        // a restarted daemon needs the retained state again. Mosquitto resends it for a repeated
        // subscription, as MQTT 3.1.1 asks. rumqttd 0.20 does not (its router forwards retained
        // messages for new subscriptions only), so a daemon restarted against a long-running
        // embedded broker relearns state only as it changes; `mqtt-home` restarts broker and
        // daemons together, which leaves no session behind.
        let restarted = !*subscribed_once && self.spec.retained_on_restart;
        let shared = |filter: &str| match &self.spec.share_group {
            Some(group) => format!("$share/{group}/{filter}"),
            None => filter.to_owned(),
        };
        let mut filters: Vec<rumqttc::SubscribeFilter> =
            self.spec.subscriptions.iter().map(|(f, q)| rumqttc::SubscribeFilter::new(shared(f), to_qos(*q))).collect();
        filters.extend(self.home_assistant.subscription());
        if !filters.is_empty() && (!session_present || restarted) {
            // Everything is subscribed again: a retry of a part of it is moot.
            if let Some(retry) = self.retry.take() {
                retry.abort();
            }
            subscribe(&self.client, &self.subscribes, filters);
            *subscribed_once = true;
        }
        if self.spec.presence {
            let online =
                self.client.try_publish(&self.availability, QoS::AtLeastOnce, true, Availability::Online.encode());
            self.announce.ts = Timestamp::now();
            let announced =
                self.client.try_publish(&self.announce_topic, QoS::AtLeastOnce, true, self.announce.encode());
            let sent = u64::from(online.is_ok()) + u64::from(announced.is_ok());
            self.progress.queue(sent);
            if online.is_err() || announced.is_err() {
                tracing::warn!("request queue full: could not publish availability/announce on this connect");
            }
            self.home_assistant.announce(&self.client, &self.progress);
        }
    }

    /// One line on a failed or lost connection to `url`, saying what comes next.
    fn report(&self, error: &ConnectionError, url: &BrokerUrl, failures: u32, delay: Duration) {
        let next = self.url();
        let then = if next == url {
            format!("retrying in {:.1} s", delay.as_secs_f32())
        } else {
            format!("trying {next} in {:.1} s", delay.as_secs_f32())
        };
        let message = match error {
            ConnectionError::ConnectionRefused(
                code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
            ) => format!(
                "broker {url} refused the connection ({code:?}): check --username/--password \
                 (MQTT_USERNAME/MQTT_PASSWORD) and the broker's password file; {then}"
            ),
            ConnectionError::ConnectionRefused(code) => {
                format!("broker {url} refused the connection ({code:?}); {then}")
            }
            ConnectionError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => format!(
                "cannot reach broker {url}: connection refused; is it running? (set --broker or MQTT_BROKER_URL); {then}"
            ),
            ConnectionError::NetworkTimeout => {
                format!("broker {url} did not answer CONNECT within {} s; {then}", CONNECTION_TIMEOUT.as_secs())
            }
            other => format!("connection to {url} failed: {other}; {then}"),
        };
        // The first failure is a warning; then one line per attempt would flood the log, so only
        // every 10th attempt (and the slow, refused retries) reach the default level.
        if failures == 1 || failures.is_multiple_of(10) || delay >= REFUSED_RETRY {
            tracing::warn!("{message}");
        } else {
            tracing::debug!("{message}");
        }
    }
}

/// What the link tells Home Assistant about its device (see `protocol::discovery`).
struct HomeAssistant {
    /// `<prefix>/status`, while discovery is on.
    status: Option<String>,
    /// Each entity's config topic and payload: the config while discovery is on, empty (which
    /// removes the entity) while it is off.
    configs: Vec<(String, Vec<u8>)>,
    /// Off: the configs are cleared once per process, not on every connect.
    cleared: bool,
}

impl HomeAssistant {
    fn new(config: &MqttConfig, topics: &Topics, spec: &DeviceSpec) -> HomeAssistant {
        let node = Node { topics, device_id: &config.id, kind: spec.kind, version: protocol::VERSION };
        let prefix = &config.ha_discovery_prefix;
        let on = config.ha_discovery && spec.presence;
        let configs = spec
            .discovery
            .iter()
            .map(|entity| {
                let payload = if on { entity.config_for(&node).to_string().into_bytes() } else { Vec::new() };
                (entity.config_topic(prefix, &node), payload)
            })
            .collect();
        let status = (on && !spec.discovery.is_empty()).then(|| discovery::status_topic(prefix));
        HomeAssistant { status, configs, cleared: false }
    }

    fn is_status(&self, topic: &str) -> bool {
        self.status.as_deref() == Some(topic)
    }

    /// Home Assistant's `online`, at QoS 0 as it publishes it (and so never owed a manual ack).
    fn subscription(&self) -> Option<rumqttc::SubscribeFilter> {
        self.status.as_ref().map(|topic| rumqttc::SubscribeFilter::new(topic.clone(), QoS::AtMostOnce))
    }

    /// Publishes the configs, retained; with discovery off, clears them once.
    fn announce(&mut self, client: &AsyncClient, progress: &Progress) {
        if self.status.is_none() {
            if self.cleared {
                return;
            }
            self.cleared = true;
        }
        for (topic, payload) in &self.configs {
            if client.try_publish(topic, QoS::AtLeastOnce, true, payload.clone()).is_ok() {
                progress.queue(1);
            }
        }
    }
}

/// With `MQTT_HEALTH_FILE` set (as in docker compose), the file exists exactly while the link is
/// connected, so a container healthcheck can be `test -f $MQTT_HEALTH_FILE`.
fn mark_health(connected: bool) {
    let Some(path) = std::env::var_os("MQTT_HEALTH_FILE") else { return };
    let outcome = if connected { std::fs::write(&path, b"connected\n") } else { std::fs::remove_file(&path) };
    if let Err(e) = outcome
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot update health file {}: {e}", std::path::Path::new(&path).display());
    }
}

/// The SUBSCRIBEs in flight: queued (in the order of the request queue) until rumqttc writes
/// them, then by packet id until their SUBACK.
#[derive(Default)]
struct Subscribes {
    queued: std::collections::VecDeque<Vec<rumqttc::SubscribeFilter>>,
    written: std::collections::HashMap<u16, Vec<rumqttc::SubscribeFilter>>,
}

fn lock(subscribes: &Mutex<Subscribes>) -> std::sync::MutexGuard<'_, Subscribes> {
    subscribes.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Queues one SUBSCRIBE and notes its filters, under one lock so that notes and requests keep
/// one order.
fn subscribe(client: &AsyncClient, subscribes: &Mutex<Subscribes>, filters: Vec<rumqttc::SubscribeFilter>) {
    let mut subscribes = lock(subscribes);
    match client.try_subscribe_many(filters.clone()) {
        Ok(()) => subscribes.queued.push_back(filters),
        Err(e) => tracing::error!("could not queue subscriptions: {e}"),
    }
}

/// Puts what rumqttc kept after a lost connection back in the order it was first sent. Its list
/// puts the requests it had not yet sent again ahead of those it had sent again but not seen
/// acknowledged, so after a second drop soon after a reconnect an older reading could follow a
/// newer one (a window's retained state ending OPEN when it is closed). What was given back on the
/// last reconnect goes first, in that order; the rest keeps rumqttc's order.
fn restore_order(given_back: &[Request], drained: Vec<Request>) -> Vec<Request> {
    if given_back.is_empty() {
        return drained;
    }
    let same = |a: &Request, b: &Request| match (a, b) {
        (Request::Publish(a), Request::Publish(b)) => {
            a.topic == b.topic && a.payload == b.payload && a.qos == b.qos && a.retain == b.retain
        }
        _ => false,
    };
    let mut used = vec![false; given_back.len()];
    let mut keyed: Vec<(usize, Request)> = drained
        .into_iter()
        .enumerate()
        .map(|(i, request)| match (0..given_back.len()).find(|&j| !used[j] && same(&given_back[j], &request)) {
            Some(j) => {
                used[j] = true;
                (j, request)
            }
            None => (given_back.len() + i, request),
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, request)| request).collect()
}

/// Exponential backoff with jitter, reset on every ConnAck.
#[derive(Debug, Default)]
struct Backoff {
    attempt: u32,
}

impl Backoff {
    fn next(&mut self, error: &ConnectionError) -> Duration {
        let exp = FIRST_RETRY.saturating_mul(1 << self.attempt.min(8)).min(LAST_RETRY);
        self.attempt += 1;
        // "Equal jitter": half fixed, half random, so a home full of daemons does not reconnect in step.
        let jittered = exp / 2 + exp.mul_f64(fastrand::f64() / 2.0);
        if matches!(error, ConnectionError::ConnectionRefused(_)) { jittered.max(REFUSED_RETRY) } else { jittered }
    }
}

fn to_qos(qos: Qos) -> QoS {
    match qos {
        Qos::AtMostOnce => QoS::AtMostOnce,
        Qos::AtLeastOnce => QoS::AtLeastOnce,
        Qos::ExactlyOnce => QoS::ExactlyOnce,
    }
}

fn from_qos(qos: QoS) -> Qos {
    match qos {
        QoS::AtMostOnce => Qos::AtMostOnce,
        QoS::AtLeastOnce => Qos::AtLeastOnce,
        QoS::ExactlyOnce => Qos::ExactlyOnce,
    }
}

/// The system CA bundle used for `mqtts://` when no `--ca-file` is given.
const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

fn tls_transport(config: &MqttConfig) -> Result<Transport, LinkError> {
    // rumqttc is built without a crypto provider of its own; ring is installed once per process.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let path = config.ca_file.clone().unwrap_or_else(|| SYSTEM_CA_BUNDLE.into());
    let ca = std::fs::read(&path).map_err(|source| LinkError::CaFile { path, source })?;
    Ok(Transport::tls(ca, None, None))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn after_a_second_drop_the_requests_go_in_the_order_first_sent() {
        let publish = |topic: &str, payload: &str, pkid: u16| {
            let mut p = rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload);
            p.pkid = pkid;
            Request::Publish(p)
        };
        let topic = |r: &Request| match r {
            Request::Publish(p) => format!("{}={}", p.topic, String::from_utf8_lossy(&p.payload)),
            _ => "other".into(),
        };
        // Given back on the reconnect: OPEN, then CLOSED. OPEN was sent again (now in rumqttc's
        // state, with a new packet id), CLOSED not; then the connection dropped again. rumqttc's
        // list: CLOSED (its pending), OPEN (its state), then a newer reading from the queue.
        let given_back = vec![publish("w", "OPEN", 0), publish("w", "CLOSED", 0)];
        let drained = vec![publish("w", "CLOSED", 0), publish("w", "OPEN", 7), publish("d", "OPEN", 0)];
        let order: Vec<String> = restore_order(&given_back, drained).iter().map(topic).collect();
        assert_eq!(order, ["w=OPEN", "w=CLOSED", "d=OPEN"]);
        // Nothing given back: rumqttc's order stands.
        let drained = vec![publish("a", "1", 3), publish("b", "2", 0)];
        let order: Vec<String> = restore_order(&[], drained).iter().map(topic).collect();
        assert_eq!(order, ["a=1", "b=2"]);
    }

    #[test]
    fn backoff_grows_with_jitter_to_a_ceiling_and_refusals_wait_long() {
        let io = || ConnectionError::Io(std::io::Error::from(std::io::ErrorKind::ConnectionRefused));
        let mut b = Backoff::default();
        let delays: Vec<Duration> = (0..20).map(|_| b.next(&io())).collect();
        assert!(delays[0] >= FIRST_RETRY / 2 && delays[0] <= FIRST_RETRY);
        assert!(delays[3] >= FIRST_RETRY * 4 && delays[3] <= FIRST_RETRY * 8);
        assert!(delays.iter().all(|d| *d <= LAST_RETRY));
        assert!(delays[19] >= LAST_RETRY / 2);
        let refused = ConnectionError::ConnectionRefused(ConnectReturnCode::NotAuthorized);
        assert!(Backoff::default().next(&refused) >= REFUSED_RETRY);
    }
}
