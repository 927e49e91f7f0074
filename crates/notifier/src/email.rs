//! Email over SMTP: STARTTLS on the submission port by default (lettre, on the same rustls and
//! ring provider as the MQTT links, with the system's CA roots and, for a relay with a private CA,
//! `ca_file`), implicit TLS, or plain for a relay on the same machine. The password is read from an environment variable or a file at start,
//! never from the config file itself, and never logged.

use std::time::Duration;

use lettre::message::Mailbox;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParameters};
use lettre::transport::smtp::{SUBMISSION_PORT, SUBMISSIONS_PORT};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::{Deserialize, Serialize};

use crate::Notification;

/// The longest a send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(15);

/// How the connection to the SMTP server is protected.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Security {
    /// Plain, then STARTTLS (port 587): refused if the server does not offer it.
    #[default]
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
    /// No encryption: only for a relay on the same machine or network.
    None,
}

/// The `[[channel]] kind = "email"` keys.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmailConfig {
    pub host: String,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub security: Security,
    pub from: String,
    pub to: Vec<String>,
    #[serde(default)]
    pub username: Option<String>,
    /// The environment variable holding the password.
    #[serde(default)]
    pub password_env: Option<String>,
    /// Or a file holding it (its first line).
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// A CA certificate (PEM) trusted beside the system's roots: a relay with a private CA.
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
}

impl EmailConfig {
    pub fn validate(&self) -> Result<(), String> {
        if self.host.is_empty() {
            return Err("email needs `host`, the SMTP server".into());
        }
        self.from.parse::<Mailbox>().map_err(|e| format!("from `{}` is not an address: {e}", self.from))?;
        if self.to.is_empty() {
            return Err("email needs at least one address in `to`".into());
        }
        for to in &self.to {
            to.parse::<Mailbox>().map_err(|e| format!("to `{to}` is not an address: {e}"))?;
        }
        if self.password_env.is_some() && self.password_file.is_some() {
            return Err("give password_env or password_file, not both".into());
        }
        if (self.password_env.is_some() || self.password_file.is_some()) && self.username.is_none() {
            return Err("a password needs a username".into());
        }
        if self.ca_file.is_some() && self.security == Security::None {
            return Err("ca_file needs security = \"starttls\" or \"tls\"".into());
        }
        Ok(())
    }

    /// The TLS settings with `ca_file` trusted, if one is given.
    fn tls_with_ca(&self) -> Result<Option<TlsParameters>, String> {
        let Some(path) = &self.ca_file else { return Ok(None) };
        let pem = std::fs::read(path).map_err(|e| format!("cannot read ca_file {}: {e}", path.display()))?;
        let ca = Certificate::from_pem(&pem).map_err(|e| format!("ca_file {}: {e}", path.display()))?;
        TlsParameters::builder(self.host.clone())
            .add_root_certificate(ca)
            .build_rustls()
            .map(Some)
            .map_err(|e| format!("ca_file {}: {e}", path.display()))
    }

    fn password(&self) -> Result<Option<String>, String> {
        if let Some(var) = &self.password_env {
            return std::env::var(var).map(Some).map_err(|_| format!("the environment variable {var} is not set"));
        }
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            return Ok(Some(text.lines().next().unwrap_or_default().to_owned()));
        }
        Ok(None)
    }
}

/// One email channel's transport and addresses.
pub struct Email {
    transport: AsyncSmtpTransport<Tokio1Executor>,
    from: Mailbox,
    to: Vec<Mailbox>,
    shown: String,
}

impl Email {
    pub fn new(config: &EmailConfig) -> Result<Email, String> {
        config.validate()?;
        let host = config.host.as_str();
        let mut builder = match (config.security, config.tls_with_ca()?) {
            (Security::Starttls, Some(tls)) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(SUBMISSION_PORT)
                .tls(Tls::Required(tls)),
            (Security::Tls, Some(tls)) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host)
                .port(SUBMISSIONS_PORT)
                .tls(Tls::Wrapper(tls)),
            (Security::Starttls, None) => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(host)
                .map_err(|e| format!("cannot set up SMTP to {host}: {e}"))?,
            (Security::Tls, None) => AsyncSmtpTransport::<Tokio1Executor>::relay(host)
                .map_err(|e| format!("cannot set up SMTP to {host}: {e}"))?,
            (Security::None, _) => AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host),
        };
        if let Some(port) = config.port {
            builder = builder.port(port);
        }
        if let (Some(user), Some(password)) = (&config.username, config.password()?) {
            builder = builder.credentials(Credentials::new(user.clone(), password));
        }
        let transport = builder.timeout(Some(SEND_TIMEOUT)).build();
        let from = config.from.parse().map_err(|e| format!("from: {e}"))?;
        let to =
            config.to.iter().map(|t| t.parse()).collect::<Result<Vec<Mailbox>, _>>().map_err(|e| format!("to: {e}"))?;
        let shown = format!("smtp://{host}:{}", config.port.map_or_else(|| "default".into(), |p| p.to_string()));
        Ok(Email { transport, from, to, shown })
    }

    /// The message for `n`.
    pub fn message(&self, n: &Notification) -> Result<Message, String> {
        let mut builder = Message::builder().from(self.from.clone()).subject(one_line(&n.title));
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        let sensors = if n.sensors.is_empty() {
            String::new()
        } else {
            format!("\nSensors: {}", one_line(&n.sensors.join(", ")))
        };
        builder
            .body(format!("{}\n\nAt {} (UTC).{sensors}\n", lines(&n.message), n.ts))
            .map_err(|e| format!("cannot build the message: {e}"))
    }

    pub async fn send(&self, n: &Notification) -> Result<(), String> {
        let message = self.message(n)?;
        let shown = &self.shown;
        match tokio::time::timeout(SEND_TIMEOUT, self.transport.send(message)).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(format!("{shown}: {e}")),
            Err(_) => Err(format!("{shown} did not answer within {} s", SEND_TIMEOUT.as_secs())),
        }
    }
}

