//! The whole home on a three-node NATS MQTT cluster (testkit's `NatsCluster`), changed only by its
//! broker list: the node every daemon is on (the first of the list) is killed while the panel is
//! armed, a window opens during the fail-over, and the alarm still fires. Readings sent at QoS 1
//! through the kill are counted by a consumer with the panel's link settings (persistent session,
//! QoS 1, the same list, on the killed node): each one arrives.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use device_runtime::{Brokers, CommonArgs, DeviceSpec, Inbound, Link, MqttConfig, Shutdown};
use mqtt_home::config_source::ConfigSource;
use mqtt_home::home::{Connection, Daemons, HomeConfig};
use protocol::{DeviceKind, PanelStatus, Payload, Qos, SensorReading, SensorState, Timestamp};
use testkit::Probe;

/// What a fail-over may take here: NATS elects new stream leaders (measured 4–10 s), then the
/// link's backoff and CONNECT.
const FAIL_OVER: Duration = Duration::from_secs(45);

fn link_on(brokers: &Brokers, id: &str, subscriptions: &[&str]) -> (Link, Shutdown) {
    let config = MqttConfig { broker: brokers.clone(), ..MqttConfig::with_id(id) };
    let mut spec = DeviceSpec::new(DeviceKind::DoorSensor);
    spec.persistent_session = true;
    spec.subscriptions = subscriptions.iter().map(|f| ((*f).to_owned(), Qos::AtLeastOnce)).collect();
    let shutdown = Shutdown::new();
    let link = Link::start(&config, spec, shutdown.clone()).unwrap();
    (link, shutdown)
}

/// A CLOSED reading whose `ts` numbers it, at QoS 1, retained, as a sensor sends it.
async fn send(window: &Link, n: u64) -> u64 {
    let reading = SensorReading { state: SensorState::Closed, device_id: "counted-window".into(), ts: Timestamp(n) };
    let topic = "home/security/window/counted-window";
    window.publisher.send_bytes(topic, reading.encode(), Qos::AtLeastOnce, true).await.unwrap();
    n
}

fn status(want: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == want)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_home_rides_out_the_loss_of_its_cluster_node_mid_intrusion() {
    let Some(mut cluster) = testkit::nats_or_skip() else { return };
    let brokers: Brokers = cluster.urls().join(",").parse().unwrap();

    // The observer is on the third node, which stays up. It listens before the home starts: on
    // NATS a retained message published a moment before a subscription may not be delivered to
    // it (each node learns retained messages from a stream, asynchronously), so the home's
    // `online`s are taken live.
    let mut probe = Probe::connect(&cluster.url(2), "probe-cluster").await.unwrap();
    for filter in ["home/security/status", "home/security/alarm", "home/devices/+/availability"] {
        probe.subscribe(filter).await.unwrap();
    }
    // The shipped home, quiet (as the scenarios run it), its panel's state in a temp dir.
    let source = ConfigSource::BuiltIn;
    let mut home = HomeConfig::load(&source).unwrap();
    home.quiet();
    let temp = tempfile::tempdir().unwrap();
    let mut connection = Connection::new(&brokers, CommonArgs::default(), source, &home);
    let panel = connection.overrides.entry("security-controller".to_owned()).or_default();
    panel.insert("state_file".into(), temp.path().join("panel.json").display().to_string().into());
    let shutdown = Shutdown::new();
    let daemons = Daemons::start(&home, &connection, &shutdown).unwrap();
    for id in &daemons.device_ids {
        let topic = format!("home/devices/{id}/availability");
        if let Err(e) = probe.expect(&topic, |p| p == b"online", Duration::from_secs(30)).await {
            panic!("{id} did not come online on the cluster: {e:#}");
        }
    }
    let running = tokio::spawn(daemons.wait());

    // Readings: a window that keeps reporting CLOSED (no alarm), counted by a consumer.
    let (mut counter, counter_stop) = link_on(&brokers, "reading-counter", &["home/security/window/counted-window"]);
    assert!(counter.connected(FAIL_OVER).await, "the counter never connected");
    let (mut window, window_stop) = link_on(&brokers, "counted-window", &[]);
    assert!(window.connected(FAIL_OVER).await, "the window never connected");
    let survivors: Brokers = format!("{},{}", cluster.url(1), cluster.url(2)).parse().unwrap();
    let (mut opener, opener_stop) = link_on(&survivors, "window-opener", &[]);
    assert!(opener.connected(FAIL_OVER).await, "the opener never connected");

    probe.publish("home/security/window/kitchen-window", r#"{"state":"CLOSED"}"#, true).await.unwrap();
    probe.publish("home/security/panel/set", r#"{"action":"ARM_AWAY"}"#, false).await.unwrap();
    // The demo's exit delay is 5 s.
    probe.expect("home/security/status", status("armed_away"), Duration::from_secs(20)).await.unwrap();

    let mut sent = HashSet::new();
    let mut n = 1_000_000;
    for _ in 0..20 {
        n += 1;
        sent.insert(send(&window, n).await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // The node the home is on dies; the kitchen window opens while the home moves.
    cluster.kill(0);
    let killed = Instant::now();
    let trigger = async {
        // The kitchen window's sensor, on a node that stays up (its list starts there), as a
        // daemon sends: through the link, which sends again what a stalled node never acknowledged.
        let reading =
            SensorReading { state: SensorState::Open, device_id: "kitchen-window".into(), ts: Timestamp::now() };
        let topic = "home/security/window/kitchen-window";
        opener.publisher.send_bytes(topic, reading.encode(), Qos::AtLeastOnce, true).await.unwrap();
    };
    let readings = async {
        for _ in 0..60 {
            n += 1;
            sent.insert(send(&window, n).await);
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    };
    tokio::join!(trigger, readings);
    probe.expect("home/security/status", status("triggered"), FAIL_OVER).await.unwrap();
    let triggered_after = killed.elapsed();
    probe.expect("home/security/alarm", |p| String::from_utf8_lossy(p).contains("\"ON\""), FAIL_OVER).await.unwrap();

    // Every reading sent reaches the consumer that was on the killed node.
    let mut seen = HashSet::new();
    let mut deliveries = 0;
    let all = async {
        while let Some(inbound) = counter.inbox.recv().await {
            if let Inbound::Message { payload, .. } = inbound
                && let Ok(reading) = SensorReading::decode(&payload)
            {
                deliveries += 1;
                seen.insert(reading.ts.0);
                if sent.is_subset(&seen) {
                    return;
                }
            }
        }
    };
    let complete = tokio::time::timeout(FAIL_OVER, all).await.is_ok();
    println!(
        "cluster fail-over: node 1 killed while armed; triggered {:.1} s later; readings sent {}, seen by the \
         consumer {} ({} deliveries, {} lost)",
        triggered_after.as_secs_f64(),
        sent.len(),
        seen.intersection(&sent).count(),
        deliveries,
        sent.difference(&seen).count()
    );
    assert!(complete, "readings lost in the fail-over: {:?}", sent.difference(&seen).collect::<Vec<_>>());

    for stop in [window_stop, counter_stop, opener_stop] {
        stop.trigger();
    }
    for link in [window, counter, opener] {
        link.finish().await;
    }
    shutdown.trigger();
    tokio::time::timeout(Duration::from_secs(30), running).await.expect("the home did not stop").unwrap();
}
