//! The notifier: when the alarm goes off while nobody is home, someone is told.
//!
//! It follows the panel's events (`<root>/security/events`) and sends the ones each channel asks
//! for — by default `triggered`, `duress`, `trouble`, `lockout`, `failed_to_arm` and
//! `alarm_ended` — to a webhook (a JSON POST, or the ntfy and Gotify forms), by email (SMTP with
//! STARTTLS), or to an MQTT topic a phone app or a Home Assistant automation follows.
//!
//! - **Nothing is dropped while a channel is down**: each channel keeps its own queue, in order,
//!   retried with exponential backoff (1 s doubling to 60 s) until it answers with a 2xx; one log
//!   line when it fails, one when it works again. Channels send at the same time, each on a task
//!   of its own: a receiver that never answers holds up its own channel (up to its timeout), never
//!   another.
//! - **One message per event**: the panel numbers its events (`id`); a redelivery of one is sent
//!   once, and two events of the same kind in the same millisecond are two. The panel's status is
//!   not followed at all, only its events.
//! - **An alarm is never held back** ([`Class`]): `triggered`, `duress`, `alarm_ended` and
//!   `lockout` have no limit. Troubles are at most one a sensor a minute (the ones in between are
//!   folded into it or counted into the next) and `max_per_minute` in all; everything else has its
//!   own `max_per_minute`. What a budget held back is said in the next message of its class. A
//!   queue that is full drops its oldest message that is not an alarm.
//! - **Duress is silent in the house**: a duress notification goes only to webhooks and email
//!   (someone outside), never to an MQTT channel, which the home's own screens may show.
//! - **Secrets stay secret**: header values may name environment variables (`${NTFY_TOKEN}`),
//!   read at start; logs name a webhook by its host only, never its path, query or headers.
//!
//! [`decide`] is the pure part: which channels an event goes to and what they are told.

pub mod email;
pub mod webhook;

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, ConfigError, Device, DeviceSpec, MqttConfig, Shutdown};
use protocol::{DeviceKind, Message, PanelEvent, PanelEventKind, Qos, Timestamp, Topic, Topics, Unreadable};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

/// The events a channel gets when it names none.
pub const DEFAULT_EVENTS: [PanelEventKind; 6] = [
    PanelEventKind::Triggered,
    PanelEventKind::Duress,
    PanelEventKind::Trouble,
    PanelEventKind::Lockout,
    PanelEventKind::FailedToArm,
    PanelEventKind::AlarmEnded,
];
/// Notifications by channel and outcome: `queued`, `sent`, `failed` (a try that failed; it is retried).
pub const NOTIFICATIONS: device_runtime::metrics::Metric =
    device_runtime::metrics::Metric::counter("mqtt_home_notifications", "Notifications by channel and outcome");
/// The first retry after a failed send; then doubling.
pub const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between two tries.
pub const LONGEST_RETRY: Duration = Duration::from_secs(60);
/// Messages kept per channel while it is down; older ones make room (and are counted).
pub const QUEUE_MAX: usize = 1000;
/// Events remembered to recognise a redelivery.
const SEEN_MAX: usize = 256;

/// `config/notifier.toml`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub mqtt: MqttConfig,
    #[serde(rename = "channel")]
    pub channels: Vec<ChannelConfig>,
    /// Share the panel's events with other notifiers of this group (`$share/<group>/...`,
    /// Mosquitto 2; not NATS): each event is sent by one of them. Their deduplication and rate
    /// limits are then each their own.
    pub share_group: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config { mqtt: MqttConfig::with_id("notifier"), channels: Vec::new(), share_group: None }
    }
}

impl DaemonConfig for Config {
    const NAME: &'static str = "notifier";

    device_runtime::mqtt_section!(mqtt);

    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt.validate()?;
        device_runtime::config::validate_share_group(&self.share_group)?;
        for (i, channel) in self.channels.iter().enumerate() {
            channel
                .validate()
                .map_err(|e| ConfigError::Invalid(format!("channel {} ({}): {e}", i + 1, channel.name)))?;
        }
        Ok(())
    }
}

/// One place notifications go. (Unknown keys are refused by [`Destination`], which takes every
/// key this struct does not: serde's `flatten` and `deny_unknown_fields` do not mix here.)
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChannelConfig {
    /// For logs and errors.
    pub name: String,
    #[serde(flatten)]
    pub to: Destination,
    /// Which of the panel's events; the [`DEFAULT_EVENTS`] when empty.
    #[serde(default)]
    pub events: Vec<PanelEventKind>,
    /// At most this many troubles a minute, and as many other messages; alarms are never limited.
    #[serde(default = "default_rate")]
    pub max_per_minute: u32,
}

