//! The link against real sockets: how it behaves when the broker is not there, refuses it, or is
//! handed a payload over the limit. Counting connection attempts is the point of these tests:
//! rumqttc alone retries in a tight loop (tens of thousands of attempts in seconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use device_runtime::{DeviceSpec, Inbound, Link, LinkError, MqttConfig, Outgoing, Secret, Shutdown};
use protocol::{AlarmCommand, DeviceKind, Power, Qos, Topic};
use testkit::{Mosquitto, Probe, WITHIN};

fn config(url: &str, id: &str) -> MqttConfig {
    MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id(id) }
}

async fn wait_connected(link: &mut Link) {
    assert!(link.connected(WITHIN).await, "the link did not connect");
}

/// Waits until the link's subscription to `prefix/#` has taken: `Connected` comes before the broker
/// has it, so a message published at once could be missed. The retained `prefix/ready` comes after.
async fn wait_subscribed(link: &mut Link, probe: &mut Probe, prefix: &str) {
    let marker = format!("{prefix}/ready");
    probe.publish(&marker, "ready", true).await.unwrap();
    let subscribed = async {
        while let Some(inbound) = link.inbox.recv().await {
            if matches!(&inbound, Inbound::Message { topic, .. } if *topic == marker) {
                return;
            }
        }
    };
    tokio::time::timeout(WITHIN, subscribed).await.expect("the subscription never took");
}

async fn stop(link: Link, shutdown: Shutdown) {
    shutdown.trigger();
    tokio::time::timeout(WITHIN, link.finish()).await.expect("the link did not stop");
}

/// A "broker" that accepts and hangs up at once, so every attempt fails after the TCP handshake:
/// its URL, and how many attempts it has seen.
async fn hanging_up_broker() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("mqtt://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    (url, attempts)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_broker_is_retried_with_backoff_not_in_a_loop() {
    let (url, attempts) = hanging_up_broker().await;
    let shutdown = Shutdown::new();
    let link =
        Link::start(&config(&url, "backoff-test"), DeviceSpec::new(DeviceKind::DoorSensor), shutdown.clone()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let n = attempts.load(Ordering::SeqCst);
    // 250 ms doubling, with jitter: about 4 attempts in 3 s.
    assert!((2..=10).contains(&n), "{n} connection attempts in 3 s");
    stop(link, shutdown).await;
}

/// Wrong credentials: refused, reported, and retried slowly; the right ones connect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_credentials_are_retried_slowly() {
    if testkit::mosquitto_or_skip().is_none() {
        return;
    }
    let mosquitto = Mosquitto::start_with_config(|port, dir| {
        let passwd = dir.join("passwd");
        let made = std::process::Command::new("mosquitto_passwd")
            .args(["-c", "-b"])
            .arg(&passwd)
            .args(["front", "right-password"])
            .status()
            .expect("mosquitto_passwd (package mosquitto) is needed");
        assert!(made.success());
        std::fs::set_permissions(&passwd, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
        format!(
            "listener {port} 127.0.0.1\nallow_anonymous false\npassword_file {}\nlog_dest file {}/mosquitto.log\nlog_type all\n",
            passwd.display(),
            dir.display()
        )
    })
    .unwrap();

    let wrong = MqttConfig {
        username: Some("front".into()),
        password: Some(Secret::new("wrong-password")),
        ..config(&mosquitto.url(), "front")
    };
    let shutdown = Shutdown::new();
    let link = Link::start(&wrong, DeviceSpec::new(DeviceKind::DoorSensor), shutdown.clone()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let refusals = mosquitto.log().matches("not authorised").count();
    assert!((1..=2).contains(&refusals), "{refusals} refused attempts in 3 s:\n{}", mosquitto.log());
    stop(link, shutdown).await;

    let right = MqttConfig { password: Some(Secret::new("right-password")), ..wrong };
    let shutdown = Shutdown::new();
    let mut link = Link::start(&right, DeviceSpec::new(DeviceKind::DoorSensor), shutdown.clone()).unwrap();
    wait_connected(&mut link).await;
    stop(link, shutdown).await;
}

/// A payload over the limit is refused before it is sent; the connection carries on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_publish_is_refused_and_the_link_goes_on() {
    let broker = testkit::embedded();
    let mut probe = Probe::connect(&broker.url(), "probe-oversize").await.unwrap();
    probe.subscribe("test/#").await.unwrap();
    let small = MqttConfig { max_payload_bytes: 1024, ..config(&broker.url(), "oversize-test") };
    let shutdown = Shutdown::new();
    let mut link = Link::start(&small, DeviceSpec::new(DeviceKind::DoorSensor), shutdown.clone()).unwrap();
    wait_connected(&mut link).await;

    let refused = link.publisher.send_bytes("test/big", vec![b'x'; 2048], Qos::AtLeastOnce, false).await;
    assert!(matches!(refused, Err(LinkError::PayloadTooLarge { size: 2048, max: 1024, .. })), "{refused:?}");
    link.publisher.send_bytes("test/small", b"fits".to_vec(), Qos::AtLeastOnce, false).await.unwrap();
    probe.expect("test/small", |p| p == b"fits", WITHIN).await.unwrap();
    assert_eq!(probe.count("test/big"), 0);
    stop(link, shutdown).await;
}

/// After an outage long enough for the backoff to reach its ceiling, the link is back within 3 s
/// of the broker's return (the ceiling is 2 s; the rest is the connect itself).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_long_outage_the_link_is_back_within_3_s() {
    let Some(mut mosquitto) = testkit::mosquitto_or_skip() else { return };
    let shutdown = Shutdown::new();
    let mut link = Link::start(
        &config(&mosquitto.url(), "fast-return"),
        DeviceSpec::new(DeviceKind::DoorSensor),
        shutdown.clone(),
    )
    .unwrap();
    wait_connected(&mut link).await;
    mosquitto.stop();
    // 250 ms doubling reaches the 2 s ceiling after about 4 s; wait well past it.
    tokio::time::sleep(Duration::from_secs(8)).await;
    mosquitto.restart().unwrap();
    let back_at = std::time::Instant::now();
    wait_connected(&mut link).await;
    let took = back_at.elapsed();
    assert!(took <= Duration::from_secs(3), "back {took:?} after the broker returned");
    stop(link, shutdown).await;
}

