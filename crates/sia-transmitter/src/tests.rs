//! The transmitter's decisions, without a broker or a receiver: events in, sends and acks out,
//! answers fed back by hand, time passed by hand.

use std::time::Duration;

use device_runtime::Act;
use protocol::{ArmMode, PanelEvent, PanelEventKind, Timestamp};

use super::*;
use crate::send::Transport;

const T0: Timestamp = Timestamp(1_796_379_630_000);

fn config(dir: &std::path::Path, receivers: usize) -> Config {
    Config {
        account: "1234".into(),
        receivers: (0..receivers)
            .map(|i| Receiver { address: format!("127.0.0.1:{}", 9000 + i), transport: Transport::Tcp })
            .collect(),
        queue_file: dir.join("queue.json"),
        zones: [("front-door".to_owned(), 3)].into(),
        users: [("alice".to_owned(), 1)].into(),
        poll_s: 60.0,
        ..Config::default()
    }
}

fn event(id: &str, kind: PanelEventKind, sensors: &[&str]) -> PanelEvent {
    PanelEvent {
        event: kind,
        id: Some(id.into()),
        mode: None,
        user: None,
        sensors: sensors.iter().map(|s| (*s).to_owned()).collect(),
        reason: None,
        cause: None,
        message: String::new(),
        area: None,
        device_id: "security-controller".into(),
        ts: T0,
    }
}

/// `e` as the broker delivers it on the panel's event topic.
fn received(e: &PanelEvent) -> Received {
    Received {
        topic: Topics::new("home").name(&Topic::PanelEvents),
        payload: protocol::Payload::encode(e),
        retained: false,
        redelivered: false,
        ack: None,
    }
}

/// The panel's event in, and the queue's saves carried out as the runner would (on this thread).
fn receive(t: &mut Transmitter, e: &PanelEvent, now: Timestamp) -> Vec<Act<Job>> {
    let acts = t.on_received(&Topics::new("home"), received(e), now);
    settle(t, acts, now)
}

/// `acts`, with each [`Job::Save`] done here and what follows it appended.
fn settle(t: &mut Transmitter, acts: Vec<Act<Job>>, now: Timestamp) -> Vec<Act<Job>> {
    let mut all = Vec::new();
    let mut queue = std::collections::VecDeque::from(acts);
    while let Some(act) = queue.pop_front() {
        if let Act::Job(Job::Save { ack }) = &act {
            let outcome = t.file.save(&t.queue);
            queue.extend(t.saved(*ack, outcome, now));
        }
        all.push(act);
    }
    all
}

/// The sends among `acts`: (seq, receiver, the message as text).
fn sends(acts: &[Act<Job>]) -> Vec<(u16, usize, String)> {
    acts.iter()
        .filter_map(|a| match a {
            Act::Job(Job::Send(s)) => Some((s.seq, s.receiver, String::from_utf8_lossy(&s.message).into_owned())),
            _ => None,
        })
        .collect()
}

fn answer(t: &mut Transmitter, receiver: usize, reply: Result<Reply, String>, now: Timestamp) -> Vec<Act<Job>> {
    let acts = t.on_outcome(Outcome { receiver, answer: reply }, now);
    settle(t, acts, now)
}

#[test]
fn an_intrusion_is_sent_at_once_and_leaves_the_file_when_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    let acts = receive(&mut t, &event("r-1", PanelEventKind::Triggered, &["front-door"]), T0);
    let sent = sends(&acts);
    assert_eq!(sent.len(), 1);
    assert!(sent[0].2.contains("\"SIA-DCS\"0001L0#1234[#1234|Nri1/BA03]_10:20:30,12-04-2026"), "{}", sent[0].2);
    assert_eq!(QueueFile::new(dir.path().join("queue.json")).load().unwrap().pending.len(), 1, "on disk first");
    assert_eq!(t.next_deadline(), None, "one message at a time");
    answer(&mut t, 0, Ok(Reply::Ack { seq: 1 }), T0);
    assert_eq!(t.waiting(), 0);
    assert!(QueueFile::new(dir.path().join("queue.json")).load().unwrap().pending.is_empty());
}