fn default_rate() -> u32 {
    10
}

/// Where a channel sends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase", deny_unknown_fields)]
pub enum Destination {
    /// An HTTP(S) POST.
    Webhook {
        url: String,
        #[serde(default)]
        preset: Preset,
        /// Extra headers (a token); `${VAR}` in a value is read from the environment at start.
        #[serde(default)]
        headers: BTreeMap<String, String>,
    },
    /// A message on an MQTT topic of the same broker (not retained).
    Mqtt { topic: String },
    /// Email over SMTP (STARTTLS by default).
    Email(email::EmailConfig),
}

/// The body a webhook is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Preset {
    /// `{"event","title","message","priority","sensors","ts"}`.
    #[default]
    Json,
    /// ntfy: the message as the body, `Title`, `Priority` and `Tags` headers.
    Ntfy,
    /// Gotify: `{"title","message","priority"}` (the token in the URL or an `X-Gotify-Key` header).
    Gotify,
}

impl ChannelConfig {
    fn validate(&self) -> Result<(), String> {
        if self.name.is_empty() {
            return Err("needs a name".into());
        }
        if self.max_per_minute == 0 {
            return Err("max_per_minute must be at least 1".into());
        }
        match &self.to {
            Destination::Webhook { url, headers, .. } => {
                webhook::Target::parse(url)?;
                for value in headers.values() {
                    expand_env(value)?;
                }
            }
            Destination::Mqtt { topic } => {
                if topic.is_empty() || topic.contains(['+', '#']) {
                    return Err(format!("topic `{topic}` must be a topic, not empty or a filter"));
                }
            }
            Destination::Email(email) => email.validate()?,
        }
        Ok(())
    }

    fn wants(&self, event: PanelEventKind) -> bool {
        if self.events.is_empty() { DEFAULT_EVENTS.contains(&event) } else { self.events.contains(&event) }
    }
}

/// `${VAR}` in `value`, read from the environment; an unset variable is an error naming it.
pub fn expand_env(value: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = value;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let Some(end) = rest[start..].find('}') else { return Err("`${` without `}` in a header value".to_owned()) };
        let name = &rest[start + 2..start + end];
        let var = std::env::var(name).map_err(|_| format!("the environment variable {name} is not set"))?;
        out.push_str(&var);
        rest = &rest[start + end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// What one channel is told about one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    pub event: PanelEventKind,
    pub title: String,
    pub message: String,
    /// 1 (low) to 5 (urgent), as ntfy counts.
    pub priority: u8,
    pub sensors: Vec<String>,
    pub ts: Timestamp,
}

impl Notification {
    /// The JSON an MQTT channel and a plain webhook carry.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::json!({
            "event": self.event.as_str(),
            "title": self.title,
            "message": self.message,
            "priority": self.priority,
            "sensors": self.sensors,
            "ts": self.ts,
        })
        .to_string()
        .into_bytes()
    }
}

/// The channels (by index) `event` goes to, and what they are told. Pure.
pub fn decide(channels: &[ChannelConfig], event: &PanelEvent) -> Vec<(usize, Notification)> {
    let (title, priority) = match event.event {
        PanelEventKind::Triggered => ("Alarm: intrusion", 5),
        PanelEventKind::Duress => ("Alarm: disarmed under duress", 5),
        PanelEventKind::Lockout => ("Keypad locked out after wrong codes", 4),
        PanelEventKind::Trouble => ("Security trouble", 3),
        PanelEventKind::FailedToArm => ("The alarm did not arm", 3),
        PanelEventKind::AlarmEnded => ("Alarm ended", 3),
        _ => ("Security panel", 2),
    };
    let notification = Notification {
        event: event.event,
        title: format!("mqtt-home: {title}"),
        // With several areas, the area says where: `garage: alarm triggered by …`.
        message: match &event.area {
            Some(area) => format!("{area}: {}", event.message),
            None => event.message.clone(),
        },
        priority,
        sensors: event.sensors.clone(),
        ts: event.ts,
    };
    channels
        .iter()
        .enumerate()
        .filter(|(_, c)| c.wants(event.event))
        // Duress: only to someone outside, never to a topic the house's own screens may show.
        .filter(|(_, c)| event.event != PanelEventKind::Duress || !matches!(c.to, Destination::Mqtt { .. }))
        .map(|(i, _)| (i, notification.clone()))
        .collect()
}

