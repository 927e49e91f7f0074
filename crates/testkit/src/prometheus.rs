//! [`Prometheus`]: a real Prometheus server (Debian's `prometheus` package, 2.42) for the metrics
//! tests: started on a free port of 127.0.0.1 with a config the test gives (targets scraped every
//! second), its data in a temporary directory; queried back through its HTTP API, as an operator's
//! dashboards and alerts would read it. Killed on drop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The `prometheus` binary, when it is installed.
pub fn prometheus_binary() -> Option<PathBuf> {
    let path = PathBuf::from("/usr/bin/prometheus");
    path.is_file().then_some(path)
}

/// Whether Prometheus is there; under `CI=true` a missing one fails the test instead.
pub fn prometheus_or_skip() -> bool {
    let how = "apt-get install prometheus (scripts/test.sh does)";
    crate::installed_or_skip(prometheus_binary().is_some(), "prometheus", how)
}

/// A Prometheus server scraping the test's targets every second.
pub struct Prometheus {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Prometheus {
    /// Starts Prometheus scraping `/metrics` of each target every second; returns once it answers.
    pub async fn start(targets: &[SocketAddr]) -> anyhow::Result<Prometheus> {
        let binary = prometheus_binary().context("prometheus is not installed")?;
        let dir = tempfile::Builder::new().prefix("mqtt-home-prometheus-").tempdir()?;
        let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             scrape_configs:\n  - job_name: mqtt-home\n    static_configs:\n      - targets: [{}]\n",
            targets.join(", ")
        );
        std::fs::write(dir.path().join("prometheus.yml"), config)?;
        let port = crate::free_port();
        let log = std::fs::File::create(dir.path().join("prometheus.log"))?;
        let child = Command::new(&binary)
            .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
            .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot run {}", binary.display()))?;
        let prometheus = Prometheus { child, port, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        while prometheus.get("/-/ready").await.is_err() {
            if Instant::now() > deadline {
                bail!("Prometheus did not get ready within 30 s: {}", prometheus.log());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Ok(prometheus)
    }

    /// Its log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self._dir.path().join("prometheus.log")).unwrap_or_default()
    }

    /// An instant query (`/api/v1/query`): each series' labels and value.
    pub async fn query(&self, expr: &str) -> anyhow::Result<Vec<(Value, f64)>> {
        let body = self.get(&format!("/api/v1/query?query={}", encode(expr))).await?;
        let answer: Value = serde_json::from_str(&body).with_context(|| format!("not JSON: {body}"))?;
        if answer["status"] != "success" {
            bail!("the query {expr} failed: {answer}");
        }
        let Some(result) = answer["data"]["result"].as_array() else { bail!("no result in {answer}") };
        Ok(result
            .iter()
            .filter_map(|s| Some((s["metric"].clone(), s["value"][1].as_str()?.parse::<f64>().ok()?)))
            .collect())
    }

    /// Waits until the query's first series has a value that satisfies `pred`; returns it.
    pub async fn wait_for(&self, expr: &str, within: Duration, pred: impl Fn(f64) -> bool) -> anyhow::Result<f64> {
        let deadline = Instant::now() + within;
        let mut last = Vec::new();
        loop {
            last = self.query(expr).await.unwrap_or(last);
            if let Some((_, v)) = last.first()
                && pred(*v)
            {
                return Ok(*v);
            }
            if Instant::now() > deadline {
                bail!("Prometheus: `{expr}` did not come to the value wanted within {within:?}; it is {last:?}");
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// One GET over HTTP/1.0; the body of a 2xx answer.
    async fn get(&self, path: &str) -> anyhow::Result<String> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await?;
        stream.write_all(format!("GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n").as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        let (head, body) = answer.split_once("\r\n\r\n").context("no HTTP head")?;
        if !head.starts_with("HTTP/1.0 2") && !head.starts_with("HTTP/1.1 2") {
            bail!("GET {path}: {head}");
        }
        Ok(body.to_owned())
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Percent-encodes a query parameter.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}