/// A message larger than the client's packet limit used to drop the connection, and the broker
/// redelivered it (QoS 1, persistent session) on every reconnect. Now it is read, discarded with one
/// log line, and the next message arrives on the same connection. Mosquitto here has no
/// `message_size_limit`, as a broker set up by someone else may not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_message_costs_one_log_line_not_the_connection() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let shutdown = Shutdown::new();
    let mut spec = DeviceSpec::new(DeviceKind::DoorSensor);
    spec.subscriptions = vec![("test/#".to_owned(), Qos::AtLeastOnce)];
    let mut link = Link::start(&config(&mosquitto.url(), "poison-test"), spec, shutdown.clone()).unwrap();
    let mut probe = Probe::connect(&mosquitto.url(), "probe-poison").await.unwrap();
    wait_subscribed(&mut link, &mut probe, "test").await;
    probe.publish("test/poison", vec![b'x'; 17 << 20], false).await.unwrap();
    probe.publish("test/after", b"still here".to_vec(), false).await.unwrap();

    let mut reconnects = 0;
    let after = async {
        while let Some(inbound) = link.inbox.recv().await {
            match inbound {
                Inbound::Connected { .. } => reconnects += 1,
                Inbound::Disconnected => {}
                Inbound::Oversized { .. } => panic!("only a daemon with manual acks hears of an oversized message"),
                Inbound::Message { topic, payload, .. } => {
                    assert_ne!(topic, "test/poison", "an oversized message reached the daemon");
                    if topic == "test/after" {
                        return payload;
                    }
                }
            }
        }
        panic!("the link stopped");
    };
    let payload = tokio::time::timeout(WITHIN, after).await.expect("the message after the poison never arrived");
    assert_eq!(payload, b"still here");
    assert_eq!(reconnects, 0, "the poison message cost the connection");
    stop(link, shutdown).await;
}

