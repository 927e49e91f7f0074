//! What the dashboard's tests share: a broker, the dashboard as a task, and a small HTTP/1.1
//! client over a plain `TcpStream` (enough for JSON, cookies and an SSE stream; no client crate).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use device_runtime::MqttConfig;
use testkit::{Running, WITHIN};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// Mosquitto where it is installed, else the embedded broker: the tests run either way.
pub enum Broker {
    Mosquitto(testkit::Mosquitto),
    Embedded(embedded_broker::EmbeddedBroker),
}

impl Broker {
    pub fn start() -> Broker {
        match testkit::Mosquitto::start() {
            Ok(m) => Broker::Mosquitto(m),
            Err(_) => {
                eprintln!("mosquitto is not installed: these tests run on the embedded broker");
                Broker::Embedded(testkit::embedded())
            }
        }
    }

    pub fn url(&self) -> String {
        match self {
            Broker::Mosquitto(m) => m.url(),
            Broker::Embedded(b) => b.url(),
        }
    }
}

pub fn mqtt(url: &str, id: &str) -> MqttConfig {
    MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id(id) }
}

/// A dashboard config on a free loopback port, with `database` for history.
pub fn config(url: &str, database: PathBuf) -> dashboard::Config {
    let port = testkit::free_port();
    dashboard::Config {
        mqtt: mqtt(url, "dashboard"),
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        database,
        ..dashboard::Config::default()
    }
}

/// Starts the dashboard and waits until it serves and has reached the broker.
pub async fn start(config: dashboard::Config) -> (Running, Http) {
    let http = Http(config.listen);
    let running = Running::spawn(|s| dashboard::run(config, s));
    let deadline = tokio::time::Instant::now() + WITHIN;
    loop {
        if let Ok(r) = http.try_request("GET", "/healthz", &[], None).await
            && r.status == 200
        {
            return (running, http);
        }
        assert!(tokio::time::Instant::now() < deadline, "the dashboard did not become healthy");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// An answer.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_owned())
        })
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

/// The dashboard's address.
#[derive(Debug, Clone, Copy)]
pub struct Http(pub SocketAddr);

impl Http {
    pub async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Response {
        self.try_request("GET", path, headers, None).await.expect("GET failed")
    }

    pub async fn post(&self, path: &str, headers: &[(&str, &str)], body: &str) -> Response {
        self.try_request("POST", path, headers, Some(body)).await.expect("POST failed")
    }

    pub async fn try_request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&str>,
    ) -> std::io::Result<Response> {
        let mut stream = TcpStream::connect(self.0).await?;
        // A `Host` among `headers` replaces the one a browser would send for this address.
        let host = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("host"))
            .map_or(self.0.to_string(), |(_, v)| v.to_string());
        let mut request = format!("{method} {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
        for (k, v) in headers.iter().filter(|(k, _)| !k.eq_ignore_ascii_case("host")) {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        if let Some(body) = body {
            request.push_str(&format!("Content-Type: application/json\r\nContent-Length: {}\r\n", body.len()));
        }
        request.push_str("\r\n");
        request.push_str(body.unwrap_or(""));
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        tokio::time::timeout(WITHIN, stream.read_to_end(&mut raw)).await??;
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
        let chunked = head.to_ascii_lowercase().contains("transfer-encoding: chunked");
        let body = if chunked { dechunk(body) } else { body.to_owned() };
        Ok(Response { status, head: head.to_owned(), body })
    }

    /// Opens the SSE stream.
    pub async fn events(&self, headers: &[(&str, &str)]) -> Sse {
        let mut stream = TcpStream::connect(self.0).await.unwrap();
        let mut request = format!("GET /events HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\n", self.0);
        for (k, v) in headers {
            request.push_str(&format!("{k}: {v}\r\n"));
        }
        request.push_str("\r\n");
        stream.write_all(request.as_bytes()).await.unwrap();
        Sse { stream, seen: String::new() }
    }

    /// The CSRF token the page is served with.
    pub async fn csrf(&self, headers: &[(&str, &str)]) -> String {
        let page = self.get("/", headers).await;
        assert_eq!(page.status, 200, "{page:?}");
        meta_csrf(&page.body)
    }
}

pub fn meta_csrf(html: &str) -> String {
    let after = html.split(r#"name="csrf-token" content=""#).nth(1).expect("the page carries a CSRF token");
    after.split('"').next().unwrap().to_owned()
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, after)) = rest.split_once("\r\n") {
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else { break };
        if n == 0 || after.len() < n {
            break;
        }
        out.push_str(&after[..n]);
        rest = after[n..].trim_start_matches("\r\n");
    }
    out
}

/// An open event stream.
pub struct Sse {
    stream: TcpStream,
    /// Everything read so far (chunk framing included; the tests look for substrings).
    pub seen: String,
}

impl Sse {
    /// Reads until `what` appears after byte `from` of what was read; the whole text so far.
    pub async fn until(&mut self, from: usize, what: &str) -> String {
        let deadline = tokio::time::Instant::now() + WITHIN;
        let mut buf = [0u8; 8192];
        while !self.seen[from.min(self.seen.len())..].contains(what) {
            let n = tokio::time::timeout_at(deadline, self.stream.read(&mut buf))
                .await
                .unwrap_or_else(|_| panic!("`{what}` did not come on the event stream; seen:\n{}", self.seen))
                .unwrap();
            assert!(n > 0, "the event stream closed; seen:\n{}", self.seen);
            self.seen.push_str(&String::from_utf8_lossy(&buf[..n]));
        }
        self.seen.clone()
    }
}
