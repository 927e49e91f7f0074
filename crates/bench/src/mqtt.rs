//! MQTT plumbing of the bench: clients with TCP_NODELAY, the topics, and the watcher.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use protocol::{
    AlarmCommand, PanelStatus, Payload, Power, SensorKind, SensorReading, SensorState, Timestamp, Topic, Topics,
};
use rumqttc::{AsyncClient, Event, EventLoop, MqttOptions, NetworkOptions, Packet, QoS, SubscribeFilter};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

/// How long the daemons may take to come up, or any one expected message to arrive.
pub const WITHIN: Duration = Duration::from_secs(30);
/// The measured door: a perimeter zone, so opening it while armed sounds the siren at once.
pub const DOOR: &str = "bench-door";
/// The topic root of the minimal controller's own siren (a second `alarm-actuator`).
pub const HEARD_ROOT: &str = "bench-heard";

/// Every topic the bench uses, named once.
#[derive(Clone)]
pub struct Names {
    pub topics: Topics,
    pub door: String,
    pub panel_set: String,
    pub status: String,
    pub events: String,
    pub siren_command: String,
    pub siren_state: String,
    /// The floor: a reading published here goes straight to the watcher.
    pub bare: String,
    /// The minimal controller's input and output.
    pub minimal_door: String,
    pub minimal_siren: String,
    /// The same controller in a process of its own, as the panel is.
    pub minimal_process_door: String,
    pub minimal_process_siren: String,
    /// The same answer from a process without a runtime ([`crate::blocking`]).
    pub blocking_door: String,
    pub blocking_siren: String,
    /// The same controller commanding a real siren of its own (an `alarm-actuator` under
    /// [`HEARD_ROOT`]), so that its command goes to two subscribers, as the panel's does.
    pub heard_door: String,
    pub heard_siren: String,
    pub heard_siren_state: String,
    /// The paho-mqtt peer's input and output.
    pub paho_door: String,
    pub paho_siren: String,
    /// The Node-RED peer's input and output.
    pub node_red_door: String,
    pub node_red_siren: String,
}

impl Names {
    pub fn new() -> Names {
        let topics = Topics::new("home");
        Names {
            door: topics.name(&Topic::Sensor { kind: SensorKind::Door, id: DOOR.to_owned() }),
            panel_set: topics.name(&Topic::PanelSet),
            status: topics.name(&Topic::PanelStatus),
            events: topics.name(&Topic::PanelEvents),
            siren_command: topics.name(&Topic::AlarmControl),
            siren_state: topics.name(&Topic::AlarmState),
            bare: "bench/bare/door".to_owned(),
            minimal_door: "bench/minimal/door".to_owned(),
            minimal_siren: "bench/minimal/siren".to_owned(),
            minimal_process_door: "bench/minimal-process/door".to_owned(),
            minimal_process_siren: "bench/minimal-process/siren".to_owned(),
            blocking_door: "bench/blocking/door".to_owned(),
            blocking_siren: "bench/blocking/siren".to_owned(),
            heard_door: "bench/heard/door".to_owned(),
            heard_siren: Topics::new(HEARD_ROOT).name(&Topic::AlarmControl),
            heard_siren_state: Topics::new(HEARD_ROOT).name(&Topic::AlarmState),
            paho_door: "bench/paho/door".to_owned(),
            paho_siren: "bench/paho/siren".to_owned(),
            node_red_door: "bench/node-red/door".to_owned(),
            node_red_siren: "bench/node-red/siren".to_owned(),
            topics,
        }
    }
}

impl Default for Names {
    fn default() -> Self {
        Names::new()
    }
}

/// A sensor reading of the measured door, as a door sensor publishes it.
pub fn reading(id: &str, state: SensorState) -> Vec<u8> {
    SensorReading { state, device_id: id.to_owned(), ts: Timestamp::now() }.encode()
}

/// A rumqttc client with TCP_NODELAY (without it each hop waits for the next packet).
pub fn client(port: u16, id: &str) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, "127.0.0.1", port);
    options.set_keep_alive(Duration::from_secs(30)).set_inflight(1_000);
    let (client, mut eventloop) = AsyncClient::new(options, 10_000);
    let mut network = NetworkOptions::new();
    network.set_tcp_nodelay(true);
    eventloop.set_network_options(network);
    (client, eventloop)
}