/// A daemon that falls behind: the link stops reading when the inbox is full (the broker keeps the
/// rest), the daemon can still publish as much as it likes meanwhile (no circular wait), and once
/// it reads again every message arrives, in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_behind_a_flood_loses_nothing_and_never_deadlocks() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let mut probe = Probe::connect(&mosquitto.url(), "probe-flood").await.unwrap();
    let shutdown = Shutdown::new();
    let mut spec = DeviceSpec::new(DeviceKind::DoorSensor);
    spec.subscriptions = vec![("flood/#".to_owned(), Qos::AtLeastOnce)];
    let mut link = Link::start(&config(&mosquitto.url(), "flood-test"), spec, shutdown.clone()).unwrap();
    wait_subscribed(&mut link, &mut probe, "flood").await;
    let total = 3 * device_runtime::link::INBOX_CAPACITY;
    for i in 0..total {
        probe.publish("flood/in", i.to_string(), false).await.unwrap();
    }
    // The inbox is full and the link waits for room; publishing must not wait on the link.
    let publishing = async {
        for i in 0..total {
            link.publisher.send_bytes("out/x", i.to_string().into_bytes(), Qos::AtMostOnce, false).await.unwrap();
        }
    };
    tokio::time::timeout(WITHIN, publishing).await.expect("publishing waited on a link waiting on the daemon");
    for expected in 0..total {
        let next = tokio::time::timeout(WITHIN, link.inbox.recv()).await.expect("a message went missing");
        let Some(Inbound::Message { payload, .. }) = next else { panic!("{next:?}") };
        assert_eq!(payload, expected.to_string().into_bytes());
    }
    stop(link, shutdown).await;
}

/// A broker list (`--broker a,b,c`): an entry that is not a URL is left out, a node that accepts TCP
/// and never answers CONNECT is given up after the connection timeout, and the link connects to
/// the next; when that broker dies, the link is on the one after it within seconds and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_list_skips_a_silent_node_and_fails_over_to_the_next() {
    let Some(mut first) = testkit::mosquitto_or_skip() else { return };
    let second = Mosquitto::start().unwrap();
    // Accepts and holds every connection, never a CONNACK.
    let silent = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let silent_port = silent.local_addr().unwrap().port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((socket, _)) = silent.accept().await {
            held.push(socket);
        }
    });
    let list = format!("mqtt://127.0.0.1:{silent_port},http://not-a-broker,{},{}", first.url(), second.url());
    let config = config(&list, "failover-test");
    assert_eq!(config.broker.urls().len(), 3, "{}", config.broker);
    assert_eq!(config.broker.set_aside().len(), 1);

    let mut on_first = Probe::connect(&first.url(), "probe-first").await.unwrap();
    let mut on_second = Probe::connect(&second.url(), "probe-second").await.unwrap();
    let availability = "home/devices/failover-test/availability";
    on_first.subscribe(availability).await.unwrap();
    on_second.subscribe(availability).await.unwrap();

    let shutdown = Shutdown::new();
    let mut spec = DeviceSpec::new(DeviceKind::DoorSensor);
    spec.persistent_session = true;
    let mut link = Link::start(&config, spec, shutdown.clone()).unwrap();
    // The silent node costs the connection timeout (5 s), then the first real broker.
    let started = std::time::Instant::now();
    assert!(link.connected(Duration::from_secs(15)).await, "never connected past the silent node");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_secs(4), "connected in {waited:?}: the silent node was not tried first");
    on_first.expect(availability, |p| p == b"online", WITHIN).await.unwrap();

    // The broker it is on dies: the next one of the list takes it.
    first.kill();
    let killed = std::time::Instant::now();
    on_second.expect(availability, |p| p == b"online", WITHIN).await.unwrap();
    println!("failed over from the killed broker to the next in {:.2} s", killed.elapsed().as_secs_f64());
    stop(link, shutdown).await;
}

