//! The notifier over a real broker, with a real HTTP receiver started by the test: the panel's
//! `triggered` reaches the webhook and the MQTT channel within a second, a receiver down for 10 s
//! gets the notification once after it returns, one answering 500 gets it on a retry, and a
//! duress never shows on MQTT; email arrives over plain SMTP after the server returns and over
//! STARTTLS (aiosmtpd) with a local CA, refused without it.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use notifier::{ChannelConfig, Config, Destination, Preset};
use protocol::{PanelEvent, PanelEventKind, Payload, Timestamp};
use testkit::{Probe, Received, Running, WITHIN, on_both_brokers, wait_for, webhook_receiver as receiver};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;

fn config(url: &str, channels: Vec<ChannelConfig>) -> Config {
    Config {
        mqtt: device_runtime::MqttConfig {
            broker: url.parse().unwrap(),
            ..device_runtime::MqttConfig::with_id("notifier")
        },
        channels,
        share_group: None,
    }
}

fn webhook(name: &str, url: String, preset: Preset) -> ChannelConfig {
    ChannelConfig {
        name: name.into(),
        to: Destination::Webhook { url, preset, headers: Default::default() },
        events: Vec::new(),
        max_per_minute: 10,
    }
}

fn event(kind: PanelEventKind, message: &str) -> Vec<u8> {
    PanelEvent {
        reason: None,
        cause: None,
        event: kind,
        id: None,
        mode: None,
        user: None,
        sensors: vec!["kitchen-window".into()],
        message: message.into(),
        area: None,
        device_id: "security-controller".into(),
        ts: Timestamp::now(),
    }
    .encode()
}

async fn triggered_reaches_the_webhook_and_mqtt_within_a_second(url: String) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/hooks/alarm", listener.local_addr().unwrap());
    let received = receiver(listener, vec![200]);
    let mqtt = ChannelConfig {
        name: "automations".into(),
        to: Destination::Mqtt { topic: "home/notifications".into() },
        events: Vec::new(),
        max_per_minute: 10,
    };
    let notifier = Running::spawn({
        let config = config(&url, vec![webhook("phone", hook, Preset::Ntfy), mqtt]);
        move |s| notifier::run(config, s)
    });
    let mut probe = Probe::connect(&url, "probe-notifier").await.unwrap();
    probe.subscribe("home/notifications").await.unwrap();
    probe.subscribe("home/devices/notifier/availability").await.unwrap();
    probe.expect("home/devices/notifier/availability", |p| p == b"online", WITHIN).await.unwrap();

    let sent = Instant::now();
    probe
        .publish("home/security/events", event(PanelEventKind::Triggered, "window kitchen-window open"), false)
        .await
        .unwrap();
    let got = wait_for(&received, 1, Duration::from_secs(5)).await;
    let took = sent.elapsed();
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(took < Duration::from_secs(1), "the webhook took {took:?}");
    let (head, body) = &got[0];
    assert!(head.starts_with("POST /hooks/alarm"), "{head}");
    assert!(head.to_ascii_lowercase().contains("title: mqtt-home: alarm: intrusion"), "{head}");
    assert_eq!(body, "window kitchen-window open");
    let on_mqtt = |p: &[u8]| serde_json::from_slice::<serde_json::Value>(p).is_ok_and(|v| v["event"] == "triggered");
    probe.expect("home/notifications", on_mqtt, WITHIN).await.unwrap();

    // Duress: to the phone, never on the house's MQTT; an event nobody asked for: to no one.
    probe.publish("home/security/events", event(PanelEventKind::Duress, "disarmed by alice"), false).await.unwrap();
    probe.publish("home/security/events", event(PanelEventKind::WrongCode, "wrong code"), false).await.unwrap();
    let got = wait_for(&received, 2, WITHIN).await;
    assert!(got[1].0.to_ascii_lowercase().contains("duress"), "{got:?}");
    probe
        .expect_none(
            "home/notifications",
            |p| String::from_utf8_lossy(p).contains("duress"),
            Duration::from_millis(500),
        )
        .await
        .unwrap();
    assert_eq!(received.lock().unwrap().len(), 2, "the wrong code went out");
    notifier.stop().await;
}
on_both_brokers!(webhook_and_mqtt, super::triggered_reaches_the_webhook_and_mqtt_within_a_second);

