//! The notifier: when the alarm goes off while nobody is home, someone is told.
//!
//! It follows the panel's events (`<root>/security/events`) and sends the ones each channel asks
//! for — by default `triggered`, `duress`, `trouble`, `lockout`, `failed_to_arm` and
//! `alarm_ended` — to a webhook (a JSON POST, or the ntfy and Gotify forms), by email (SMTP with
//! STARTTLS), or to an MQTT topic a phone app or a Home Assistant automation follows.
//!
//! - **Nothing is dropped while a channel is down**: each channel keeps its own queue, in order,
//!   retried with exponential backoff (1 s doubling to 60 s) until it answers with a 2xx; one log
//!   line when it fails, one when it works again.
//! - **One message per alarm**: an event redelivered by the broker (same kind, same time) is sent
//!   once; the panel's status is not followed at all, only its events.
//! - **Rate-limited**: at most `max_per_minute` a channel; the rest are counted and said in the
//!   next message that goes out.
//! - **Duress is silent in the house**: a duress notification goes only to webhooks and email
//!   (someone outside), never to an MQTT channel, which the home's own screens may show.
//! - **Secrets stay secret**: header values may name environment variables (`${NTFY_TOKEN}`),
//!   read at start; logs name a webhook by its host only, never its path, query or headers.
//!
//! [`decide`] is the pure part: which channels an event goes to and what they are told.

pub mod email;
pub mod webhook;

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use device_runtime::daemon::DaemonConfig;
use device_runtime::{Act, ConfigError, Device, DeviceSpec, MqttConfig, Shutdown};
use protocol::{DeviceKind, PanelEvent, PanelEventKind, Payload, Qos, Timestamp, Topic, Topics};
use serde::{Deserialize, Serialize};

/// The events a channel gets when it names none.
pub const DEFAULT_EVENTS: [PanelEventKind; 6] = [
    PanelEventKind::Triggered,
    PanelEventKind::Duress,
    PanelEventKind::Trouble,
    PanelEventKind::Lockout,
    PanelEventKind::FailedToArm,
    PanelEventKind::AlarmEnded,
];
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

    fn mqtt(&self) -> &MqttConfig {
        &self.mqtt
    }

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
    /// At most this many a minute.
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
        message: event.message.clone(),
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

/// A notification waiting for its channel.
#[derive(Debug, Clone)]
struct Pending {
    notification: Notification,
    attempts: u32,
    next_try: Timestamp,
}

/// One channel at run time.
struct Channel {
    config: ChannelConfig,
    webhook: Option<webhook::Webhook>,
    email: Option<email::Email>,
    queue: VecDeque<Pending>,
    sent: VecDeque<Timestamp>,
    suppressed: u32,
    failing: bool,
}

/// Work done off the decision path: one send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Deliver(pub usize);

/// The notifier as a [`Device`].
pub struct Notifier {
    config: Config,
    topics: Topics,
    channels: Vec<Channel>,
    seen: VecDeque<(PanelEventKind, Timestamp)>,
    /// A send is under way (one at a time: each channel keeps its order).
    busy: bool,
}

