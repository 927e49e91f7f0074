//! The link against real sockets: how it behaves when the broker is not there, refuses it, or is
//! handed a payload over the limit. Counting connection attempts is the point of these tests:
//! rumqttc alone retries in a tight loop (tens of thousands of attempts in seconds).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use device_runtime::{DeviceSpec, Inbound, Link, LinkError, MqttConfig, Secret, Shutdown};
use protocol::{DeviceKind, Qos};
use testkit::{Mosquitto, Probe, WITHIN};

fn config(url: &str, id: &str) -> MqttConfig {
    MqttConfig { broker: url.to_owned(), ..MqttConfig::with_id(id) }
}

async fn wait_connected(link: &mut Link) {
    let connected = async {
        while let Some(inbound) = link.inbox.recv().await {
            if matches!(inbound, Inbound::Connected { .. }) {
                return;
            }
        }
    };
    tokio::time::timeout(WITHIN, connected).await.expect("the link did not connect");
}

async fn stop(link: Link, shutdown: Shutdown) {
    shutdown.trigger();
    tokio::time::timeout(WITHIN, link.finish()).await.expect("the link did not stop");
}

/// A "broker" that accepts and hangs up at once: every attempt fails after the TCP handshake.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_broker_is_retried_with_backoff_not_in_a_loop() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let attempts = Arc::new(AtomicUsize::new(0));
    let counter = attempts.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            counter.fetch_add(1, Ordering::SeqCst);
            drop(socket);
        }
    });
    let shutdown = Shutdown::new();
    let url = format!("mqtt://127.0.0.1:{port}");
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