/// A publishing client whose event loop runs in a task of its own.
pub fn publisher(port: u16, id: &str) -> (AsyncClient, JoinHandle<()>) {
    let (client, eventloop) = client(port, id);
    (client, tokio::spawn(drive(eventloop, id.to_owned())))
}

/// Polls an event loop for ever, ignoring what comes in.
async fn drive(mut eventloop: EventLoop, id: String) {
    loop {
        if let Err(e) = eventloop.poll().await {
            eprintln!("intrusion-bench: {id}: connection failed: {e}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// One message, stamped on arrival.
pub struct Seen {
    pub at: Instant,
    pub topic: String,
    pub payload: Vec<u8>,
}

impl Seen {
    pub fn status(&self, names: &Names) -> Option<PanelStatus> {
        (self.topic == names.status).then(|| PanelStatus::decode(&self.payload).ok()).flatten()
    }

    pub fn siren_command(&self, names: &Names) -> Option<Power> {
        (self.topic == names.siren_command).then(|| AlarmCommand::decode(&self.payload).ok().map(|c| c.state)).flatten()
    }

    pub fn siren_state(&self, names: &Names) -> Option<Power> {
        self.state_on(&names.siren_state)
    }

    /// The minimal controller's siren's state.
    pub fn heard_siren_state(&self, names: &Names) -> Option<Power> {
        self.state_on(&names.heard_siren_state)
    }

    fn state_on(&self, topic: &str) -> Option<Power> {
        (self.topic == topic).then(|| protocol::AlarmState::decode(&self.payload).ok().map(|s| s.state)).flatten()
    }
}

/// A separate subscriber that stamps what it receives.
pub struct Watcher {
    inbox: mpsc::UnboundedReceiver<Seen>,
    task: JoinHandle<()>,
    _client: AsyncClient,
}

impl Watcher {
    /// Connects, subscribes to `filters` at QoS 1 and waits for the SubAck.
    pub async fn connect(port: u16, filters: &[&str]) -> anyhow::Result<Watcher> {
        let (client, eventloop) = client(port, "bench-watch");
        let (tx, inbox) = mpsc::unbounded_channel();
        let (subscribed_tx, subscribed) = oneshot::channel();
        let task = tokio::spawn(stamp(eventloop, tx, subscribed_tx));
        let filters = filters.iter().map(|f| SubscribeFilter::new((*f).to_owned(), QoS::AtLeastOnce));
        client.subscribe_many(filters).await.context("the watcher cannot subscribe")?;
        tokio::time::timeout(WITHIN, subscribed).await.context("the watcher got no SubAck")?.ok();
        Ok(Watcher { inbox, task, _client: client })
    }

    /// Forgets what has arrived so far.
    pub fn drain(&mut self) {
        while self.inbox.try_recv().is_ok() {}
    }

    /// Skips messages until one matches `pred`, waiting at most `within`.
    pub async fn until(&mut self, what: &str, within: Duration, pred: impl Fn(&Seen) -> bool) -> anyhow::Result<Seen> {
        let deadline = Instant::now() + within;
        let mut last = String::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match tokio::time::timeout(left, self.inbox.recv()).await {
                Ok(Some(m)) if pred(&m) => return Ok(m),
                Ok(Some(m)) => last = format!("{}: {}", m.topic, String::from_utf8_lossy(&m.payload)),
                Ok(None) => bail!("the watcher's connection ended while waiting for {what}"),
                Err(_) => bail!("waited {within:?} for {what}; the last other message was {last:?}"),
            }
        }
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn stamp(mut eventloop: EventLoop, tx: mpsc::UnboundedSender<Seen>, subscribed: oneshot::Sender<()>) {
    let mut subscribed = Some(subscribed);
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::Publish(p))) => {
                let at = Instant::now();
                let _ = tx.send(Seen { at, topic: p.topic.clone(), payload: p.payload.to_vec() });
            }
            Ok(Event::Incoming(Packet::SubAck(_))) => {
                if let Some(s) = subscribed.take() {
                    let _ = s.send(());
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("intrusion-bench: the watcher's connection failed: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