impl Notifier {
    /// Reads the channels' secrets from the environment; an unset one is an error.
    pub fn new(config: Config) -> Result<Notifier, String> {
        let channels = config
            .channels
            .iter()
            .map(|c| {
                let email = match &c.to {
                    Destination::Email(config) => {
                        Some(email::Email::new(config).map_err(|e| format!("channel {}: {e}", c.name))?)
                    }
                    _ => None,
                };
                let webhook = match &c.to {
                    Destination::Webhook { url, preset, headers } => {
                        let headers = headers
                            .iter()
                            .map(|(k, v)| expand_env(v).map(|v| (k.clone(), v)))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| format!("channel {}: {e}", c.name))?;
                        Some(
                            webhook::Webhook::new(url, *preset, headers)
                                .map_err(|e| format!("channel {}: {e}", c.name))?,
                        )
                    }
                    Destination::Mqtt { .. } | Destination::Email(_) => None,
                };
                Ok(Channel {
                    config: c.clone(),
                    webhook,
                    email,
                    queue: VecDeque::new(),
                    sent: VecDeque::new(),
                    suppressed: 0,
                    failing: false,
                })
            })
            .collect::<Result<Vec<_>, String>>()?;
        let topics = Topics::new(&config.mqtt.topic_root);
        Ok(Notifier { config, topics, channels, seen: VecDeque::new(), busy: false })
    }

    /// Messages waiting, over every channel.
    pub fn waiting(&self) -> usize {
        self.channels.iter().map(|c| c.queue.len()).sum()
    }

    fn enqueue(&mut self, event: &PanelEvent, now: Timestamp) {
        let key = (event.event, event.ts);
        if self.seen.contains(&key) {
            tracing::debug!("{} of {} again (a redelivery): already sent", event.event.as_str(), event.ts);
            return;
        }
        if self.seen.len() == SEEN_MAX {
            self.seen.pop_front();
        }
        self.seen.push_back(key);
        for (i, notification) in decide(&self.config.channels, event) {
            let channel = &mut self.channels[i];
            while channel.sent.front().is_some_and(|t| now.since(*t) >= Duration::from_secs(60)) {
                channel.sent.pop_front();
            }
            if channel.sent.len() >= channel.config.max_per_minute as usize {
                channel.suppressed += 1;
                tracing::warn!(
                    "channel {}: over {} a minute, {} not sent (said in the next one)",
                    channel.config.name,
                    channel.config.max_per_minute,
                    notification.event.as_str()
                );
                continue;
            }
            channel.sent.push_back(now);
            if channel.queue.len() == QUEUE_MAX {
                channel.queue.pop_front();
                channel.suppressed += 1;
            }
            let mut notification = notification;
            if channel.suppressed > 0 {
                notification.message =
                    format!("{} ({} more not sent: rate limit)", notification.message, channel.suppressed);
                channel.suppressed = 0;
            }
            channel.queue.push_back(Pending { notification, attempts: 0, next_try: now });
        }
    }

    /// The channel whose head is due first, if one is due at `now`.
    fn due(&self, now: Timestamp) -> Option<usize> {
        self.channels
            .iter()
            .enumerate()
            .filter_map(|(i, c)| c.queue.front().map(|p| (p.next_try, i)))
            .filter(|(at, _)| *at <= now)
            .min()
            .map(|(_, i)| i)
    }

    fn next_send(&mut self, now: Timestamp) -> Vec<Act<Deliver>> {
        if self.busy {
            return Vec::new();
        }
        match self.due(now) {
            Some(i) => {
                self.busy = true;
                vec![Act::Job(Deliver(i))]
            }
            None => Vec::new(),
        }
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

    fn on_message(&mut self, topic: Topic, payload: &[u8], now: Timestamp) -> Vec<Act<Deliver>> {
        if topic != Topic::PanelEvents {
            return Vec::new();
        }
        match PanelEvent::decode(payload) {
            Ok(event) => self.enqueue(&event, now),
            Err(e) => tracing::warn!("ignored a panel event: {e}"),
        }
        self.next_send(now)
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        if self.busy {
            return None;
        }
        self.channels.iter().filter_map(|c| c.queue.front().map(|p| p.next_try)).min()
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<Deliver>> {
        self.next_send(now)
    }

    async fn run_job(&mut self, Deliver(i): Deliver) -> Vec<Act<Deliver>> {
        self.busy = false;
        let now = Timestamp::now();
        let Some(pending) = self.channels[i].queue.front().cloned() else { return Vec::new() };
        let channel = &self.channels[i];
        let outcome = match (&channel.webhook, &channel.email) {
            (Some(webhook), _) => webhook.send(&pending.notification).await,
            (_, Some(email)) => email.send(&pending.notification).await,
            (None, None) => Ok(()),
        };
        let mut acts = Vec::new();
        if let Destination::Mqtt { topic } = &self.channels[i].config.to {
            acts.push(Act::Foreign { topic: topic.clone(), payload: pending.notification.to_json(), retain: false });
        }
        let channel = &mut self.channels[i];
        match outcome {
            Ok(()) => {
                channel.queue.pop_front();
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
                let head = channel.queue.front_mut().expect("the head is still there");
                head.attempts += 1;
                let wait = backoff(head.attempts);
                head.next_try = now.plus(wait);
                if !channel.failing {
                    channel.failing = true;
                    tracing::warn!(
                        "channel {}: {e}; {} waiting, retrying in {} s and on",
                        channel.config.name,
                        channel.queue.len(),
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
            event: kind,
            mode: None,
            user: None,
            sensors: vec!["kitchen-window".into()],
            message: "window kitchen-window open (perimeter)".into(),
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

    #[test]
    fn a_redelivered_event_is_sent_once_and_the_rate_is_limited() {
        let mut notifier = Notifier::new(Config { channels: channels(), ..Config::default() }).unwrap();
        let now = Timestamp(1_000_000);
        notifier.enqueue(&event(PanelEventKind::Triggered, 5), now);
        notifier.enqueue(&event(PanelEventKind::Triggered, 5), now);
        assert_eq!(notifier.waiting(), 2, "one a channel, the redelivery not again");
        for ts in 6..9 {
            notifier.enqueue(&event(PanelEventKind::Triggered, ts), now);
        }
        // The MQTT channel takes 2 a minute: the third and fourth were not queued.
        assert_eq!((notifier.channels[0].queue.len(), notifier.channels[1].queue.len()), (4, 2));
        assert_eq!(notifier.channels[1].suppressed, 2);
        notifier.enqueue(&event(PanelEventKind::Triggered, 9), now.plus(Duration::from_secs(61)));
        let last = notifier.channels[1].queue.back().unwrap();
        assert!(last.notification.message.ends_with("(2 more not sent: rate limit)"), "{}", last.notification.message);
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
