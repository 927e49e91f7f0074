//! The link's async edge: the one task that owns rumqttc's event loop.
//!
//! It polls, hands messages to the daemon's inbox, keeps the counts of what was written and
//! acknowledged, and turns the events that need a decision into [`LinkEvent`]s for
//! [`LinkState::step`]; then it carries out the [`LinkAction`]s. Nothing is decided here that a
//! test without a socket could not check in `state.rs`.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use protocol::{Announce, Availability, Payload, Timestamp, Topic, Topics};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, MqttOptions, Outgoing, Packet, QoS,
    SubscribeFilter,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::discovery::HomeAssistant;
use super::options::to_qos;
use super::publisher::{self, Ack, Progress, WaitingAcks};
use super::reflex::{Fired, Reflex};
use super::resend::Unsent;
use super::state::{Failure, Level, LinkAction, LinkEvent, LinkState, Plan};
use super::subscriptions::{self, Subscribes};
use super::{DeviceSpec, Inbound};
use crate::broker::BrokerUrl;
use crate::config::MqttConfig;
use crate::shutdown::Shutdown;

/// The longest wait to write a reflex (rumqttc's own network timeout is 5 s).
const REFLEX_WRITE_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a clean shutdown may take to publish `offline` and disconnect.
const GOODBYE_TIMEOUT: Duration = Duration::from_secs(2);

/// The event loop's owner.
pub(super) struct Driver {
    state: LinkState,
    client: AsyncClient,
    /// Each broker's options, in the list's order.
    options: Vec<MqttOptions>,
    unsent: Unsent,
    /// Every filter the device subscribes to (Home Assistant's status among them).
    filters: Vec<SubscribeFilter>,
    /// Each SUBSCRIBE's filters, to read its SUBACK, and the one pending retry of refused ones.
    subscribes: Arc<Mutex<Subscribes>>,
    retry: Option<JoinHandle<()>>,
    home_assistant: HomeAssistant,
    presence: bool,
    manual_acks: bool,
    availability: String,
    announce_topic: String,
    announce: Announce,
    tx: mpsc::Sender<Inbound>,
    max_payload: usize,
    progress: Arc<Progress>,
    acks: Arc<Mutex<WaitingAcks>>,
    health_file: Option<PathBuf>,
    /// The daemon's reflex, where the runtime allows one, and the flag that tells it it fired.
    reflex: Option<Arc<dyn Reflex>>,
    /// The link writes each message's PUBACK itself, after the reflex (see [`super::reflex::link_acks`]).
    link_acks: bool,
    fired: Arc<Fired>,
    topics: Topics,
}

/// What [`Driver::new`] is given besides the configuration.
pub(super) struct Parts {
    pub client: AsyncClient,
    pub brokers: Vec<(BrokerUrl, MqttOptions)>,
    pub tx: mpsc::Sender<Inbound>,
    pub progress: Arc<Progress>,
    pub acks: Arc<Mutex<WaitingAcks>>,
    pub fired: Arc<Fired>,
}

impl Driver {
    pub(super) fn new(config: &MqttConfig, spec: DeviceSpec, parts: Parts) -> Driver {
        let topics = Topics::new(&config.topic_root);
        let id = config.id.clone();
        let home_assistant = HomeAssistant::new(config, &topics, &spec);
        let shared = |filter: &str| match &spec.share_group {
            Some(group) => format!("$share/{group}/{filter}"),
            None => filter.to_owned(),
        };
        let mut filters: Vec<SubscribeFilter> =
            spec.subscriptions.iter().map(|(f, q)| SubscribeFilter::new(shared(f), to_qos(*q))).collect();
        filters.extend(home_assistant.subscription());
        let plan = Plan {
            presence: spec.presence,
            retained_on_restart: spec.retained_on_restart,
            subscribes: !filters.is_empty(),
        };
        let (urls, options) = parts.brokers.into_iter().unzip();
        let link_acks = super::reflex::link_acks(&spec);
        Driver {
            state: LinkState::new(&id, urls, plan),
            client: parts.client,
            options,
            unsent: Unsent::default(),
            filters,
            subscribes: Arc::default(),
            retry: None,
            home_assistant,
            presence: spec.presence,
            manual_acks: spec.manual_acks,
            availability: topics.name(&Topic::Availability(id.clone())),
            announce_topic: topics.name(&Topic::Announce(id.clone())),
            announce: Announce {
                device_id: id,
                kind: spec.kind,
                capabilities: spec.capabilities,
                version: protocol::VERSION.to_owned(),
                state_topics: spec.state_topics,
                command_topics: spec.command_topics,
                ts: Timestamp(0),
            },
            tx: parts.tx,
            max_payload: config.max_payload_bytes,
            progress: parts.progress,
            acks: parts.acks,
            health_file: config.health_file.clone(),
            link_acks,
            reflex: spec.reflex,
            fired: parts.fired,
            topics,
        }
    }