/// The receiver is down for 10 s when the alarm goes off; it gets the notification once, after it
/// returns. Mosquitto only: one broker is enough for a receiver's outage.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_ten_seconds_gets_it_once_when_it_returns() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    // A port with nothing on it yet.
    let port = testkit::free_port();
    let notifier = Running::spawn({
        let config = config(&url, vec![webhook("phone", format!("http://127.0.0.1:{port}/alarm"), Preset::Json)]);
        move |s| notifier::run(config, s)
    });
    let mut probe = Probe::connect(&url, "probe-notifier-down").await.unwrap();
    probe.subscribe("home/devices/notifier/availability").await.unwrap();
    probe.expect("home/devices/notifier/availability", |p| p == b"online", WITHIN).await.unwrap();
    probe.publish("home/security/events", event(PanelEventKind::Triggered, "door front open"), false).await.unwrap();
    // The receiver's outage: the one fixed wait of this test.
    tokio::time::sleep(Duration::from_secs(10)).await;
    let returned = Instant::now();
    let received = receiver(TcpListener::bind(("127.0.0.1", port)).await.unwrap(), vec![200]);
    let got = wait_for(&received, 1, Duration::from_secs(70)).await;
    assert_eq!(got.len(), 1, "not delivered after the receiver returned");
    println!("delivered {:?} after the receiver returned", returned.elapsed());
    let json: serde_json::Value = serde_json::from_str(&got[0].1).unwrap();
    assert_eq!((json["event"].as_str(), json["message"].as_str()), (Some("triggered"), Some("door front open")));
    // Once: no copy follows.
    assert_eq!(wait_for(&received, 2, Duration::from_secs(3)).await.len(), 1, "delivered twice");
    notifier.stop().await;
}

/// A webhook answering 500 is retried until it answers 200; the message arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_answering_500_is_retried() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/gotify/message", listener.local_addr().unwrap());
    let received = receiver(listener, vec![500, 500, 200]);
    let notifier = Running::spawn({
        let config = config(&url, vec![webhook("gotify", hook, Preset::Gotify)]);
        move |s| notifier::run(config, s)
    });
    let mut probe = Probe::connect(&url, "probe-notifier-500").await.unwrap();
    probe.subscribe("home/devices/notifier/availability").await.unwrap();
    probe.expect("home/devices/notifier/availability", |p| p == b"online", WITHIN).await.unwrap();
    probe
        .publish("home/security/events", event(PanelEventKind::Lockout, "5 wrong codes: locked out"), false)
        .await
        .unwrap();
    // Tries at 0, 1 and 3 s: the third is answered 200.
    let got = wait_for(&received, 3, Duration::from_secs(15)).await;
    assert_eq!(got.len(), 3, "{got:?}");
    assert!(got.iter().all(|(_, body)| body.contains("locked out")));
    assert_eq!(wait_for(&received, 4, Duration::from_secs(3)).await.len(), 3, "sent again after a 200");
    notifier.stop().await;
}