/// `text` on one line: CR and LF become spaces (a header never breaks).
fn one_line(text: &str) -> String {
    text.replace(['\r', '\n'], " ")
}

/// `text` with every line ending a LF, which the message encodes as CRLF: a bare CR becomes a line
/// end. Left as it was, an event's `\r.\r\n` reaches the relay as is, and a relay that ends a line
/// at a bare CR reads the end of the message there and what follows as its next commands (SMTP
/// smuggling).
fn lines(text: &str) -> String {
    text.replace("\r\n", "\n").replace('\r', "\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{PanelEventKind, Timestamp};

    fn config() -> EmailConfig {
        EmailConfig {
            host: "smtp.example.org".into(),
            port: Some(587),
            security: Security::Starttls,
            from: "mqtt-home <home@example.org>".into(),
            to: vec!["me@example.org".into()],
            username: Some("home".into()),
            password_env: Some("PATH".into()),
            password_file: None,
            ca_file: None,
        }
    }

    #[test]
    fn the_message_says_what_happened_and_when() {
        let email = Email::new(&config()).unwrap();
        let n = Notification {
            event: PanelEventKind::Triggered,
            title: "mqtt-home: Alarm: intrusion".into(),
            message: "window kitchen-window open (perimeter)".into(),
            priority: 5,
            sensors: vec!["kitchen-window".into()],
            ts: Timestamp(1_795_370_645_120),
        };
        let text = String::from_utf8(email.message(&n).unwrap().formatted()).unwrap();
        assert!(text.contains("Subject: mqtt-home: Alarm: intrusion"), "{text}");
        assert!(
            text.contains("window kitchen-window open (perimeter)") && text.contains("2026-11-22T18:04:05.120Z"),
            "{text}"
        );
        assert!(text.contains("To: me@example.org"), "{text}");
    }

    #[test]
    fn no_bare_cr_or_lf_reaches_the_relay() {
        let email = Email::new(&config()).unwrap();
        let n = Notification {
            event: PanelEventKind::Trouble,
            title: "mqtt-home: trouble\r\nBcc: victim@example.org".into(),
            message: "door x\r.\r\nMAIL FROM:<evil@example.org>\r\nsmuggled\rline\nend".into(),
            priority: 3,
            sensors: vec!["x\ry".into()],
            ts: Timestamp(1_795_370_645_120),
        };
        let raw = email.message(&n).unwrap().formatted();
        for (i, byte) in raw.iter().enumerate() {
            match byte {
                b'\r' => {
                    assert_eq!(raw.get(i + 1), Some(&b'\n'), "a bare CR at {i}: {}", String::from_utf8_lossy(&raw))
                }
                b'\n' => assert_eq!(raw[i - 1], b'\r', "a bare LF at {i}"),
                _ => {}
            }
        }
        let text = String::from_utf8(raw).unwrap();
        assert!(!text.contains("\r\nBcc:"), "a header was injected: {text}");
        assert!(text.contains("\r\nsmuggled\r\nline\r\nend"), "{text}");
    }

    #[test]
    fn bad_email_settings_say_what_to_fix() {
        let cases: [(EmailConfig, &str); 6] = [
            (EmailConfig { host: String::new(), ..config() }, "needs `host`"),
            (EmailConfig { from: "not an address".into(), ..config() }, "from `not an address`"),
            (EmailConfig { to: vec![], ..config() }, "at least one address"),
            (EmailConfig { password_file: Some("/x".into()), ..config() }, "not both"),
            (EmailConfig { username: None, ..config() }, "needs a username"),
            (EmailConfig { ca_file: Some("/ca.crt".into()), security: Security::None, ..config() }, "ca_file needs"),
        ];
        for (config, needle) in cases {
            let err = config.validate().unwrap_err();
            assert!(err.contains(needle), "{err}");
        }
        let missing = EmailConfig { password_env: Some("MQTT_HOME_TEST_SURELY_UNSET".into()), ..config() };
        assert!(Email::new(&missing).err().unwrap().contains("MQTT_HOME_TEST_SURELY_UNSET"));
        let no_ca = EmailConfig { ca_file: Some("/surely/not/here.crt".into()), ..config() };
        let no_ca = Email::new(&no_ca).err().unwrap();
        assert!(no_ca.contains("cannot read ca_file /surely/not/here.crt"), "{no_ca}");
        let typo = "[[channel]]\nname = \"mail\"\nkind = \"email\"\nhost = \"h\"\nfrom = \"a@b.c\"\nto = [\"d@e.f\"]\nprot = 25\n";
        let typo = toml::from_str::<crate::Config>(typo).unwrap_err().to_string();
        assert!(typo.contains("prot"), "{typo}");
    }
}