#[test]
fn reports_go_in_order_one_after_the_other() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    let mut armed = event("r-1", PanelEventKind::Armed, &[]);
    armed.mode = Some(ArmMode::Away);
    armed.user = Some("alice".into());
    receive(&mut t, &armed, T0);
    let acts = receive(&mut t, &event("r-2", PanelEventKind::Triggered, &["front-door"]), T0);
    assert!(sends(&acts).is_empty(), "the closing is still on the wire");
    let next = sends(&answer(&mut t, 0, Ok(Reply::Ack { seq: 1 }), T0));
    assert_eq!(next.len(), 1);
    assert!(next[0].2.contains("0002L0#1234[#1234|Nri1/BA03]"), "{}", next[0].2);
}

#[test]
fn failures_back_off_then_fail_over_to_the_backup() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transmitter::new(config(dir.path(), 2), T0).unwrap();
    receive(&mut t, &event("r-1", PanelEventKind::Triggered, &["front-door"]), T0);
    let acts = answer(&mut t, 0, Err("connection refused".into()), T0);
    assert!(sends(&acts).is_empty());
    assert_eq!(t.next_deadline(), Some(T0.plus(Duration::from_secs(1))));
    let retry = sends(&t.on_deadline(T0.plus(Duration::from_secs(1))));
    assert_eq!((retry[0].0, retry[0].1), (1, 0), "the same seq, the primary again");
    let acts = answer(&mut t, 0, Ok(Reply::Unreadable("garbage".into())), T0.plus(Duration::from_secs(2)));
    let backup = sends(&acts);
    assert_eq!((backup[0].0, backup[0].1), (1, 1), "two failures: the backup at once, same seq");
    answer(&mut t, 1, Ok(Reply::Ack { seq: 1 }), T0.plus(Duration::from_secs(2)));
    assert_eq!(t.waiting(), 0);
}

#[test]
fn backoff_doubles_to_its_ceiling() {
    let max = Duration::from_secs(60);
    let waits: Vec<u64> = (1..=8).map(|n| backoff(n, max).as_secs()).collect();
    assert_eq!(waits, [1, 2, 4, 8, 16, 32, 60, 60]);
}

#[test]
fn a_nak_with_the_receivers_time_is_sent_again_at_once_on_their_clock() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    receive(&mut t, &event("r-1", PanelEventKind::Triggered, &["front-door"]), T0);
    let theirs = T0.plus(Duration::from_secs(3600));
    let again = sends(&answer(&mut t, 0, Ok(Reply::Nak { their_time: Some(theirs) }), T0));
    assert!(again[0].2.contains("0001L0#1234[#1234|Nri1/BA03]_11:20:30,12-04-2026"), "{}", again[0].2);
    // A receiver that keeps refusing is a failure, with a wait.
    answer(&mut t, 0, Ok(Reply::Nak { their_time: Some(theirs) }), T0);
    let acts = answer(&mut t, 0, Ok(Reply::Nak { their_time: Some(theirs) }), T0);
    assert!(sends(&acts).is_empty());
    assert_eq!(t.next_deadline(), Some(T0.plus(Duration::from_secs(1))));
}

#[test]
fn an_ack_of_another_message_is_no_ack_and_a_duh_drops_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    receive(&mut t, &event("r-1", PanelEventKind::Triggered, &["front-door"]), T0);
    answer(&mut t, 0, Ok(Reply::Ack { seq: 7 }), T0);
    assert_eq!(t.waiting(), 1);
    let retry = sends(&t.on_deadline(T0.plus(Duration::from_secs(1))));
    assert_eq!(retry.len(), 1);
    answer(&mut t, 0, Ok(Reply::Duh { seq: 1 }), T0.plus(Duration::from_secs(1)));
    assert_eq!(t.waiting(), 0);
}

