//! The link's decisions, as a pure state machine: `(LinkState, LinkEvent) -> Vec<LinkAction>`.
//!
//! What to do on a CONNACK, on a lost or refused connection, on a SUBACK that refuses a filter and
//! at the end of each turn of the event loop while shutting down is decided here, with no socket,
//! no clock and no randomness that a test cannot seed; [`super::driver`] reads rumqttc's events,
//! turns them into [`LinkEvent`]s and carries out the [`LinkAction`]s.

use std::time::Duration;

use crate::broker::BrokerUrl;

const FIRST_RETRY: Duration = Duration::from_millis(250);
/// The longest wait between two attempts: after an outage of any length, a daemon is back within
/// this (plus the connect itself) of the broker's return.
pub const LAST_RETRY: Duration = Duration::from_secs(2);
/// The wait after the broker refused the connection (bad credentials will not fix themselves).
pub(crate) const REFUSED_RETRY: Duration = Duration::from_secs(15);
/// A refused subscription is tried again after this, doubling up to a minute.
const RESUBSCRIBE_FIRST: Duration = Duration::from_secs(2);
const LAST_RETRY_SUBSCRIBE: Duration = Duration::from_secs(60);
/// How long a broker has to accept TCP and answer CONNECT; then the next one is tried.
pub(crate) const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);

/// What the link is, between two events.
#[derive(Debug, Clone)]
pub struct LinkState {
    device_id: String,
    brokers: Vec<BrokerUrl>,
    /// The broker the event loop is on (or trying).
    current: usize,
    connected: bool,
    /// Failed attempts since the last CONNACK.
    failures: u32,
    backoff: Backoff,
    /// Whether this process has subscribed once (a restarted daemon subscribes again on its first
    /// connect even when the broker kept its session, to be sent the retained state).
    subscribed_once: bool,
    /// SUBACKs in a row that refused a filter.
    refusals: u32,
    disconnecting: bool,
    plan: Plan,
}

/// What the device asked of its link, as far as the decisions go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plan {
    /// Keeps a retained availability and announce ([`crate::DeviceSpec::presence`]).
    pub presence: bool,
    /// Subscribes again on its first connect ([`crate::DeviceSpec::retained_on_restart`]).
    pub retained_on_restart: bool,
    /// Has anything to subscribe to.
    pub subscribes: bool,
}

/// What happened, as the decisions need to know it.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkEvent {
    /// The broker accepted the connection.
    ConnAck { session_present: bool },
    /// The connection failed, or was lost.
    Lost { failure: Failure, shutting_down: bool },
    /// A SUBACK; the filters it refused (none: all granted).
    SubAck { refused: Vec<rumqttc::SubscribeFilter> },
    /// The DISCONNECT was written.
    Disconnected,
    /// One turn of the event loop is over: may the goodbye's DISCONNECT go now?
    Turn { shutting_down: bool, goodbye_queued: bool, all_written: bool, inflight: u16 },
}

/// Why a connection failed, in the terms its log line needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// The broker refused the credentials (CONNACK 4 or 5).
    BadCredentials(String),
    /// The broker refused the connection for another reason.
    Refused(String),
    /// Nothing listens at the address.
    Unreachable,
    /// No CONNACK within [`CONNECTION_TIMEOUT`].
    Timeout,
    Other(String),
}

/// What the link's edge is to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum LinkAction {
    /// Hand this to the daemon.
    Tell(crate::Inbound),
    /// A connection began or ended: acks owed by the one before are void.
    NewConnection,
    /// Connected or not, for whoever watches the daemon's health.
    Health(bool),
    /// Give back to rumqttc what the lost connection left unacknowledged (see `resend`).
    Resend {
        session_present: bool,
    },
    /// Keep what rumqttc held to send again after a lost connection.
    KeepUnacknowledged,
    /// Forget the SUBSCRIBEs of the lost connection (the queued ones too on a new session).
    ForgetSubscribes {
        session_present: bool,
    },
    /// Subscribe to every filter (and cancel a pending retry of a part of them).
    Subscribe,
    /// Publish `online`, the announce and Home Assistant's configs.
    Announce,
    /// Subscribe again to the refused filters after the delay (replacing a pending retry).
    RetrySubscribe {
        filters: Vec<rumqttc::SubscribeFilter>,
        after: Duration,
    },
    /// The event loop is to try this broker of the list next.
    UseBroker(usize),
    Log(Level, String),
    /// Wait this long before the next attempt (or until shutdown).
    Wait(Duration),
    /// Send DISCONNECT: everything is written and acknowledged, `offline` included.
    Disconnect,
    /// The link's work is done.
    Stop,
}