/// Every broker of the list down: the link goes round all of them, with backoff, not in a loop.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_broker_down_the_list_is_retried_with_backoff() {
    let mut urls = Vec::new();
    let mut per_broker = Vec::new();
    for _ in 0..3 {
        let (url, attempts) = hanging_up_broker().await;
        urls.push(url);
        per_broker.push(attempts);
    }
    let shutdown = Shutdown::new();
    let config = config(&urls.join(","), "all-down-test");
    let link = Link::start(&config, DeviceSpec::new(DeviceKind::DoorSensor), shutdown.clone()).unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let each: Vec<usize> = per_broker.iter().map(|a| a.load(Ordering::SeqCst)).collect();
    let n: usize = each.iter().sum();
    // The same backoff as with one broker (about 4 attempts in 3 s), spread over the three.
    assert!((3..=10).contains(&n), "{n} connection attempts in 3 s: {each:?}");
    assert!(each.iter().all(|&a| a > 0), "a broker of the list was never tried: {each:?}");
    stop(link, shutdown).await;
}

/// A broker that takes messages and dies before acknowledging them, and the next broker of the list
/// has no session for the client: the link sends them again there, as new messages (rumqttc alone
/// forgets everything unacknowledged when the new broker has no session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_a_dying_broker_never_acknowledged_reach_the_next_one() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Some(next) = testkit::mosquitto_or_skip() else { return };
    // Answers CONNECT with CONNACK (no session), then reads everything and acknowledges nothing.
    let black_hole = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let black_hole_url = format!("mqtt://127.0.0.1:{}", black_hole.local_addr().unwrap().port());
    let (received_tx, mut received) = tokio::sync::mpsc::unbounded_channel::<Vec<u8>>();
    let (die_tx, die) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (mut socket, _) = black_hole.accept().await.unwrap();
        let mut buf = vec![0u8; 64 * 1024];
        let _ = socket.read(&mut buf).await;
        socket.write_all(&[0x20, 0x02, 0x00, 0x00]).await.unwrap();
        let reading = async {
            loop {
                match socket.read(&mut buf).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => {
                        let _ = received_tx.send(buf[..n].to_vec());
                    }
                }
            }
        };
        tokio::select! {
            () = reading => {}
            _ = die => {}
        }
        // The listener and the socket close here: the next attempt is refused.
    });

    let mut probe = Probe::connect(&next.url(), "probe-resend").await.unwrap();
    probe.subscribe("home/test/resend/#").await.unwrap();
    let shutdown = Shutdown::new();
    let config = config(&format!("{black_hole_url},{}", next.url()), "resend-test");
    let mut spec = DeviceSpec::new(DeviceKind::DoorSensor);
    spec.persistent_session = true;
    let mut link = Link::start(&config, spec, shutdown.clone()).unwrap();
    wait_connected(&mut link).await;
    for i in 0..10 {
        link.publisher
            .send_bytes(&format!("home/test/resend/{i}"), b"OPEN".to_vec(), Qos::AtLeastOnce, false)
            .await
            .unwrap();
    }
    // All ten are on the black hole's side of the socket, unacknowledged.
    let mut bytes = Vec::new();
    let all_written = async {
        while let Some(chunk) = received.recv().await {
            bytes.extend(chunk);
            if bytes.windows(17).filter(|w| w.starts_with(b"home/test/resend/")).count() >= 10 {
                return;
            }
        }
    };
    tokio::time::timeout(WITHIN, all_written).await.expect("the ten messages never reached the first broker");
    die_tx.send(()).unwrap();
    for i in 0..10 {
        let topic = format!("home/test/resend/{i}");
        if let Err(e) = probe.expect(&topic, |p| p == b"OPEN", WITHIN).await {
            panic!("message {i} was lost in the fail-over: {e:#}");
        }
    }
    stop(link, shutdown).await;
}

