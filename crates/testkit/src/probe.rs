//! A test client that waits for expectations with deadlines, never sleep-and-hope.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context, bail};
use rumqttc::{AsyncClient, ConnectionError, Event, MqttOptions, NetworkOptions, Packet, QoS};
use tokio::sync::{mpsc, watch};

type Seen = Arc<Mutex<HashMap<String, Vec<Vec<u8>>>>>;

/// A client for tests: clean session, QoS 1, one task owning the event loop.
pub struct Probe {
    client: AsyncClient,
    seen: Seen,
    /// Bumped on every message, so `expect` can wait without polling.
    arrivals: watch::Receiver<u64>,
    acks: mpsc::UnboundedReceiver<Ack>,
    task: tokio::task::JoinHandle<()>,
}

enum Ack {
    Sub,
    Pub,
}

impl Probe {
    /// Connects anonymously and waits for the broker's ConnAck.
    pub async fn connect(url: &str, client_id: &str) -> anyhow::Result<Probe> {
        Probe::connect_as(url, client_id, None).await
    }

    /// Connects with `credentials` (user, password); a refused connection is an error at once.
    pub async fn connect_as(url: &str, client_id: &str, credentials: Option<(&str, &str)>) -> anyhow::Result<Probe> {
        // The one parser of broker URLs, as every daemon reads them.
        let broker = device_runtime::BrokerUrl::parse(url)?;
        anyhow::ensure!(!broker.tls, "the probe speaks plain MQTT: {url}");
        let mut options = MqttOptions::new(client_id, broker.host, broker.port);
        options.set_keep_alive(Duration::from_secs(5)).set_max_packet_size(64 << 20, 64 << 20);
        if let Some((user, password)) = credentials {
            options.set_credentials(user, password);
        }
        let (client, mut eventloop) = AsyncClient::new(options, 100);
        let mut network = NetworkOptions::new();
        network.set_tcp_nodelay(true);
        eventloop.set_network_options(network);
        let seen: Seen = Arc::default();
        let (arrived, arrivals) = watch::channel(0u64);
        let (ack_tx, acks) = mpsc::unbounded_channel();
        let (connected_tx, mut connected) = mpsc::unbounded_channel();
        let task_seen = seen.clone();
        let task = tokio::spawn(async move {
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        let _ = connected_tx.send(Ok(()));
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        task_seen.lock().unwrap().entry(p.topic.clone()).or_default().push(p.payload.to_vec());
                        arrived.send_modify(|n| *n += 1);
                    }
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        let _ = ack_tx.send(Ack::Sub);
                    }
                    Ok(Event::Incoming(Packet::PubAck(_))) => {
                        let _ = ack_tx.send(Ack::Pub);
                    }
                    Ok(_) => {}
                    Err(ConnectionError::ConnectionRefused(code)) => {
                        let _ = connected_tx.send(Err(format!("connection refused: {code:?}")));
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        let outcome = tokio::time::timeout(Duration::from_secs(10), connected.recv())
            .await
            .with_context(|| format!("probe could not connect to {url}"))?;
        if let Some(Err(refused)) = outcome {
            task.abort();
            bail!("{url}: {refused}");
        }
        Ok(Probe { client, seen, arrivals, acks, task })
    }

    /// Subscribes at QoS 1 and waits for the SubAck.
    pub async fn subscribe(&mut self, filter: &str) -> anyhow::Result<()> {
        self.client.subscribe(filter, QoS::AtLeastOnce).await?;
        self.wait_ack(|a| matches!(a, Ack::Sub)).await.with_context(|| format!("no SubAck for {filter}"))
    }

    /// Publishes at QoS 1 and waits for the PubAck.
    pub async fn publish(&mut self, topic: &str, payload: impl Into<Vec<u8>>, retain: bool) -> anyhow::Result<()> {
        self.client.publish(topic, QoS::AtLeastOnce, retain, payload.into()).await?;
        self.wait_ack(|a| matches!(a, Ack::Pub)).await.with_context(|| format!("no PubAck on {topic}"))
    }

    /// Publishes every message at QoS 1 back to back (each written before the first is
    /// acknowledged), then waits for all their PubAcks: messages that reach a subscriber together.
    pub async fn publish_all(&mut self, messages: &[(&str, Vec<u8>)], retain: bool) -> anyhow::Result<()> {
        for (topic, payload) in messages {
            self.client.publish(*topic, QoS::AtLeastOnce, retain, payload.clone()).await?;
        }
        for (topic, _) in messages {
            self.wait_ack(|a| matches!(a, Ack::Pub)).await.with_context(|| format!("no PubAck on {topic}"))?;
        }
        Ok(())
    }

    async fn wait_ack(&mut self, want: impl Fn(&Ack) -> bool) -> anyhow::Result<()> {
        let wait = async {
            while let Some(ack) = self.acks.recv().await {
                if want(&ack) {
                    return Ok(());
                }
            }
            bail!("probe connection closed")
        };
        tokio::time::timeout(Duration::from_secs(10), wait).await?
    }

    /// The first message on exactly `topic` (since connecting, retained ones included) that matches
    /// `pred`, waiting up to `timeout`. The error lists what was seen on that topic.
    pub async fn expect(
        &mut self,
        topic: &str,
        pred: impl Fn(&[u8]) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Vec<u8>> {
        self.expect_after(0, topic, pred, timeout).await
    }

    /// Asserts that no message on `topic` matching `pred` arrives within `within`. This is the one
    /// place where a test waits a fixed time: proving that something does *not* happen.
    pub async fn expect_none(
        &mut self,
        topic: &str,
        pred: impl Fn(&[u8]) -> bool,
        within: Duration,
    ) -> anyhow::Result<()> {
        let before = self.seen(topic).len();
        tokio::time::sleep(within).await;
        let after = self.seen(topic);
        if let Some(bad) = after[before..].iter().find(|p| pred(p)) {
            bail!("unexpected message on {topic}: {}", String::from_utf8_lossy(bad));
        }
        Ok(())
    }

    /// Everything received on `topic` so far.
    pub fn seen(&self, topic: &str) -> Vec<Vec<u8>> {
        self.seen.lock().unwrap().get(topic).cloned().unwrap_or_default()
    }

    /// Every topic something arrived on so far.
    pub fn topics(&self) -> Vec<String> {
        self.seen.lock().unwrap().keys().cloned().collect()
    }

    /// How many messages arrived on `topic` so far (to look only at what comes after a point).
    pub fn count(&self, topic: &str) -> usize {
        self.seen.lock().unwrap().get(topic).map_or(0, Vec::len)
    }

    /// The first message on `topic` matching `pred` among those after the first `skip`.
    pub async fn expect_after(
        &mut self,
        skip: usize,
        topic: &str,
        pred: impl Fn(&[u8]) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Vec<u8>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = self.seen(topic).into_iter().skip(skip).find(|p| pred(p)) {
                return Ok(found);
            }
            if tokio::time::timeout_at(deadline, self.arrivals.changed()).await.is_err() {
                let seen: Vec<String> = self
                    .seen(topic)
                    .iter()
                    .skip(skip)
                    .map(|p| String::from_utf8_lossy(p).chars().take(200).collect())
                    .collect();
                bail!(
                    "no matching message on {topic} within {timeout:?}; seen there (after the first {skip}): {seen:#?}"
                );
            }
        }
    }
}

impl Drop for Probe {
    fn drop(&mut self) {
        self.task.abort();
    }
}