    pub(super) async fn run(mut self, mut eventloop: EventLoop, shutdown: Shutdown) {
        let goodbye = self.goodbye(&shutdown);
        let mut goodbye_deadline = None;
        'turns: loop {
            let Some(event) = self.poll(&mut eventloop, &shutdown, &mut goodbye_deadline).await else { break };
            let decided = match self.handle(event, &mut eventloop, &shutdown).await {
                Some(event) => self.state.step(event),
                None => Vec::new(),
            };
            for action in decided {
                if self.act(action, &mut eventloop, &shutdown).await.is_break() {
                    break 'turns;
                }
            }
            // The flag first: once it is set, `offline` is counted in what must be written.
            let goodbye_queued = self.progress.goodbye_queued.load(Ordering::SeqCst);
            let turn = LinkEvent::Turn {
                shutting_down: shutdown.is_triggered(),
                goodbye_queued,
                all_written: self.progress.all_written(),
                inflight: eventloop.state.inflight(),
            };
            for action in self.state.step(turn) {
                if self.act(action, &mut eventloop, &shutdown).await.is_break() {
                    break 'turns;
                }
            }
        }
        goodbye.abort();
        if let Some(retry) = self.retry.take() {
            retry.abort();
        }
        mark_health(self.health_file.as_deref(), false);
    }

    /// The next event. A poll is never cancelled while connected: it may hold a request it has
    /// taken from the queue but not yet written, and dropping it would lose that request. `None`:
    /// stop (shutdown while not connected, or the goodbye took too long).
    async fn poll(
        &self,
        eventloop: &mut EventLoop,
        shutdown: &Shutdown,
        goodbye_deadline: &mut Option<tokio::time::Instant>,
    ) -> Option<Result<Event, ConnectionError>> {
        if !self.state.connected() {
            return tokio::select! {
                biased;
                () = shutdown.wait() => None,
                event = eventloop.poll() => Some(event),
            };
        }
        if !shutdown.is_triggered() {
            return Some(eventloop.poll().await);
        }
        let deadline = *goodbye_deadline.get_or_insert_with(|| tokio::time::Instant::now() + GOODBYE_TIMEOUT);
        match tokio::time::timeout_at(deadline, eventloop.poll()).await {
            Ok(event) => Some(event),
            Err(_) => {
                tracing::warn!("could not say goodbye to {} within {GOODBYE_TIMEOUT:?}", self.state.url());
                None
            }
        }
    }

    /// Does what an event needs that is no decision; the event, when it needs one.
    async fn handle(
        &mut self,
        event: Result<Event, ConnectionError>,
        eventloop: &mut EventLoop,
        shutdown: &Shutdown,
    ) -> Option<LinkEvent> {
        match event {
            Ok(Event::Incoming(Packet::ConnAck(ack))) => {
                return Some(LinkEvent::ConnAck { session_present: ack.session_present });
            }
            Ok(Event::Incoming(Packet::Publish(publish))) => self.on_publish(publish, eventloop).await,
            Ok(Event::Incoming(Packet::SubAck(ack))) => {
                return Some(LinkEvent::SubAck { refused: subscriptions::refused(&self.subscribes, &ack) });
            }
            Ok(Event::Incoming(
                Packet::PubAck(rumqttc::PubAck { pkid }) | Packet::PubComp(rumqttc::PubComp { pkid }),
            )) => {
                self.fired.acknowledged(pkid);
                self.progress.acked.fetch_add(1, Ordering::SeqCst);
                self.progress.wrote.notify_waiters();
            }
            Ok(Event::Outgoing(Outgoing::Subscribe(pkid))) => {
                let mut subscribes = subscriptions::lock(&self.subscribes);
                if let Some(filters) = subscribes.queued.pop_front() {
                    subscribes.written.insert(pkid, filters);
                }
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return Some(LinkEvent::Disconnected),
            Ok(Event::Outgoing(Outgoing::PubAck(pkid) | Outgoing::PubRec(pkid))) => {
                publisher::write_waiting_acks(&self.acks, pkid, eventloop).await;
            }
            Ok(Event::Outgoing(Outgoing::Publish(_))) => {
                self.progress.written.fetch_add(1, Ordering::SeqCst);
                self.progress.wrote.notify_waiters();
            }
            Ok(_) => {}
            Err(error) => {
                return Some(LinkEvent::Lost { failure: failure(&error), shutting_down: shutdown.is_triggered() });
            }
        }
        None
    }

    /// Carries out one decision; `Break` ends the link.
    async fn act(&mut self, action: LinkAction, eventloop: &mut EventLoop, shutdown: &Shutdown) -> ControlFlow<()> {
        match action {
            LinkAction::Tell(inbound) => {
                let _ = self.tx.send(inbound).await;
            }
            LinkAction::NewConnection => {
                // Acks owed by the connection before are void from now on (see `Publisher::ack`).
                self.progress.connection.fetch_add(1, Ordering::SeqCst);
                publisher::lock(&self.acks).connection_ended();
                // A reflex written on the lost connection is sent again; its step waits no longer.
                self.fired.forget();
            }
            LinkAction::Health(connected) => mark_health(self.health_file.as_deref(), connected),
            LinkAction::Resend { session_present } => self.unsent.give_back(eventloop, session_present),
            LinkAction::KeepUnacknowledged => self.unsent.keep(eventloop, &self.progress),
            LinkAction::ForgetSubscribes { session_present } => {
                // SUBSCRIBEs written on the lost connection get no SUBACK; queued ones are sent
                // again only on a resumed session (`Unsent::give_back`).
                let mut subscribes = subscriptions::lock(&self.subscribes);
                subscribes.written.clear();
                if !session_present {
                    subscribes.queued.clear();
                }
            }
            LinkAction::Subscribe => {
                // Everything is subscribed again: a retry of a part of it is moot.
                if let Some(retry) = self.retry.take() {
                    retry.abort();
                }
                subscriptions::subscribe(&self.client, &self.subscribes, self.filters.clone());
            }
            LinkAction::Announce => self.say_online(),
            LinkAction::RetrySubscribe { filters, after } => {
                let (client, subscribes) = (self.client.clone(), self.subscribes.clone());
                let retry = tokio::spawn(async move {
                    tokio::time::sleep(after).await;
                    subscriptions::subscribe(&client, &subscribes, filters);
                });
                if let Some(earlier) = self.retry.replace(retry) {
                    earlier.abort();
                }
            }
            LinkAction::UseBroker(i) => eventloop.mqtt_options = self.options[i].clone(),
            LinkAction::Log(level, message) => log(level, &message),
            LinkAction::Wait(delay) => {
                tokio::select! {
                    () = shutdown.wait() => return ControlFlow::Break(()),
                    () = tokio::time::sleep(delay) => {}
                }
            }
            LinkAction::Disconnect => {
                let _ = self.client.try_disconnect();
            }
            LinkAction::Stop => return ControlFlow::Break(()),
        }
        ControlFlow::Continue(())
    }

    async fn on_publish(&mut self, publish: rumqttc::Publish, eventloop: &mut EventLoop) {
        let status = self.home_assistant.is_status(&publish.topic);
        let oversized = publish.payload.len() > self.max_payload;
        // A reflex answers only what the daemon is handed.
        self.answer_at_once(&publish, !status && !oversized, eventloop).await;
        if status {
            if publish.payload.as_ref() == b"online" {
                tracing::debug!("Home Assistant is online: sending its discovery configs again");
                self.home_assistant.announce(&self.client, &self.progress);
            }
            return;
        }
        let ack = self.ack_for(&publish);
        let inbound = if oversized {
            tracing::warn!(
                "ignored a {} byte message on {}: larger than mqtt.max_payload_bytes ({})",
                publish.payload.len(),
                publish.topic,
                self.max_payload
            );
            // A daemon that acknowledges by itself is told, so that it acknowledges this one in
            // its turn: acks go in the order messages came (MQTT 3.1.1 4.6; rumqttd drops a
            // client that breaks it). Unacknowledged, the broker would hold it and redeliver it
            // on every reconnect.
            let Some(ack) = ack else { return };
            Inbound::Oversized { topic: publish.topic, size: publish.payload.len(), ack }
        } else {
            Inbound::Message {
                topic: publish.topic,
                payload: publish.payload.to_vec(),
                retained: publish.retain,
                redelivered: publish.dup,
                ack,
            }
        };
        // Waits for room in the inbox; the daemon takes from it without publishing first, so
        // this never waits on the link's own request queue.
        if self.tx.send(inbound).await.is_err() {
            tracing::debug!("daemon stopped reading; message dropped during shutdown");
        }
    }

    /// What the link writes the moment it reads `publish`, before anything else: the daemon's
    /// reflex to it, if any, then (where the link acknowledges by itself) its PUBACK. The
    /// reflex goes first, so that the broker is woken by it, not by the ack; both go with one
    /// flush. Without a reflex the acks of a batch of messages go with one flush after the last.
    async fn answer_at_once(&self, publish: &rumqttc::Publish, for_daemon: bool, eventloop: &mut EventLoop) {
        let reflex = if for_daemon { self.reflex(publish, eventloop) } else { None };
        let ack = self.own_ack(publish, eventloop);
        if reflex.is_none() && ack.is_none() {
            return;
        }
        let reflexed = reflex.is_some();
        let last_of_batch = !eventloop.state.events.iter().any(|e| matches!(e, Event::Incoming(Packet::Publish(_))));
        let Some(network) = eventloop.network.as_mut() else { return };
        let written = async {
            for packet in reflex.into_iter().chain(ack) {
                network.write(packet).await?;
            }
            if reflexed || last_of_batch {
                network.flush().await?;
            }
            Ok::<(), rumqttc::StateError>(())
        };
        // A broken connection is the next poll's to find; the publish is resent after it, the
        // message is redelivered.
        match tokio::time::timeout(REFLEX_WRITE_TIMEOUT, written).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::debug!("could not write at once ({e}); it is sent again on reconnect"),
            Err(_) => tracing::debug!("writing took over {REFLEX_WRITE_TIMEOUT:?}; it is sent again on reconnect"),
        }
    }

    /// The daemon's reflex to `publish`, if it has one (see [`super::reflex`]), asked only while
    /// every message read before has been stepped; the packet to write, numbered and kept by
    /// rumqttc's state (until the broker's PUBACK, to send again after a reconnect).
    fn reflex(&self, publish: &rumqttc::Publish, eventloop: &mut EventLoop) -> Option<Packet> {
        let reflex = self.reflex.as_ref()?;
        if self.tx.capacity() < self.tx.max_capacity() || !self.fired.ready() {
            return None;
        }
        let out = reflex.fire(&self.topics, &publish.topic, &publish.payload, Timestamp::now())?;
        let qos = out.topic.qos();
        let mut request = rumqttc::Publish::new(self.topics.name(&out.topic), to_qos(qos), out.payload);
        request.retain = out.topic.retained();
        // Numbered and kept by rumqttc's state first: only a publish it holds is the daemon told of.
        let packet = match eventloop.state.handle_outgoing_packet(rumqttc::Request::Publish(request)) {
            Ok(packet) => packet,
            Err(e) => {
                tracing::error!("could not send a reflex ({e}); the daemon's step sends it");
                return None;
            }
        };
        self.progress.queue(1);
        if qos != protocol::Qos::AtMostOnce {
            self.progress.to_acknowledge.fetch_add(1, Ordering::SeqCst);
        }
        // None: its packet id is still in flight; rumqttc sends it once that one is acknowledged.
        let pkid = match &packet {
            Some(Packet::Publish(p)) => p.pkid,
            _ => 0,
        };
        self.fired.set(pkid);
        packet
    }

    /// The PUBACK (PUBREC at QoS 2) of `publish`, where the link acknowledges by itself: a
    /// daemon with a reflex and no acks of its own. In the order messages
    /// came, as MQTT wants (3.1.1 4.6).
    fn own_ack(&self, publish: &rumqttc::Publish, eventloop: &mut EventLoop) -> Option<Packet> {
        if !self.link_acks {
            return None;
        }
        let request = match publish.qos {
            QoS::AtMostOnce => return None,
            QoS::AtLeastOnce => rumqttc::Request::PubAck(rumqttc::PubAck::new(publish.pkid)),
            QoS::ExactlyOnce => rumqttc::Request::PubRec(rumqttc::PubRec::new(publish.pkid)),
        };
        match eventloop.state.handle_outgoing_packet(request) {
            Ok(packet) => packet,
            Err(e) => {
                tracing::debug!("could not acknowledge packet {} ({e}); the broker sends it again", publish.pkid);
                None
            }
        }
    }

    /// The ack a message is owed by a daemon that acknowledges by itself.
    fn ack_for(&self, publish: &rumqttc::Publish) -> Option<Ack> {
        if !self.manual_acks {
            return None;
        }
        Ack::owed(publish, self.progress.connection.load(Ordering::SeqCst))
    }

    /// `online`, the announce and Home Assistant's configs, retained, behind the subscriptions.
    fn say_online(&mut self) {
        let online = self.client.try_publish(&self.availability, QoS::AtLeastOnce, true, Availability::Online.encode());
        self.announce.ts = Timestamp::now();
        let announced = self.client.try_publish(&self.announce_topic, QoS::AtLeastOnce, true, self.announce.encode());
        self.progress.queue(u64::from(online.is_ok()) + u64::from(announced.is_ok()));
        if online.is_err() || announced.is_err() {
            tracing::warn!("request queue full: could not publish availability/announce on this connect");
        }
        self.home_assistant.announce(&self.client, &self.progress);
    }

    /// Goodbye: `offline` goes through the request queue, behind everything the daemon already
    /// sent. The DISCONNECT follows once every queued publish is written and acknowledged, so a
    /// reading published just before shutdown is delivered, not cut off with the socket.
    fn goodbye(&self, shutdown: &Shutdown) -> JoinHandle<()> {
        let (client, shutdown, topic) = (self.client.clone(), shutdown.clone(), self.availability.clone());
        let progress = self.progress.clone();
        let presence = self.presence;
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
    }
}