/// How urgent an event is. Each class has its own budget, so that no amount of troubles or
/// arming chatter (which anyone who can publish a reading or a command can cause) ever holds back
/// an alarm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Class {
    /// `triggered`, `duress`, `alarm_ended`, `lockout`: never rate-limited.
    Alarm,
    /// `trouble`: at most one a sensor a minute (the rest are counted into the next), and at most
    /// `max_per_minute` over all sensors.
    Trouble,
    /// Everything else (`armed`, `failed_to_arm` …): at most `max_per_minute`.
    Chatter,
}

impl Class {
    pub fn of(kind: PanelEventKind) -> Class {
        match kind {
            PanelEventKind::Triggered
            | PanelEventKind::Duress
            | PanelEventKind::AlarmEnded
            | PanelEventKind::Lockout => Class::Alarm,
            PanelEventKind::Trouble => Class::Trouble,
            _ => Class::Chatter,
        }
    }
}

/// The window of the rate limits.
const MINUTE: Duration = Duration::from_secs(60);

/// A notification waiting for its channel.
#[derive(Debug, Clone)]
struct Pending {
    notification: Notification,
    class: Class,
    /// A trouble's sensor: later troubles of it, while this one waits, are folded into it.
    trouble_of: Option<String>,
    /// How many later troubles of that sensor were folded into this one.
    folded: u32,
    attempts: u32,
    next_try: Timestamp,
}

/// How one channel sends (an MQTT channel is published by the runner itself).
enum Sender {
    Webhook(webhook::Webhook),
    Email(email::Email),
}

impl Sender {
    async fn send(&self, notification: &Notification) -> Result<(), String> {
        match self {
            Sender::Webhook(webhook) => webhook.send(notification).await,
            Sender::Email(email) => email.send(notification).await,
        }
    }
}

/// One channel at run time: its queue, in order, and its budgets.
struct Channel {
    config: ChannelConfig,
    sender: Option<Arc<Sender>>,
    queue: VecDeque<Pending>,
    /// When each class last queued, within the last minute (alarms are not counted).
    sent: BTreeMap<Class, VecDeque<Timestamp>>,
    /// Per class, notifications not sent for the budget: said in the next one of that class.
    suppressed: BTreeMap<Class, u32>,
    /// Per sensor: when its last trouble was queued, and how many were held back since.
    troubles: BTreeMap<String, (Timestamp, u32)>,
    /// The head of the queue is being sent (each channel keeps its order; channels do not wait
    /// for each other).
    in_flight: bool,
    failing: bool,
}

impl Channel {
    /// Room for one more: the oldest that is not an alarm (nor being sent) makes room, else the
    /// oldest not being sent.
    fn make_room(&mut self) {
        if self.queue.len() < QUEUE_MAX {
            return;
        }
        let first = usize::from(self.in_flight);
        let victim = (first..self.queue.len())
            .find(|&i| self.queue[i].class != Class::Alarm)
            .unwrap_or(first.min(self.queue.len() - 1));
        if let Some(dropped) = self.queue.remove(victim) {
            *self.suppressed.entry(dropped.class).or_default() += 1;
        }
    }

    /// Whether the class's budget lets one more through at `now` (and counts it if so).
    fn within_budget(&mut self, class: Class, now: Timestamp) -> bool {
        if class == Class::Alarm {
            return true;
        }
        let sent = self.sent.entry(class).or_default();
        while sent.front().is_some_and(|t| now.since(*t) >= MINUTE) {
            sent.pop_front();
        }
        if sent.len() >= self.config.max_per_minute as usize {
            return false;
        }
        sent.push_back(now);
        true
    }

    /// Queues `notification`, or folds it into a waiting one, or counts it against a budget.
    fn offer(&mut self, mut notification: Notification, now: Timestamp) {
        let class = Class::of(notification.event);
        let trouble_of = (class == Class::Trouble).then(|| notification.sensors.first().cloned().unwrap_or_default());
        if let Some(sensor) = &trouble_of {
            // A trouble of this sensor still waiting: it says the latest, and how many there were.
            let first = usize::from(self.in_flight);
            let waiting = self.queue.iter_mut().skip(first).find(|p| p.trouble_of.as_ref() == Some(sensor));
            if let Some(waiting) = waiting {
                waiting.folded += 1;
                notification.message =
                    format!("{} ({} more troubles of {sensor})", notification.message, waiting.folded);
                waiting.notification = notification;
                return;
            }
            if let Some((at, held)) = self.troubles.get_mut(sensor)
                && now.since(*at) < MINUTE
            {
                *held += 1;
                tracing::debug!(
                    "channel {}: a trouble of {sensor} within a minute of the last: held",
                    self.config.name
                );
                return;
            }
        }
        if !self.within_budget(class, now) {
            *self.suppressed.entry(class).or_default() += 1;
            tracing::warn!(
                "channel {}: over {} {} a minute, {} not sent (said in the next one)",
                self.config.name,
                self.config.max_per_minute,
                if class == Class::Trouble { "troubles" } else { "messages" },
                notification.event.as_str()
            );
            return;
        }
        let mut notes = Vec::new();
        if let Some(sensor) = &trouble_of {
            let held = self.troubles.insert(sensor.clone(), (now, 0)).map_or(0, |(_, held)| held);
            if held > 0 {
                notes.push(format!("{held} more troubles of {sensor} in the minute before"));
            }
        }
        if let Some(n) = self.suppressed.remove(&class).filter(|n| *n > 0) {
            notes.push(format!("{n} more not sent: rate limit"));
        }
        if !notes.is_empty() {
            notification.message = format!("{} ({})", notification.message, notes.join("; "));
        }
        self.make_room();
        self.queue.push_back(Pending { notification, class, trouble_of, folded: 0, attempts: 0, next_try: now });
    }

