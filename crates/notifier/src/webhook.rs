//! Webhooks: an HTTP(S) POST per notification, in the JSON, ntfy or Gotify form.
//!
//! HTTPS uses the same rustls (ring) as the MQTT links and the system's CA roots. A send that does
//! not answer within [`SEND_TIMEOUT`], or answers other than 2xx, is a failure the notifier
//! retries. Errors and logs name the host only: the path and query may hold a token.

use std::time::Duration;

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use crate::{Notification, Preset};

/// The longest a webhook may take to answer.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(5);

/// A webhook URL, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub url: String,
    /// What logs show: scheme and host.
    pub shown: String,
}

impl Target {
    pub fn parse(url: &str) -> Result<Target, String> {
        let uri: hyper::Uri = url.parse().map_err(|e| format!("`{url}` is not a URL: {e}"))?;
        match (uri.scheme_str(), uri.host()) {
            (Some(scheme @ ("http" | "https")), Some(host)) => {
                Ok(Target { url: url.to_owned(), shown: format!("{scheme}://{host}") })
            }
            _ => Err(format!("the webhook URL must start with http:// or https:// and name a host, not `{url}`")),
        }
    }
}

/// One webhook channel's client.
pub struct Webhook {
    target: Target,
    preset: Preset,
    headers: Vec<(String, String)>,
    client: Client<HttpsConnector<HttpConnector>, Full<Bytes>>,
}

impl Webhook {
    pub fn new(url: &str, preset: Preset, headers: Vec<(String, String)>) -> Result<Webhook, String> {
        let target = Target::parse(url)?;
        let https = hyper_rustls::HttpsConnectorBuilder::new()
            .with_provider_and_native_roots(rustls::crypto::ring::default_provider())
            .map_err(|e| format!("cannot set up TLS: {e}"))?
            .https_or_http()
            .enable_http1()
            .build();
        let client = Client::builder(TokioExecutor::new()).build(https);
        Ok(Webhook { target, preset, headers, client })
    }

    /// The request body and its own headers, per preset.
    pub fn body(&self, n: &Notification) -> (Vec<u8>, Vec<(&'static str, String)>) {
        match self.preset {
            Preset::Json => (n.to_json(), vec![("content-type", "application/json".into())]),
            Preset::Ntfy => (
                n.message.clone().into_bytes(),
                vec![
                    ("title", n.title.clone()),
                    ("priority", n.priority.to_string()),
                    ("tags", if n.priority >= 5 { "rotating_light".into() } else { "house".into() }),
                    ("content-type", "text/plain; charset=utf-8".into()),
                ],
            ),
            Preset::Gotify => (
                // Gotify counts 0-10.
                serde_json::json!({"title": n.title, "message": n.message, "priority": u32::from(n.priority) * 2})
                    .to_string()
                    .into_bytes(),
                vec![("content-type", "application/json".into())],
            ),
        }
    }

    /// POSTs `n`; an error says what went wrong, naming the host only.
    pub async fn send(&self, n: &Notification) -> Result<(), String> {
        let (body, own) = self.body(n);
        let mut request = Request::builder().method(Method::POST).uri(&self.target.url);
        for (name, value) in own {
            request = request.header(name, value);
        }
        for (name, value) in &self.headers {
            request = request.header(name.as_str(), value.as_str());
        }
        let shown = &self.target.shown;
        let request = request.body(Full::new(Bytes::from(body))).map_err(|e| format!("a header is not valid: {e}"))?;
        let answer = tokio::time::timeout(SEND_TIMEOUT, async {
            let response = self.client.request(request).await.map_err(|e| format!("{shown} unreachable: {e}"))?;
            let status = response.status();
            // Read the body so the connection can be reused; its content is not logged.
            let _ = response.into_body().collect().await;
            if status.is_success() { Ok(()) } else { Err(format!("{shown} answered {status}")) }
        })
        .await;
        answer.unwrap_or_else(|_| Err(format!("{shown} did not answer within {} s", SEND_TIMEOUT.as_secs())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{PanelEventKind, Timestamp};

    fn notification() -> Notification {
        Notification {
            event: PanelEventKind::Triggered,
            title: "mqtt-home: Alarm: intrusion".into(),
            message: "window kitchen-window open".into(),
            priority: 5,
            sensors: vec!["kitchen-window".into()],
            ts: Timestamp(0),
        }
    }

    #[test]
    fn urls_are_checked_and_shown_without_their_secrets() {
        let t = Target::parse("https://ntfy.sh/my-secret-topic?auth=abc").unwrap();
        assert_eq!(t.shown, "https://ntfy.sh");
        assert!(Target::parse("ftp://x/y").unwrap_err().contains("http:// or https://"));
        assert!(Target::parse("not a url").is_err());
    }

    #[test]
    fn each_preset_speaks_its_service() {
        let n = notification();
        let ntfy = Webhook::new("https://ntfy.sh/t", Preset::Ntfy, vec![]).unwrap();
        let (body, headers) = ntfy.body(&n);
        assert_eq!(body, b"window kitchen-window open");
        assert!(headers.contains(&("priority", "5".into())) && headers.contains(&("title", n.title.clone())));
        let gotify = Webhook::new("http://gotify.local/message?token=x", Preset::Gotify, vec![]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&gotify.body(&n).0).unwrap();
        assert_eq!(json["priority"], 10);
        let plain = Webhook::new("http://x/hook", Preset::Json, vec![]).unwrap();
        let json: serde_json::Value = serde_json::from_slice(&plain.body(&n).0).unwrap();
        assert_eq!((json["event"].as_str(), json["sensors"][0].as_str()), (Some("triggered"), Some("kitchen-window")));
    }
}