/// A receiver that accepts the connection and never answers (the attack's "one channel that
/// hangs") holds up its own channel, up to its timeout, and no other: the second webhook gets the
/// alarm within a second, then the one after it too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_never_answers_holds_up_no_other_channel() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let silent = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung = format!("http://{}/never", silent.local_addr().unwrap());
    let accepted = Arc::new(Mutex::new(0));
    tokio::spawn({
        let accepted = accepted.clone();
        async move {
            let mut held = Vec::new();
            while let Ok((socket, _)) = silent.accept().await {
                *accepted.lock().unwrap() += 1;
                held.push(socket);
            }
        }
    });
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hook = format!("http://{}/alarm", listener.local_addr().unwrap());
    let received = receiver(listener, vec![200]);
    // The silent one first: one at a time, it went first and everything waited behind it.
    let notifier = Running::spawn({
        let config = config(&url, vec![webhook("silent", hung, Preset::Json), webhook("phone", hook, Preset::Json)]);
        move |s| notifier::run(config, s)
    });
    let mut probe = Probe::connect(&url, "probe-notifier-hung").await.unwrap();
    probe.subscribe("home/devices/notifier/availability").await.unwrap();
    probe.expect("home/devices/notifier/availability", |p| p == b"online", WITHIN).await.unwrap();
    for (n, message) in ["window kitchen-window open", "door back open"].into_iter().enumerate() {
        let sent = Instant::now();
        probe.publish("home/security/events", event(PanelEventKind::Triggered, message), false).await.unwrap();
        let got = wait_for(&received, n + 1, Duration::from_secs(5)).await;
        let took = sent.elapsed();
        assert_eq!(got.len(), n + 1, "{got:?}");
        assert!(got[n].1.contains(message), "{got:?}");
        assert!(took < Duration::from_secs(1), "alarm {} took {took:?} behind the silent receiver", n + 1);
        println!("alarm {} reached the phone in {took:?} while the other receiver hung", n + 1);
    }
    assert_eq!(*accepted.lock().unwrap(), 1, "the silent receiver was asked once (its channel waits for it)");
    notifier.stop().await;
}

