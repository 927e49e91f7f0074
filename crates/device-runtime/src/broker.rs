//! The broker's address, parsed once: `mqtt://host:port` or `mqtts://host:port`, or several of
//! them separated by commas (the nodes of a cluster, see [`Brokers`]). A config file, a flag and
//! the environment all say it as text; everything past the config sees [`Brokers`] of [`BrokerUrl`]s.

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

/// `url` as it may be shown: credentials written into it (`mqtt://user:secret@host`, which is
/// refused) are replaced by `…`, so an error message never carries a password to a log.
fn redacted(url: &str) -> String {
    match (url.split_once("://"), url.rfind('@')) {
        (Some((scheme, rest)), Some(_)) => {
            let after = rest.rsplit_once('@').map_or(rest, |(_, host)| host);
            format!("{scheme}://…@{after}")
        }
        (None, Some(at)) => format!("…{}", &url[at..]),
        _ => url.to_owned(),
    }
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
        let bad = |why: &str| BadBrokerUrl { url: redacted(url), why: why.to_owned() };
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

/// Where a daemon connects: one broker, or several as `mqtt://a:1883,mqtt://b:1883` (the nodes of
/// a clustered engine). The link connects to the first and, when it loses one, tries the next.
///
/// An unusable entry in a list that has usable ones is set aside, not fatal: one typo must not keep
/// a home off its other brokers. The link names each one set aside in the log when it starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brokers {
    /// Never empty.
    urls: Vec<BrokerUrl>,
    set_aside: Vec<BadBrokerUrl>,
}

impl Brokers {
    pub fn parse(text: &str) -> Result<Brokers, BadBrokerUrl> {
        let (mut urls, mut set_aside) = (Vec::new(), Vec::new());
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match BrokerUrl::parse(part) {
                Ok(url) => urls.push(url),
                Err(bad) => set_aside.push(bad),
            }
        }
        match set_aside.len() {
            _ if !urls.is_empty() => Ok(Brokers { urls, set_aside }),
            0 => Err(BadBrokerUrl { url: text.to_owned(), why: "no broker URL in it".to_owned() }),
            1 => Err(set_aside.remove(0)),
            // Shown without any credentials written into the URLs, as each entry's own error is.
            n => Err(BadBrokerUrl {
                url: text.split(',').map(|part| redacted(part.trim())).collect::<Vec<_>>().join(","),
                why: format!("none of its {n} URLs is usable (the first: {})", set_aside[0].why),
            }),
        }
    }

    /// The broker a daemon tries first.
    pub fn first(&self) -> &BrokerUrl {
        &self.urls[0]
    }

    /// Every usable broker, in the order they are tried.
    pub fn urls(&self) -> &[BrokerUrl] {
        &self.urls
    }

    /// The entries that could not be used.
    pub fn set_aside(&self) -> &[BadBrokerUrl] {
        &self.set_aside
    }
}

impl From<BrokerUrl> for Brokers {
    fn from(url: BrokerUrl) -> Brokers {
        Brokers { urls: vec![url], set_aside: Vec::new() }
    }
}

impl fmt::Display for Brokers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, url) in self.urls.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{url}")?;
        }
        Ok(())
    }
}

impl FromStr for Brokers {
    type Err = BadBrokerUrl;

    fn from_str(text: &str) -> Result<Brokers, BadBrokerUrl> {
        Brokers::parse(text)
    }
}

impl Serialize for Brokers {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Brokers {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Brokers::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_broker_list_sets_bad_entries_aside_and_keeps_the_rest() {
        let brokers = Brokers::parse("mqtt://a:1884, mqtt://b:1885,,mqtt://c").unwrap();
        assert_eq!(brokers.to_string(), "mqtt://a:1884,mqtt://b:1885,mqtt://c:1883");
        assert!(brokers.set_aside().is_empty());
        assert_eq!(brokers.first().host, "a");

        let one_bad = Brokers::parse("mqtt://a:1884,http://b:1885,mqtt://c:1886").unwrap();
        assert_eq!(one_bad.urls().len(), 2);
        assert_eq!(one_bad.set_aside().len(), 1);
        let why = one_bad.set_aside()[0].to_string();
        assert!(why.contains("`http://b:1885`") && why.contains("unknown scheme"), "{why}");

        let only = Brokers::parse("mqtt://h:x").unwrap_err().to_string();
        assert!(only.contains("`mqtt://h:x`") && only.contains("port"), "{only}");
        let secret = Brokers::parse("mqtt://user:hunter2@a:1883,mqtt://b").unwrap();
        let shown = secret.set_aside()[0].to_string();
        assert!(!shown.contains("hunter2") && shown.contains("`mqtt://…@a:1883`"), "{shown}");
        let all = Brokers::parse("http://a,ftp://b").unwrap_err().to_string();
        assert!(all.contains("none of its 2 URLs"), "{all}");
        assert!(Brokers::parse(" , ").unwrap_err().to_string().contains("no broker URL"));
    }

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