/// rumqttc's error, in the terms the decisions and the log line need.
fn failure(error: &ConnectionError) -> Failure {
    match error {
        ConnectionError::ConnectionRefused(
            code @ (ConnectReturnCode::BadUserNamePassword | ConnectReturnCode::NotAuthorized),
        ) => Failure::BadCredentials(format!("{code:?}")),
        ConnectionError::ConnectionRefused(code) => Failure::Refused(format!("{code:?}")),
        ConnectionError::Io(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Failure::Unreachable,
        ConnectionError::NetworkTimeout => Failure::Timeout,
        other => Failure::Other(other.to_string()),
    }
}

fn log(level: Level, message: &str) {
    match level {
        Level::Debug => tracing::debug!("{message}"),
        Level::Info => tracing::info!("{message}"),
        Level::Warn => tracing::warn!("{message}"),
        Level::Error => tracing::error!("{message}"),
    }
}

/// With `mqtt.health_file` set (`--health-file`, `MQTT_HEALTH_FILE`, as in docker compose), the
/// file exists exactly while the link is connected, so a container healthcheck can be `test -f`.
fn mark_health(path: Option<&Path>, connected: bool) {
    let Some(path) = path else { return };
    let outcome = if connected { std::fs::write(path, b"connected\n") } else { std::fs::remove_file(path) };
    if let Err(e) = outcome
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("cannot update health file {}: {e}", path.display());
    }
}