/// A log line's level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

impl LinkState {
    /// A link for `device_id` that will try `brokers` in turn, with a random jitter.
    pub fn new(device_id: &str, brokers: Vec<BrokerUrl>, plan: Plan) -> LinkState {
        LinkState::seeded(device_id, brokers, plan, fastrand::u64(..))
    }

    /// The same, with the jitter seeded: what tests use.
    pub fn seeded(device_id: &str, brokers: Vec<BrokerUrl>, plan: Plan, seed: u64) -> LinkState {
        LinkState {
            device_id: device_id.to_owned(),
            brokers,
            current: 0,
            connected: false,
            failures: 0,
            backoff: Backoff::seeded(seed),
            subscribed_once: false,
            refusals: 0,
            disconnecting: false,
            plan,
        }
    }

    /// The broker the event loop is on (or trying).
    pub fn url(&self) -> &BrokerUrl {
        &self.brokers[self.current]
    }

    pub fn connected(&self) -> bool {
        self.connected
    }

    /// Decides what one event means.
    pub fn step(&mut self, event: LinkEvent) -> Vec<LinkAction> {
        match event {
            LinkEvent::ConnAck { session_present } => self.on_connack(session_present),
            LinkEvent::Lost { shutting_down: true, .. } => vec![LinkAction::Stop],
            LinkEvent::Lost { failure, shutting_down: false } => self.on_lost(&failure),
            LinkEvent::SubAck { refused } => self.on_suback(refused),
            LinkEvent::Disconnected => {
                let (level, what) = if self.plan.presence {
                    (Level::Info, "published offline and disconnected from")
                } else {
                    (Level::Debug, "disconnected from")
                };
                vec![LinkAction::Log(level, format!("{} {what} {}", self.device_id, self.url())), LinkAction::Stop]
            }
            LinkEvent::Turn { shutting_down, goodbye_queued, all_written, inflight } => {
                let ready = shutting_down && goodbye_queued && all_written && inflight == 0;
                if ready && self.connected && !self.disconnecting {
                    self.disconnecting = true;
                    vec![LinkAction::Disconnect]
                } else {
                    Vec::new()
                }
            }
        }
    }

    /// Subscribes first, then says `online`: the broker handles one connection's packets in
    /// order, so whoever sees `online` knows this device already hears its topics.
    fn on_connack(&mut self, session_present: bool) -> Vec<LinkAction> {
        self.backoff.reset();
        let n = self.brokers.len();
        let which = if n > 1 { format!(" (broker {} of {n})", self.current + 1) } else { String::new() };
        let session = if session_present { "session resumed" } else { "new session" };
        let line = if self.failures > 0 {
            format!("reconnected to {}{which} after {} failed attempts, {session}", self.url(), self.failures)
        } else {
            format!("connected to {}{which} as {}", self.url(), self.device_id)
        };
        self.failures = 0;
        self.connected = true;
        let mut actions = vec![
            LinkAction::Log(Level::Info, line),
            LinkAction::NewConnection,
            LinkAction::Health(true),
            LinkAction::Resend { session_present },
            LinkAction::ForgetSubscribes { session_present },
        ];
        // On the first connect of this process we subscribe even if the broker kept our session:
        // a restarted daemon needs the retained state again. Mosquitto resends it for a repeated
        // subscription, as MQTT 3.1.1 asks. rumqttd 0.20 does not (its router forwards retained
        // messages for new subscriptions only), so a daemon restarted against a long-running
        // embedded broker relearns state only as it changes; `mqtt-home` restarts broker and
        // daemons together, which leaves no session behind.
        let restarted = !self.subscribed_once && self.plan.retained_on_restart;
        if self.plan.subscribes && (!session_present || restarted) {
            actions.push(LinkAction::Subscribe);
            self.subscribed_once = true;
        }
        if self.plan.presence {
            actions.push(LinkAction::Announce);
        }
        actions.push(LinkAction::Tell(crate::Inbound::Connected { session_present }));
        actions
    }