    /// The head, when it is due and not already being sent.
    fn due(&self, now: Timestamp) -> Option<&Pending> {
        self.queue.front().filter(|p| !self.in_flight && p.next_try <= now)
    }
}

/// Work done off the decision path: send the head of channel N (its own task; see
/// [`Notifier::wake`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deliver(pub usize);

/// What a channel's send came to: its index and the outcome.
type Outcome = (usize, Result<(), String>);

/// The notifier as a [`Device`].
pub struct Notifier {
    config: Config,
    topics: Topics,
    channels: Vec<Channel>,
    /// Events already handled, by id (or by content, for events without one): a redelivery is
    /// sent once.
    seen: VecDeque<String>,
    outcomes: (mpsc::UnboundedSender<Outcome>, mpsc::UnboundedReceiver<Outcome>),
}

impl Notifier {
    /// Reads the channels' secrets from the environment; an unset one is an error.
    pub fn new(config: Config) -> Result<Notifier, String> {
        let channels = config
            .channels
            .iter()
            .map(|c| {
                let sender = match &c.to {
                    Destination::Email(config) => {
                        Some(Sender::Email(email::Email::new(config).map_err(|e| format!("channel {}: {e}", c.name))?))
                    }
                    Destination::Webhook { url, preset, headers } => {
                        let headers = headers
                            .iter()
                            .map(|(k, v)| expand_env(v).map(|v| (k.clone(), v)))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| format!("channel {}: {e}", c.name))?;
                        let webhook = webhook::Webhook::new(url, *preset, headers)
                            .map_err(|e| format!("channel {}: {e}", c.name))?;
                        Some(Sender::Webhook(webhook))
                    }
                    Destination::Mqtt { .. } => None,
                };
                Ok(Channel {
                    config: c.clone(),
                    sender: sender.map(Arc::new),
                    queue: VecDeque::new(),
                    sent: BTreeMap::new(),
                    suppressed: BTreeMap::new(),
                    troubles: BTreeMap::new(),
                    in_flight: false,
                    failing: false,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let topics = Topics::new(&config.mqtt.topic_root);
        Ok(Notifier { config, topics, channels, seen: VecDeque::new(), outcomes: mpsc::unbounded_channel() })
    }

    /// Messages waiting, over every channel.
    pub fn waiting(&self) -> usize {
        self.channels.iter().map(|c| c.queue.len()).sum()
    }

    /// Queues what `event` means to each channel; the acts count it.
    fn enqueue(&mut self, event: &PanelEvent, now: Timestamp) -> Vec<Act<Deliver>> {
        let key = match &event.id {
            Some(id) => format!("id {id}"),
            None => format!("{} {} {:?} {}", event.event.as_str(), event.ts, event.sensors, event.message),
        };
        if self.seen.contains(&key) {
            tracing::debug!("{} of {} again (a redelivery): already sent", event.event.as_str(), event.ts);
            return Vec::new();
        }
        if self.seen.len() == SEEN_MAX {
            self.seen.pop_front();
        }
        self.seen.push_back(key);
        let mut acts = Vec::new();
        for (i, notification) in decide(&self.config.channels, event) {
            let channel = &mut self.channels[i];
            let before = channel.queue.len();
            channel.offer(notification, now);
            if channel.queue.len() > before {
                acts.push(Act::count(NOTIFICATIONS, &[("channel", &channel.config.name), ("outcome", "queued")], 1));
            }
        }
        acts
    }

    /// Starts every send that is due: an MQTT channel's at once (the link queues it), the
    /// others as jobs that each run on a task of their own.
    fn next_send(&mut self, now: Timestamp) -> Vec<Act<Deliver>> {
        let mut acts = Vec::new();
        for (i, channel) in self.channels.iter_mut().enumerate() {
            while channel.due(now).is_some() {
                if let Destination::Mqtt { topic } = &channel.config.to {
                    let pending = channel.queue.pop_front().expect("due");
                    let payload = pending.notification.to_json();
                    acts.push(Act::Foreign { topic: topic.clone(), payload, retain: false });
                    acts.push(Act::count(NOTIFICATIONS, &[("channel", &channel.config.name), ("outcome", "sent")], 1));
                    acts.push(Act::Note(format!(
                        "channel {}: sent {}",
                        channel.config.name,
                        pending.notification.event.as_str()
                    )));
                } else {
                    channel.in_flight = true;
                    acts.push(Act::Job(Deliver(i)));
                }
            }
        }
        acts
    }

    /// A send came back: the head leaves its queue, or waits for its retry.
    fn on_outcome(&mut self, (i, outcome): Outcome, now: Timestamp) -> Vec<Act<Deliver>> {
        let channel = &mut self.channels[i];
        channel.in_flight = false;
        let mut acts = Vec::new();
        match outcome {
            Ok(()) => {
                let Some(pending) = channel.queue.pop_front() else { return acts };
                acts.push(Act::count(NOTIFICATIONS, &[("channel", &channel.config.name), ("outcome", "sent")], 1));
                if channel.failing {
                    channel.failing = false;
                    tracing::info!("channel {} works again", channel.config.name);
                }
                acts.push(Act::Note(format!(
                    "channel {}: sent {} (try {})",
                    channel.config.name,
                    pending.notification.event.as_str(),
                    pending.attempts + 1
                )));
            }
            Err(e) => {
                acts.push(Act::count(NOTIFICATIONS, &[("channel", &channel.config.name), ("outcome", "failed")], 1));
                let waiting = channel.queue.len();
                let Some(head) = channel.queue.front_mut() else { return acts };
                head.attempts += 1;
                let wait = backoff(head.attempts);
                head.next_try = now.plus(wait);
                if !channel.failing {
                    channel.failing = true;
                    tracing::warn!(
                        "channel {}: {e}; {waiting} waiting, retrying in {} s and on",
                        channel.config.name,
                        wait.as_secs()
                    );
                } else {
                    tracing::debug!("channel {}: still failing: {e}", channel.config.name);
                }
            }
        }
        acts.extend(self.next_send(now));
        acts
    }
}

/// The backoff after `attempts` failures: 1 s, 2 s, 4 s ... 60 s.
pub fn backoff(attempts: u32) -> Duration {
    FIRST_RETRY.saturating_mul(1u32 << attempts.saturating_sub(1).min(6)).min(LONGEST_RETRY)
}

impl Device for Notifier {
    type Job = Deliver;

    fn spec(&self) -> DeviceSpec {
        let mut spec = DeviceSpec::new(DeviceKind::Notifier);
        spec.capabilities = self.config.channels.iter().map(|c| format!("channel:{}", c.name)).collect();
        spec.subscriptions = vec![(self.topics.name(&Topic::PanelEvents), Qos::AtLeastOnce)];
        spec.share_group = self.config.share_group.clone();
        spec
    }

    fn on_message(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Act<Deliver>> {
        match message {
            Ok(Message::PanelEvent(event)) => {
                let mut acts = self.enqueue(&event, now);
                acts.extend(self.next_send(now));
                acts
            }
            Err(e) if e.parsed == Some(Topic::PanelEvents) => {
                tracing::warn!("ignored a panel event: {}", e.why);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        self.channels.iter().filter(|c| !c.in_flight).filter_map(|c| c.queue.front().map(|p| p.next_try)).min()
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<Deliver>> {
        self.next_send(now)
    }

    /// A send finished (see [`Device::run_job`]).
    async fn wake(&mut self) -> Vec<Act<Deliver>> {
        match self.outcomes.1.recv().await {
            Some(outcome) => self.on_outcome(outcome, Timestamp::now()),
            None => std::future::pending().await,
        }
    }

    /// Sends the head of a channel on a task of its own and returns at once: a receiver that
    /// never answers holds up its own channel, up to its timeout, and no other.
    async fn run_job(&mut self, Deliver(i): Deliver) -> Vec<Act<Deliver>> {
        let channel = &self.channels[i];
        let (Some(sender), Some(pending)) = (channel.sender.clone(), channel.queue.front()) else {
            return self.on_outcome((i, Ok(())), Timestamp::now());
        };
        let notification = pending.notification.clone();
        let outcomes = self.outcomes.0.clone();
        tokio::spawn(async move {
            let outcome = sender.send(&notification).await;
            let _ = outcomes.send((i, outcome));
        });
        Vec::new()
    }
}

/// Sends one test message to every channel now, without retries: what `mqtt-home notify test`
/// reports, channel by channel. MQTT channels go through `publisher`.
pub async fn send_test(config: &Config, publisher: &device_runtime::Publisher) -> Vec<(String, Result<(), String>)> {
    let test = Notification {
        event: PanelEventKind::Restored,
        title: "mqtt-home: test notification".into(),
        message: "A test from `mqtt-home notify test`: this channel works.".into(),
        priority: 2,
        sensors: Vec::new(),
        ts: Timestamp::now(),
    };
    let mut outcomes = Vec::new();
    for channel in &config.channels {
        let outcome = match &channel.to {
            Destination::Webhook { url, preset, headers } => {
                let headers: Result<Vec<_>, String> =
                    headers.iter().map(|(k, v)| expand_env(v).map(|v| (k.clone(), v))).collect();
                match headers.and_then(|h| webhook::Webhook::new(url, *preset, h)) {
                    Ok(webhook) => webhook.send(&test).await,
                    Err(e) => Err(e),
                }
            }
            Destination::Email(email) => match email::Email::new(email) {
                Ok(email) => email.send(&test).await,
                Err(e) => Err(e),
            },
            Destination::Mqtt { topic } => {
                publisher.send_bytes(topic, test.to_json(), Qos::AtLeastOnce, false).await.map_err(|e| e.to_string())
            }
        };
        outcomes.push((channel.name.clone(), outcome));
    }
    outcomes
}

/// Runs the notifier until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    if config.channels.is_empty() {
        tracing::warn!("no [[channel]] in notifier.toml: nobody will be told (see config/notifier.toml)");
    }
    let mqtt = config.mqtt.clone();
    let notifier = Notifier::new(config).map_err(|e| anyhow::anyhow!(e))?;
    device_runtime::runner::run(notifier, &mqtt, shutdown).await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(kind: PanelEventKind, ts: u64) -> PanelEvent {
        PanelEvent {
            reason: None,
            cause: None,
            event: kind,
            id: None,
            mode: None,
            user: None,
            sensors: vec!["kitchen-window".into()],
            message: "window kitchen-window open (perimeter)".into(),
            area: None,
            device_id: "security-controller".into(),
            ts: Timestamp(ts),
        }
    }

    fn channels() -> Vec<ChannelConfig> {
        vec![
            ChannelConfig {
                name: "phone".into(),
                to: Destination::Webhook {
                    url: "http://127.0.0.1:9/x".into(),
                    preset: Preset::Ntfy,
                    headers: BTreeMap::new(),
                },
                events: Vec::new(),
                max_per_minute: 10,
            },
            ChannelConfig {
                name: "automations".into(),
                to: Destination::Mqtt { topic: "home/notifications".into() },
                events: vec![PanelEventKind::Triggered, PanelEventKind::Duress, PanelEventKind::Armed],
                max_per_minute: 2,
            },
        ]
    }

    #[test]
    fn each_channel_gets_the_events_it_asks_for_and_duress_stays_outside() {
        let c = channels();
        let to = |kind| decide(&c, &event(kind, 1)).into_iter().map(|(i, _)| i).collect::<Vec<_>>();
        assert_eq!(to(PanelEventKind::Triggered), [0, 1]);
        assert_eq!(to(PanelEventKind::Trouble), [0], "the default events");
        assert_eq!(to(PanelEventKind::Armed), [1]);
        assert_eq!(to(PanelEventKind::Duress), [0], "never on an MQTT topic the house may show");
        assert!(to(PanelEventKind::WrongCode).is_empty());
        let (_, n) = decide(&c, &event(PanelEventKind::Triggered, 1)).remove(0);
        assert_eq!((n.title.as_str(), n.priority), ("mqtt-home: Alarm: intrusion", 5));
    }

    /// An event with an id, as the panel publishes them.
    fn numbered(kind: PanelEventKind, ts: u64, id: u32) -> PanelEvent {
        PanelEvent { id: Some(format!("run-{id}")), ..event(kind, ts) }
    }

    fn trouble(sensor: &str, ts: u64, id: u32) -> PanelEvent {
        PanelEvent {
            sensors: vec![sensor.into()],
            message: format!("{sensor}: unreadable reading"),
            ..numbered(PanelEventKind::Trouble, ts, id)
        }
    }

    fn queued(notifier: &Notifier, channel: usize) -> Vec<(PanelEventKind, String)> {
        notifier.channels[channel]
            .queue
            .iter()
            .map(|p| (p.notification.event, p.notification.message.clone()))
            .collect()
    }

    #[test]
    fn a_redelivery_is_sent_once_but_two_events_of_one_millisecond_are_two() {
        let mut notifier = Notifier::new(Config { channels: channels(), ..Config::default() }).unwrap();
        let now = Timestamp(1_000_000);
        notifier.enqueue(&numbered(PanelEventKind::Triggered, 5, 1), now);
        notifier.enqueue(&numbered(PanelEventKind::Triggered, 5, 1), now);
        assert_eq!(notifier.waiting(), 2, "one a channel; the redelivery (same id) not again");
        notifier.enqueue(&numbered(PanelEventKind::Triggered, 5, 2), now);
        assert_eq!(notifier.waiting(), 4, "same kind, same millisecond, another id: another event");
        // Events of an older panel (no id): told apart by what they say.
        notifier.enqueue(&event(PanelEventKind::Triggered, 7), now);
        notifier.enqueue(&event(PanelEventKind::Triggered, 7), now);
        notifier.enqueue(&PanelEvent { message: "door back open".into(), ..event(PanelEventKind::Triggered, 7) }, now);
        assert_eq!(notifier.waiting(), 8);
    }

    #[test]
    fn no_amount_of_troubles_or_chatter_holds_back_an_alarm() {
        // The attack as reported: 12 unreadable readings (12 troubles), 10 arming commands
        // refused, then the window: `triggered` must go out on every channel that wants it.
        let mut c = channels();
        c[1].events = vec![PanelEventKind::Triggered, PanelEventKind::FailedToArm, PanelEventKind::Trouble];
        let mut notifier = Notifier::new(Config { channels: c, ..Config::default() }).unwrap();
        let now = Timestamp(1_000_000);
        for n in 0..12 {
            notifier.enqueue(&trouble(&format!("junk{n}"), 10, n), now);
        }
        for n in 0..10 {
            notifier.enqueue(&numbered(PanelEventKind::FailedToArm, 20, 100 + n), now);
        }
        notifier.enqueue(&numbered(PanelEventKind::Triggered, 30, 999), now);
        for channel in [0, 1] {
            let queued = queued(&notifier, channel);
            assert_eq!(queued.last().map(|q| q.0), Some(PanelEventKind::Triggered), "channel {channel}: {queued:?}");
        }
        // The budgets held for the others: 10 troubles and 10 messages on the phone (10 a
        // minute each), 2 and 2 on the MQTT channel.
        let count = |channel, kind| queued(&notifier, channel).iter().filter(|q| q.0 == kind).count();
        assert_eq!((count(0, PanelEventKind::Trouble), count(0, PanelEventKind::FailedToArm)), (10, 10));
        assert_eq!((count(1, PanelEventKind::Trouble), count(1, PanelEventKind::FailedToArm)), (2, 2));
        // A minute on, the next trouble says how many were not sent.
        notifier.enqueue(&trouble("junk99", 40, 2000), now.plus(MINUTE));
        let (_, last) = queued(&notifier, 1).pop().unwrap();
        assert!(last.ends_with("(10 more not sent: rate limit)"), "{last}");
    }

    #[test]
    fn the_troubles_of_one_sensor_are_one_message() {
        let mut notifier = Notifier::new(Config { channels: channels(), ..Config::default() }).unwrap();
        let now = Timestamp(1_000_000);
        for n in 0..5 {
            notifier.enqueue(&trouble("flaky-door", 10 + u64::from(n), n), now);
        }
        assert_eq!(
            queued(&notifier, 0),
            [(PanelEventKind::Trouble, "flaky-door: unreadable reading (4 more troubles of flaky-door)".into())],
            "folded into the one still waiting"
        );
        // Sent; two more within the minute are held, and said with the next one after it.
        notifier.channels[0].queue.clear();
        notifier.enqueue(&trouble("flaky-door", 20, 10), now.plus(Duration::from_secs(10)));
        notifier.enqueue(&trouble("flaky-door", 21, 11), now.plus(Duration::from_secs(20)));
        assert!(queued(&notifier, 0).is_empty());
        notifier.enqueue(&trouble("flaky-door", 22, 12), now.plus(MINUTE));
        assert_eq!(
            queued(&notifier, 0),
            [(
                PanelEventKind::Trouble,
                "flaky-door: unreadable reading (2 more troubles of flaky-door in the minute before)".into()
            )]
        );
        // Another sensor is not held by this one.
        notifier.enqueue(&trouble("cellar-window", 23, 13), now.plus(MINUTE));
        assert_eq!(queued(&notifier, 0).len(), 2);
    }

    #[test]
    fn a_full_queue_drops_chatter_before_alarms() {
        let mut c = channels();
        c[0].max_per_minute = u32::MAX;
        c[0].events = vec![PanelEventKind::Triggered, PanelEventKind::FailedToArm];
        let mut notifier = Notifier::new(Config { channels: c, ..Config::default() }).unwrap();
        let now = Timestamp(1_000_000);
        notifier.enqueue(&numbered(PanelEventKind::Triggered, 1, 0), now);
        for n in 1..QUEUE_MAX as u32 + 5 {
            notifier.enqueue(&numbered(PanelEventKind::FailedToArm, 2, n), now);
        }
        let queued = queued(&notifier, 0);
        assert_eq!(queued.len(), QUEUE_MAX);
        assert_eq!(queued[0].0, PanelEventKind::Triggered, "the alarm stays at the head");
    }

    #[test]
    fn every_channel_sends_at_once_each_in_its_own_order() {
        let mut notifier = Notifier::new(Config { channels: channels(), ..Config::default() }).unwrap();
        let now = Timestamp(1_000_000);
        notifier.enqueue(&numbered(PanelEventKind::Triggered, 1, 1), now);
        notifier.enqueue(&numbered(PanelEventKind::Triggered, 2, 2), now);
        let acts = notifier.next_send(now);
        // The webhook's head goes to its own task (one at a time); the MQTT channel publishes both.
        let jobs: Vec<_> = acts.iter().filter_map(|a| if let Act::Job(d) = a { Some(*d) } else { None }).collect();
        let published = acts.iter().filter(|a| matches!(a, Act::Foreign { .. })).count();
        assert_eq!((jobs, published), (vec![Deliver(0)], 2));
        assert!(notifier.next_send(now).is_empty(), "the webhook waits for its head's outcome");
        let acts = notifier.on_outcome((0, Err("no answer".into())), now);
        let [Act::Metric { metric: NOTIFICATIONS, labels, value: 1 }] = acts.as_slice() else { panic!("{acts:?}") };
        assert_eq!(labels[1], ("outcome", "failed".to_owned()), "a failed send is counted and waits for its retry");
        assert_eq!(notifier.next_deadline(), Some(now.plus(FIRST_RETRY)));
        let acts = notifier.on_outcome((0, Ok(())), now.plus(FIRST_RETRY));
        assert!(acts.iter().any(|a| matches!(a, Act::Job(Deliver(0)))), "the next one goes: {acts:?}");
        assert_eq!(notifier.waiting(), 1);
    }

    #[test]
    fn retries_back_off_to_a_minute() {
        let waits: Vec<u64> = (1..=9).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn secrets_come_from_the_environment_and_a_missing_one_is_named() {
        assert_eq!(expand_env("Bearer plain"), Ok("Bearer plain".into()));
        let err = expand_env("Bearer ${MQTT_HOME_TEST_SURELY_UNSET}").unwrap_err();
        assert!(err.contains("MQTT_HOME_TEST_SURELY_UNSET"), "{err}");
        let path = std::env::var("PATH").unwrap();
        assert_eq!(expand_env("x ${PATH} y"), Ok(format!("x {path} y")));
    }

    #[test]
    fn the_example_config_validates() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/notifier.toml");
        let config: Config =
            device_runtime::config::layer(&Config::default(), Some(std::path::Path::new(path)), toml::Table::new())
                .unwrap();
        assert_eq!(config.validate().map_err(|e| e.to_string()), Ok(()));
        assert_eq!(config.channels.len(), 1);
        assert!(Notifier::new(config).is_ok());
    }

    #[test]
    fn bad_channels_are_refused_with_what_to_do() {
        let mut c = channels();
        c[1].to = Destination::Mqtt { topic: "home/#".into() };
        let err = Config { channels: c, ..Config::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("channel 2 (automations)") && err.contains("not empty or a filter"), "{err}");
        let mut c = channels();
        c[0].to = Destination::Webhook { url: "ftp://x".into(), preset: Preset::Json, headers: BTreeMap::new() };
        let err = Config { channels: c, ..Config::default() }.validate().unwrap_err().to_string();
        assert!(err.contains("http:// or https://"), "{err}");
        let unknown =
            toml::from_str::<Config>("[[channel]]\nname = \"x\"\nkind = \"pigeon\"\n").unwrap_err().to_string();
        assert!(unknown.contains("pigeon"), "{unknown}");
        let typo = "[[channel]]\nname = \"x\"\nkind = \"mqtt\"\ntopic = \"t\"\nevnts = [\"triggered\"]\n";
        let typo = toml::from_str::<Config>(typo).unwrap_err().to_string();
        assert!(typo.contains("evnts"), "{typo}");
    }
}
