//! The broker's address, parsed once: `mqtt://host:port` or `mqtts://host:port`. A config file,
//! a flag and the environment all say it as text; everything past the config sees a [`BrokerUrl`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// A broker URL that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("broker URL `{url}` is not usable: {why}")]
pub struct BadBrokerUrl {
    pub url: String,
    pub why: String,
}

/// A parsed `mqtt://` or `mqtts://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

impl BrokerUrl {
    pub fn parse(url: &str) -> Result<BrokerUrl, BadBrokerUrl> {
        let bad = |why: &str| BadBrokerUrl { url: url.to_owned(), why: why.to_owned() };
        let (scheme, rest) =
            url.split_once("://").ok_or_else(|| bad("expected mqtt://host:port or mqtts://host:port"))?;
        let tls = match scheme {
            "mqtt" | "tcp" => false,
            "mqtts" | "ssl" => true,
            other => return Err(bad(&format!("unknown scheme `{other}`; use mqtt:// or mqtts://"))),
        };
        let rest = rest.trim_end_matches('/');
        if rest.contains('/') || rest.contains('@') || rest.contains('?') {
            return Err(bad("only host and port are allowed; give credentials with --username/--password"));
        }
        let default_port = if tls { 8883 } else { 1883 };
        let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed `[` in IPv6 address"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| bad("port is not a number 1-65535"))?,
                None if after.is_empty() => default_port,
                None => return Err(bad("expected `:port` after the IPv6 address")),
            };
            (host.to_owned(), port)
        } else {
            match rest.rsplit_once(':') {
                Some((host, port)) => (host.to_owned(), port.parse().map_err(|_| bad("port is not a number 1-65535"))?),
                None => (rest.to_owned(), default_port),
            }
        };
        if host.is_empty() {
            return Err(bad("host is empty"));
        }
        if port == 0 {
            return Err(bad("port 0 is not a broker port"));
        }
        Ok(BrokerUrl { tls, host, port })
    }
}

impl fmt::Display for BrokerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.tls { "mqtts" } else { "mqtt" };
        if self.host.contains(':') {
            write!(f, "{scheme}://[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{scheme}://{}:{}", self.host, self.port)
        }
    }
}

impl BrokerUrl {
    /// `mqtt://127.0.0.1:1883`, where a home's broker is unless told otherwise.
    pub fn local() -> BrokerUrl {
        BrokerUrl { tls: false, host: "127.0.0.1".to_owned(), port: 1883 }
    }
}

impl FromStr for BrokerUrl {
    type Err = BadBrokerUrl;

    fn from_str(url: &str) -> Result<BrokerUrl, BadBrokerUrl> {
        BrokerUrl::parse(url)
    }
}

impl Serialize for BrokerUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for BrokerUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        BrokerUrl::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broker_urls_parse() {
        let ok = [
            ("mqtt://127.0.0.1:1883", false, "127.0.0.1", 1883),
            ("mqtt://broker", false, "broker", 1883),
            ("mqtts://broker.lan", true, "broker.lan", 8883),
            ("tcp://h:1884/", false, "h", 1884),
            ("mqtt://[::1]:1999", false, "::1", 1999),
            ("mqtts://[::1]", true, "::1", 8883),
        ];
        for (url, tls, host, port) in ok {
            assert_eq!(BrokerUrl::parse(url).unwrap(), BrokerUrl { tls, host: host.into(), port }, "{url}");
        }
        for bad in
            ["127.0.0.1:1883", "http://x", "mqtt://", "mqtt://h:x", "mqtt://h:0", "mqtt://u:p@h", "mqtt://h/path"]
        {
            assert!(BrokerUrl::parse(bad).is_err(), "{bad}");
        }
        assert_eq!(BrokerUrl::parse("mqtt://[::1]:1").unwrap().to_string(), "mqtt://[::1]:1");
    }

    #[test]
    fn a_config_reads_and_prints_the_url_as_text() {
        #[derive(Debug, PartialEq, Serialize, Deserialize)]
        struct Mqtt {
            broker: BrokerUrl,
        }
        let mqtt: Mqtt = toml::from_str("broker = \"mqtts://broker.lan\"\n").unwrap();
        assert_eq!(mqtt.broker, BrokerUrl { tls: true, host: "broker.lan".into(), port: 8883 });
        assert_eq!(toml::to_string(&mqtt).unwrap(), "broker = \"mqtts://broker.lan:8883\"\n");
        let err = toml::from_str::<Mqtt>("broker = \"http://x\"\n").unwrap_err().to_string();
        assert!(err.contains("broker") && err.contains("mqtt://"), "{err}");
    }
}