    fn on_lost(&mut self, failure: &Failure) -> Vec<LinkAction> {
        let mut actions = Vec::new();
        if self.connected {
            actions.push(LinkAction::Tell(crate::Inbound::Disconnected));
        }
        self.connected = false;
        self.failures += 1;
        let delay = self.backoff.next(failure);
        actions.extend([LinkAction::NewConnection, LinkAction::Health(false), LinkAction::KeepUnacknowledged]);
        let failed = self.url().clone();
        // After a failure: the next broker of the list (the same one when there is only one).
        if self.brokers.len() > 1 {
            self.current = (self.current + 1) % self.brokers.len();
            actions.push(LinkAction::UseBroker(self.current));
        }
        actions.push(self.report(failure, &failed, delay));
        actions.push(LinkAction::Wait(delay));
        actions
    }

    /// One line on a failed or lost connection to `url`, saying what comes next. The first
    /// failure is a warning; then one line per attempt would flood the log, so only every 10th
    /// attempt (and the slow, refused retries) reach the default level.
    fn report(&self, failure: &Failure, url: &BrokerUrl, delay: Duration) -> LinkAction {
        let next = self.url();
        let then = if next == url {
            format!("retrying in {:.1} s", delay.as_secs_f32())
        } else {
            format!("trying {next} in {:.1} s", delay.as_secs_f32())
        };
        let message = match failure {
            Failure::BadCredentials(code) => format!(
                "broker {url} refused the connection ({code}): check --username/--password \
                 (MQTT_USERNAME/MQTT_PASSWORD) and the broker's password file; {then}"
            ),
            Failure::Refused(code) => format!("broker {url} refused the connection ({code}); {then}"),
            Failure::Unreachable => format!(
                "cannot reach broker {url}: connection refused; is it running? (set --broker or MQTT_BROKER_URL); {then}"
            ),
            Failure::Timeout => {
                format!("broker {url} did not answer CONNECT within {} s; {then}", CONNECTION_TIMEOUT.as_secs())
            }
            Failure::Other(what) => format!("connection to {url} failed: {what}; {then}"),
        };
        let loud = self.failures == 1 || self.failures.is_multiple_of(10) || delay >= REFUSED_RETRY;
        LinkAction::Log(if loud { Level::Warn } else { Level::Debug }, message)
    }

    /// A refused subscription is tried again, 2 s doubling to a minute: an ACL that forbids it
    /// stays a loud error, but on a clustered engine a subscription can also fail for a few
    /// seconds while the loss of a node is handled (NATS: 5–10 s), and a daemon must not go deaf
    /// to its topics until its next reconnect.
    fn on_suback(&mut self, refused: Vec<rumqttc::SubscribeFilter>) -> Vec<LinkAction> {
        if refused.is_empty() {
            self.refusals = 0;
            return Vec::new();
        }
        self.refusals += 1;
        let delay = RESUBSCRIBE_FIRST.saturating_mul(1 << (self.refusals - 1).min(5)).min(LAST_RETRY_SUBSCRIBE);
        let names: Vec<&str> = refused.iter().map(|f| f.path.as_str()).collect();
        let message = format!(
            "the broker refused the subscription to {names:?}: check this user's ACL (mqtt.username), or a \
             clustered broker is still taking over from a lost node; trying again in {} s",
            delay.as_secs()
        );
        let level = if self.refusals == 1 || self.refusals.is_multiple_of(10) { Level::Error } else { Level::Debug };
        vec![LinkAction::Log(level, message), LinkAction::RetrySubscribe { filters: refused, after: delay }]
    }
}

/// Exponential backoff with "equal jitter" (half fixed, half random, so a home full of daemons
/// does not reconnect in step), reset on every CONNACK.
#[derive(Debug, Clone)]
struct Backoff {
    attempt: u32,
    rng: fastrand::Rng,
}

impl Backoff {
    fn seeded(seed: u64) -> Backoff {
        Backoff { attempt: 0, rng: fastrand::Rng::with_seed(seed) }
    }

    fn reset(&mut self) {
        self.attempt = 0;
    }