/// A broker that refuses the first SUBSCRIBE (as an ACL, or a NATS cluster electing new leaders
/// after a node's loss, does) and accepts the next: the link asks again by itself, and then hears
/// its topic, instead of staying deaf until its next reconnect.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_subscription_is_asked_for_again() {
    use bytes::BytesMut;
    use rumqttc::mqttbytes::v4::{ConnAck, ConnectReturnCode, Packet, Publish, SubAck, SubscribeReasonCode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("mqtt://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let subscribes = Arc::new(AtomicUsize::new(0));
    let counted = subscribes.clone();
    tokio::spawn(async move {
        let (mut socket, _) = listener.accept().await.unwrap();
        let mut input = BytesMut::with_capacity(4096);
        loop {
            let packet = loop {
                match Packet::read(&mut input, 1 << 20) {
                    Ok(packet) => break packet,
                    Err(_) if socket.read_buf(&mut input).await.unwrap_or(0) > 0 => {}
                    Err(_) => return,
                }
            };
            let mut out = BytesMut::new();
            match packet {
                Packet::Connect(_) => {
                    Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)).write(&mut out, 1 << 20).unwrap();
                }
                Packet::Subscribe(subscribe) => {
                    let first = counted.fetch_add(1, Ordering::SeqCst) == 0;
                    let code = if first {
                        SubscribeReasonCode::Failure
                    } else {
                        SubscribeReasonCode::Success(rumqttc::QoS::AtLeastOnce)
                    };
                    let codes = vec![code; subscribe.filters.len()];
                    Packet::SubAck(SubAck::new(subscribe.pkid, codes)).write(&mut out, 1 << 20).unwrap();
                    if !first {
                        let topic = subscribe.filters[0].path.clone();
                        Packet::Publish(Publish::new(topic, rumqttc::QoS::AtMostOnce, "heard"))
                            .write(&mut out, 1 << 20)
                            .unwrap();
                    }
                }
                _ => {}
            }
            if !out.is_empty() && socket.write_all(&out).await.is_err() {
                return;
            }
        }
    });
    let shutdown = Shutdown::new();
    let mut spec = DeviceSpec::new(DeviceKind::DoorSensor);
    spec.subscriptions = vec![("home/test/refused".into(), Qos::AtLeastOnce)];
    let mut link = Link::start(&config(&url, "refused-test"), spec, shutdown.clone()).unwrap();
    let heard = async {
        while let Some(inbound) = link.inbox.recv().await {
            if matches!(&inbound, Inbound::Message { payload, .. } if payload == b"heard") {
                return;
            }
        }
    };
    tokio::time::timeout(WITHIN, heard).await.expect("never subscribed after the refusal");
    assert_eq!(subscribes.load(Ordering::SeqCst), 2, "one refused SUBSCRIBE, one accepted");
    stop(link, shutdown).await;
}

/// `mqtt.health_file`: there exactly while connected, for a container healthcheck; each link
/// writes only the file its own configuration names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_health_file_is_there_exactly_while_connected() {
    if testkit::mosquitto_or_skip().is_none() {
        return;
    }
    let mosquitto = Mosquitto::start().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("connected");
    let with_file = MqttConfig { health_file: Some(file.clone()), ..config(&mosquitto.url(), "healthy") };
    let shutdown = Shutdown::new();
    let mut link = Link::start(&with_file, DeviceSpec::new(DeviceKind::DoorSensor), shutdown.clone()).unwrap();
    let other = Shutdown::new();
    let mut without =
        Link::start(&config(&mosquitto.url(), "other"), DeviceSpec::new(DeviceKind::DoorSensor), other.clone())
            .unwrap();
    wait_connected(&mut link).await;
    wait_connected(&mut without).await;
    assert_eq!(std::fs::read_to_string(&file).unwrap(), "connected\n");
    stop(without, other).await;
    assert!(file.exists(), "another link's stop is not this one's");
    drop(mosquitto);
    let gone = async {
        while file.exists() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(WITHIN, gone).await.expect("the file outlived the connection");
    stop(link, shutdown).await;
}

/// A reflex to the front door: the siren's ON.
#[derive(Debug)]
struct SirenOnFrontDoor;

impl device_runtime::link::Reflex for SirenOnFrontDoor {
    fn fire(&self, _: &protocol::Topics, topic: &str, _: &[u8], _: protocol::Timestamp) -> Option<Outgoing> {
        let on = AlarmCommand::siren(Power::On, Some("test".into()));
        (topic == FRONT_DOOR).then(|| Outgoing::new(Topic::AlarmControl, &on))
    }
}

const FRONT_DOOR: &str = "home/security/door/front";
const BACK_DOOR: &str = "home/security/door/back";

/// What a client wrote, as the broker read it.
#[derive(Debug, PartialEq, Eq)]
enum Wrote {
    Publish(String),
    PubAck(u16),
}