#[test]
fn a_redelivered_event_is_reported_once() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    let e = event("r-1", PanelEventKind::Triggered, &["front-door"]);
    receive(&mut t, &e, T0);
    assert!(sends(&receive(&mut t, &e, T0)).is_empty());
    assert_eq!(t.waiting(), 1);
    answer(&mut t, 0, Ok(Reply::Ack { seq: 1 }), T0);
    assert!(sends(&receive(&mut t, &e, T0)).is_empty(), "already reported");
    assert_eq!(t.waiting(), 0);
}

#[test]
fn a_restart_sends_what_was_not_taken_with_its_sequence_number() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    receive(&mut t, &event("r-1", PanelEventKind::Triggered, &["front-door"]), T0);
    drop(t); // killed with the report on the wire
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    let sent = sends(&t.on_start(T0));
    assert_eq!(sent[0].0, 1, "{sent:?}");
    let mut e = event("r-2", PanelEventKind::Disarmed, &[]);
    e.user = Some("alice".into());
    receive(&mut t, &e, T0);
    answer(&mut t, 0, Ok(Reply::Ack { seq: 1 }), T0);
    assert_eq!(t.queue.pending.front().map(|p| p.seq), Some(2), "numbering goes on from the file");
}

#[test]
fn a_quiet_line_is_polled() {
    let dir = tempfile::tempdir().unwrap();
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    assert!(sends(&t.on_start(T0)).is_empty());
    let at = T0.plus(Duration::from_secs(60));
    assert_eq!(t.next_deadline(), Some(at));
    let poll = sends(&t.on_deadline(at));
    assert!(poll[0].2.contains("\"NULL\"0001L0#1234[]_10:21:30,12-04-2026"), "{}", poll[0].2);
    answer(&mut t, 0, Ok(Reply::Ack { seq: 1 }), at);
    assert_eq!(t.next_deadline(), Some(at.plus(Duration::from_secs(60))));
}

#[test]
fn an_event_that_cannot_be_saved_is_not_acknowledged_but_still_sent() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, b"").unwrap();
    let mut t = Transmitter::new(config(dir.path(), 1), T0).unwrap();
    t.file = QueueFile::new(blocker.join("queue.json"));
    let e = event("r-1", PanelEventKind::Triggered, &["front-door"]);
    let acts = t.on_received(&Topics::new("home"), received(&e), T0);
    let [Act::Metric { .. }, Act::Metric { .. }, Act::Metric { .. }, Act::Job(Job::Save { .. })] = acts.as_slice()
    else {
        panic!("the event is acknowledged only after its save: {acts:?}")
    };
    let outcome = t.file.save(&t.queue);
    assert!(outcome.is_err());
    let after = t.saved(None, outcome, T0);
    assert!(!after.iter().any(|a| matches!(a, Act::Ack(_))), "not durable: not acknowledged, the broker keeps it");
    assert_eq!(sends(&after).len(), 1, "but it is sent");
}

#[test]
fn the_config_names_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let good = config(dir.path(), 1);
    assert!(good.validate().is_ok());
    let cases: Vec<(Config, &str)> = vec![
        (Config { account: "12".into(), ..good.clone() }, "3 to 16 hex digits"),
        (Config { account: "12G4".into(), ..good.clone() }, "3 to 16 hex digits"),
        (Config { key: Some(Secret::new("0123456789")), ..good.clone() }, "16, 24 or 32"),
        (Config { receivers: Vec::new(), ..good.clone() }, "no [[receivers]]"),
        (
            Config {
                receivers: vec![Receiver { address: "centre".into(), transport: Transport::Udp }],
                ..good.clone()
            },
            "host:port",
        ),
        (Config { fail_over_after: 0, ..good }, "fail_over_after"),
    ];
    for (config, says) in cases {
        let e = config.validate().unwrap_err().to_string();
        assert!(e.contains(says), "{e} should say {says}");
        assert!(!e.contains("0123456789"), "never the key: {e}");
    }
}