    fn next(&mut self, failure: &Failure) -> Duration {
        let exp = FIRST_RETRY.saturating_mul(1 << self.attempt.min(8)).min(LAST_RETRY);
        self.attempt += 1;
        let jittered = exp / 2 + exp.mul_f64(self.rng.f64() / 2.0);
        match failure {
            Failure::BadCredentials(_) | Failure::Refused(_) => jittered.max(REFUSED_RETRY),
            Failure::Unreachable | Failure::Timeout | Failure::Other(_) => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Inbound;
    use LinkAction as A;

    fn plan() -> Plan {
        Plan { presence: true, retained_on_restart: true, subscribes: true }
    }

    fn link(brokers: &[&str]) -> LinkState {
        let urls = brokers.iter().map(|b| b.parse().unwrap()).collect();
        LinkState::seeded("panel", urls, plan(), 7)
    }

    fn lost() -> LinkEvent {
        LinkEvent::Lost { failure: Failure::Unreachable, shutting_down: false }
    }

    /// The actions without their log lines and waits, which the other tests look at.
    fn kinds(actions: &[LinkAction]) -> Vec<LinkAction> {
        actions.iter().filter(|a| !matches!(a, A::Log(..) | A::Wait(_))).cloned().collect()
    }

    #[test]
    fn a_connack_subscribes_before_it_says_online_and_tells_the_daemon_last() {
        let mut l = link(&["mqtt://a:1883"]);
        let actions = l.step(LinkEvent::ConnAck { session_present: false });
        assert_eq!(
            kinds(&actions),
            [
                A::NewConnection,
                A::Health(true),
                A::Resend { session_present: false },
                A::ForgetSubscribes { session_present: false },
                A::Subscribe,
                A::Announce,
                A::Tell(Inbound::Connected { session_present: false }),
            ]
        );
        assert_eq!(actions[0], A::Log(Level::Info, "connected to mqtt://a:1883 as panel".into()));
    }

    #[test]
    fn a_resumed_session_is_subscribed_again_only_on_the_first_connect() {
        let table = [
            // (retained_on_restart, first connect?, session_present) → subscribes
            (true, true, true, true),
            (true, false, true, false),
            (false, true, true, false),
            (false, true, false, true),
            (true, false, false, true),
        ];
        for (retained_on_restart, first, session_present, subscribes) in table {
            let urls = vec!["mqtt://a:1".parse().unwrap()];
            let mut l = LinkState::seeded("d", urls, Plan { retained_on_restart, ..plan() }, 1);
            if !first {
                l.step(LinkEvent::ConnAck { session_present: false });
                l.step(lost());
            }
            let actions = l.step(LinkEvent::ConnAck { session_present });
            assert_eq!(
                actions.contains(&A::Subscribe),
                subscribes,
                "retained_on_restart {retained_on_restart}, first {first}, session {session_present}"
            );
        }
        let urls = vec!["mqtt://a:1".parse().unwrap()];
        let mut quiet = LinkState::seeded("d", urls, Plan { presence: false, subscribes: false, ..plan() }, 1);
        let actions = quiet.step(LinkEvent::ConnAck { session_present: false });
        assert!(!actions.contains(&A::Subscribe) && !actions.contains(&A::Announce), "{actions:?}");
    }

    #[test]
    fn a_lost_connection_tells_the_daemon_once_keeps_what_was_unsent_and_fails_over() {
        let mut l = link(&["mqtt://a:1", "mqtt://b:2"]);
        l.step(LinkEvent::ConnAck { session_present: false });
        let actions = l.step(lost());
        assert_eq!(
            kinds(&actions),
            [
                A::Tell(Inbound::Disconnected),
                A::NewConnection,
                A::Health(false),
                A::KeepUnacknowledged,
                A::UseBroker(1)
            ]
        );
        assert!(
            matches!(&actions[5], A::Log(Level::Warn, m) if m.contains("mqtt://a:1") && m.contains("trying mqtt://b:2"))
        );
        // Not connected: the daemon is not told again; round and round the list.
        let again = l.step(lost());
        assert_eq!(kinds(&again)[..2], [A::NewConnection, A::Health(false)]);
        assert!(again.contains(&A::UseBroker(0)));
        let back = l.step(LinkEvent::ConnAck { session_present: true });
        assert!(
            matches!(&back[0], A::Log(Level::Info, m) if m == "reconnected to mqtt://a:1 (broker 1 of 2) after 2 failed attempts, session resumed")
        );
        assert!(!back.contains(&A::Subscribe), "a resumed session after the first subscription keeps it");
    }

    #[test]
    fn failures_are_loud_first_then_every_tenth_and_the_backoff_grows_to_a_ceiling() {
        let mut l = link(&["mqtt://a:1"]);
        let mut loud = Vec::new();
        let mut waits = Vec::new();
        for n in 1..=20 {
            for action in l.step(lost()) {
                match action {
                    A::Log(Level::Warn, _) => loud.push(n),
                    A::Wait(d) => waits.push(d),
                    _ => {}
                }
            }
        }
        assert_eq!(loud, [1, 10, 20]);
        assert!(waits[0] >= FIRST_RETRY / 2 && waits[0] <= FIRST_RETRY);
        assert!(waits[3] >= FIRST_RETRY * 4 && waits[3] <= FIRST_RETRY * 8);
        assert!(waits.iter().all(|d| *d <= LAST_RETRY));
        assert!(waits[19] >= LAST_RETRY / 2);
        l.step(LinkEvent::ConnAck { session_present: true });
        let reset = l.step(lost());
        assert!(reset.iter().any(|a| matches!(a, A::Wait(d) if *d <= FIRST_RETRY)), "a CONNACK resets the backoff");
    }

    #[test]
    fn refused_credentials_wait_long_and_say_what_to_check() {
        let mut l = link(&["mqtt://a:1"]);
        let actions =
            l.step(LinkEvent::Lost { failure: Failure::BadCredentials("NotAuthorized".into()), shutting_down: false });
        assert!(actions.iter().any(|a| matches!(a, A::Wait(d) if *d >= REFUSED_RETRY)));
        assert!(actions.iter().any(|a| matches!(a, A::Log(Level::Warn, m) if m.contains("--username/--password"))));
        assert_eq!(l.step(LinkEvent::Lost { failure: Failure::Timeout, shutting_down: true }), [A::Stop]);
    }

    #[test]
    fn a_refused_subscription_is_retried_with_a_growing_delay_and_a_grant_resets_it() {
        let mut l = link(&["mqtt://a:1"]);
        let filter = || vec![rumqttc::SubscribeFilter::new("home/x".into(), rumqttc::QoS::AtLeastOnce)];
        let delays: Vec<Duration> = (0..8)
            .map(|_| match &l.step(LinkEvent::SubAck { refused: filter() })[..] {
                [A::Log(..), A::RetrySubscribe { after, .. }] => *after,
                other => panic!("{other:?}"),
            })
            .collect();
        assert_eq!(delays[..3], [Duration::from_secs(2), Duration::from_secs(4), Duration::from_secs(8)]);
        assert_eq!(delays[7], LAST_RETRY_SUBSCRIBE);
        assert_eq!(l.step(LinkEvent::SubAck { refused: vec![] }), []);
        assert!(matches!(&l.step(LinkEvent::SubAck { refused: filter() })[..], [A::Log(Level::Error, _), _]));
    }

    #[test]
    fn the_goodbye_waits_for_every_write_and_ack_and_goes_once() {
        let mut l = link(&["mqtt://a:1"]);
        let turn = |shutting_down, goodbye_queued, all_written, inflight| LinkEvent::Turn {
            shutting_down,
            goodbye_queued,
            all_written,
            inflight,
        };
        assert_eq!(l.step(turn(true, true, true, 0)), [], "not connected: nothing to say goodbye to");
        l.step(LinkEvent::ConnAck { session_present: false });
        for not_yet in [
            turn(false, true, true, 0),
            turn(true, false, true, 0),
            turn(true, true, false, 0),
            turn(true, true, true, 1),
        ] {
            assert_eq!(l.step(not_yet.clone()), [], "{not_yet:?}");
        }
        assert_eq!(l.step(turn(true, true, true, 0)), [A::Disconnect]);
        assert_eq!(l.step(turn(true, true, true, 0)), [], "once");
        let bye = l.step(LinkEvent::Disconnected);
        assert!(
            matches!(&bye[..], [A::Log(Level::Info, m), A::Stop] if m == "panel published offline and disconnected from mqtt://a:1")
        );
    }
}