/// A minimal SMTP server (no TLS, no AUTH): records each message's DATA.
fn smtp_server(listener: TcpListener) -> Received {
    let received: Received = Arc::default();
    let seen = received.clone();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = tokio::io::BufReader::new(read);
                let _ = write.write_all(b"220 test ESMTP\r\n").await;
                let mut line = String::new();
                loop {
                    line.clear();
                    if tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await.unwrap_or(0) == 0 {
                        return;
                    }
                    let command = line.trim_end().to_ascii_uppercase();
                    let reply: &[u8] = if command.starts_with("EHLO") || command.starts_with("HELO") {
                        b"250-test\r\n250 8BITMIME\r\n"
                    } else if command.starts_with("DATA") {
                        let _ = write.write_all(b"354 go on\r\n").await;
                        let mut data = String::new();
                        loop {
                            line.clear();
                            if tokio::io::AsyncBufReadExt::read_line(&mut lines, &mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            if line == ".\r\n" {
                                break;
                            }
                            data.push_str(&line);
                        }
                        seen.lock().unwrap().push(("DATA".into(), data));
                        b"250 queued\r\n"
                    } else if command.starts_with("QUIT") {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 OK\r\n"
                    };
                    if write.write_all(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    received
}

/// Email over SMTP to a server started by the test, which is down for the first 3 s: the alarm
/// arrives once it is up, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggered_arrives_by_email_after_the_smtp_server_returns() {
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let port = testkit::free_port();
    let email = email_to(port, notifier::email::Security::None, None);
    let channel =
        ChannelConfig { name: "mail".into(), to: Destination::Email(email), events: Vec::new(), max_per_minute: 10 };
    let notifier = Running::spawn({
        let config = config(&url, vec![channel]);
        move |s| notifier::run(config, s)
    });
    let mut probe = Probe::connect(&url, "probe-notifier-email").await.unwrap();
    probe.subscribe("home/devices/notifier/availability").await.unwrap();
    probe.expect("home/devices/notifier/availability", |p| p == b"online", WITHIN).await.unwrap();
    // With an SMTP smuggling attempt in its text: a bare CR before the end-of-data dot.
    let smuggling = "door back open\r.\r\nMAIL FROM:<evil@example.org>\r\n";
    probe.publish("home/security/events", event(PanelEventKind::Triggered, smuggling), false).await.unwrap();
    // The SMTP server is down for a moment: the one fixed wait of this test.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let received = smtp_server(TcpListener::bind(("127.0.0.1", port)).await.unwrap());
    let got = wait_for(&received, 1, Duration::from_secs(30)).await;
    assert_eq!(got.len(), 1, "no email after the server returned");
    let data = &got[0].1;
    assert!(data.contains("Subject: mqtt-home: Alarm: intrusion") && data.contains("door back open"), "{data}");
    // What a relay that ends lines at a bare CR would read as the end of the message is not there:
    // every CR on the wire is a CRLF (the lone dot became a line of its own, dot-stuffed).
    let bare_cr = data.as_bytes().windows(2).any(|w| w[0] == b'\r' && w[1] != b'\n');
    assert!(!bare_cr && !data.ends_with('\r'), "a bare CR reached the relay: {data:?}");
    assert!(data.contains("\r\n..\r\nMAIL FROM:<evil@example.org>"), "{data:?}");
    assert_eq!(wait_for(&received, 2, Duration::from_secs(3)).await.len(), 1, "sent twice");
    notifier.stop().await;
}

/// An email channel to the test's SMTP server on `port`.
fn email_to(
    port: u16,
    security: notifier::email::Security,
    ca_file: Option<std::path::PathBuf>,
) -> notifier::email::EmailConfig {
    notifier::email::EmailConfig {
        host: "127.0.0.1".into(),
        port: Some(port),
        security,
        from: "mqtt-home <home@example.org>".into(),
        to: vec!["me@example.org".into()],
        username: None,
        password_env: None,
        password_file: None,
        ca_file,
    }
}

/// Email over STARTTLS to a real SMTP server (aiosmtpd, which refuses mail before STARTTLS) with
/// a certificate from a local CA: refused while that CA is not trusted, delivered through the
/// running notifier once `ca_file` names it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn triggered_arrives_by_email_over_starttls() {
    let dir = tempfile::tempdir().unwrap();
    let certs = testkit::make_certs(dir.path()).unwrap();
    let Some(smtp) = testkit::smtp_or_skip(&certs.cert, &certs.key) else { return };

    // Without the local CA the certificate is not trusted, and nothing is sent in the clear.
    let n = notifier::Notification {
        event: PanelEventKind::Triggered,
        title: "mqtt-home: Alarm: intrusion".into(),
        message: "window kitchen-window open (perimeter)".into(),
        priority: 5,
        sensors: vec!["kitchen-window".into()],
        ts: Timestamp(1_795_370_645_120),
    };
    let untrusted =
        notifier::email::Email::new(&email_to(smtp.port(), notifier::email::Security::Starttls, None)).unwrap();
    let refused = untrusted.send(&n).await.expect_err("sent to a server whose certificate is not trusted");
    assert!(refused.contains("certificate") || refused.contains("Certificate"), "{refused}");
    assert!(smtp.messages().is_empty(), "a message got through without TLS");

    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    let url = mosquitto.url();
    let email = email_to(smtp.port(), notifier::email::Security::Starttls, Some(certs.ca.clone()));
    let channel =
        ChannelConfig { name: "mail".into(), to: Destination::Email(email), events: Vec::new(), max_per_minute: 10 };
    let notifier = Running::spawn({
        let config = config(&url, vec![channel]);
        move |s| notifier::run(config, s)
    });
    let mut probe = Probe::connect(&url, "probe-notifier-starttls").await.unwrap();
    probe.subscribe("home/devices/notifier/availability").await.unwrap();
    probe.expect("home/devices/notifier/availability", |p| p == b"online", WITHIN).await.unwrap();
    probe.publish("home/security/events", event(PanelEventKind::Triggered, "door back open"), false).await.unwrap();
    let got = smtp.wait_for(1, Duration::from_secs(20)).await;
    assert_eq!(got.len(), 1, "no email over STARTTLS");
    assert!(got[0].contains("Subject: mqtt-home: Alarm: intrusion") && got[0].contains("door back open"), "{}", got[0]);
    assert_eq!(smtp.wait_for(2, Duration::from_secs(2)).await.len(), 1, "sent twice");
    notifier.stop().await;
}