/// One connection of a scripted broker: CONNACK, SUBACK, PUBACKs for the client's publishes,
/// then, once `go` says so, the two doors' readings in one write (QoS 1, packet ids 10 and 11);
/// what the client wrote from then on, until it has acknowledged both.
async fn scripted_broker(listener: tokio::net::TcpListener, go: tokio::sync::oneshot::Receiver<()>) -> Vec<Wrote> {
    use rumqttc::{ConnAck, ConnectReturnCode, Packet, PubAck, Publish, QoS, SubAck, SubscribeReasonCode};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let (mut socket, _) = listener.accept().await.unwrap();
    let (mut inbox, mut out) = (bytes::BytesMut::new(), bytes::BytesMut::new());
    let mut wrote = Vec::new();
    let mut sent_doors = false;
    let mut go = Some(go);
    while !wrote.contains(&Wrote::PubAck(11)) {
        let packet = match Packet::read(&mut inbox, 1 << 20) {
            Ok(packet) => packet,
            Err(_) => {
                assert!(socket.read_buf(&mut inbox).await.unwrap() > 0, "the client hung up; it wrote {wrote:?}");
                continue;
            }
        };
        match packet {
            Packet::Connect(_) => {
                Packet::ConnAck(ConnAck::new(ConnectReturnCode::Success, false)).write(&mut out, 1 << 20)
            }
            Packet::Subscribe(s) => {
                let granted = vec![SubscribeReasonCode::Success(QoS::AtLeastOnce); s.filters.len()];
                Packet::SubAck(SubAck::new(s.pkid, granted)).write(&mut out, 1 << 20).unwrap();
                socket.write_all(&out.split()).await.unwrap();
                go.take().expect("one SUBSCRIBE").await.unwrap();
                for (pkid, topic) in [(10, FRONT_DOOR), (11, BACK_DOOR)] {
                    let mut reading = Publish::new(topic, QoS::AtLeastOnce, "OPEN");
                    reading.pkid = pkid;
                    Packet::Publish(reading).write(&mut out, 1 << 20).unwrap();
                }
                sent_doors = true;
                Ok(0)
            }
            Packet::Publish(p) => {
                if sent_doors {
                    wrote.push(Wrote::Publish(p.topic.clone()));
                }
                Packet::PubAck(PubAck::new(p.pkid)).write(&mut out, 1 << 20)
            }
            Packet::PubAck(a) if sent_doors => {
                wrote.push(Wrote::PubAck(a.pkid));
                continue;
            }
            _ => continue,
        }
        .unwrap();
        socket.write_all(&out.split()).await.unwrap();
    }
    wrote
}

/// A daemon with a reflex (the panel): the link writes the reflex to a message before that
/// message's PUBACK (rumqttc would write the PUBACK first, and the broker it wakes would compete
/// with the reflex), acknowledges every message itself, in the order they came, and has no
/// reflex for a message read while an earlier one waits in the inbox.
#[tokio::test]
async fn a_reflex_goes_out_ahead_of_the_puback_of_the_message_it_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("mqtt://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let (go, ready) = tokio::sync::oneshot::channel();
    let broker = tokio::spawn(scripted_broker(listener, ready));
    let shutdown = Shutdown::new();
    let mut spec = DeviceSpec::new(DeviceKind::SecurityController);
    spec.presence = false;
    spec.subscriptions = vec![("home/security/door/+".to_owned(), Qos::AtLeastOnce)];
    spec.reflex = Some(Arc::new(SirenOnFrontDoor));
    let mut link = Link::start(&config(&url, "reflex-test"), spec, shutdown.clone()).unwrap();
    // The inbox empty, as a daemon keeps it: then the link may answer at once.
    wait_connected(&mut link).await;
    go.send(()).unwrap();
    let wrote = tokio::time::timeout(WITHIN, broker).await.expect("the link never acknowledged both doors").unwrap();
    let siren = Wrote::Publish("home/control/alarm".to_owned());
    assert_eq!(wrote, [siren, Wrote::PubAck(10), Wrote::PubAck(11)]);
    assert!(link.reflexed(), "the daemon is told of the reflex");
    drop(link);
}
