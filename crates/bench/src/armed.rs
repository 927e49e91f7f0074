//! What the small intrusion benches of issue #11 share (`adapter`, `notify`): their one flag, a
//! panel with no delays and a cheap PIN, and the matcher for its state.

use std::time::Duration;

use anyhow::Context;
use protocol::{Availability, PanelAction, PanelCommand, PanelStatus, Payload, SensorKind, Topic, Topics};
use security_controller::codes;
use security_controller::config::{ModeDelays, PanelConfig, User};
use testkit::Probe;

/// The PIN of the benches' panel.
pub const PIN: &str = "1234";

/// `--intrusions N` (else `default`); `None` after printing the error, for exit code 2.
pub fn intrusions(bench: &str, default: usize) -> Option<usize> {
    let mut intrusions = default;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--intrusions" => match args.next().and_then(|n| n.parse().ok()) {
                Some(n) if n > 0 => intrusions = n,
                _ => {
                    eprintln!("{bench}: error: --intrusions takes a number above 0");
                    return None;
                }
            },
            "--bench" => {}
            other => {
                eprintln!("{bench}: error: unknown argument `{other}` (use --intrusions N)");
                return None;
            }
        }
    }
    Some(intrusions)
}

pub fn mqtt(url: &str, id: &str) -> anyhow::Result<device_runtime::MqttConfig> {
    Ok(device_runtime::MqttConfig { broker: url.parse()?, ..device_runtime::MqttConfig::with_id(id) })
}

/// A panel on `url` that arms and trips at once, its state in `dir`, disarmed with [`PIN`].
pub fn panel(url: &str, dir: &std::path::Path) -> anyhow::Result<security_controller::Config> {
    let user = User::new("bench", codes::hash_pin_with(PIN, codes::test_params())?);
    Ok(security_controller::Config {
        mqtt: mqtt(url, "security-controller")?,
        state_file: dir.join("panel.json"),
        panel: PanelConfig {
            exit_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            entry_delay_s: ModeDelays { away: 0, home: 0, night: 0 },
            allow_demo_timings: true,
            users: vec![user],
            ..PanelConfig::default()
        },
        ..security_controller::Config::default()
    })
}

/// Matches a panel status in state `want`.
pub fn state(want: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == want)
}

/// The home's topics the benches watch and publish on, under the default root.
pub struct BenchTopics {
    pub siren: String,
    pub status: String,
    pub panel_set: String,
    pub availability: String,
}

impl BenchTopics {
    pub fn new() -> BenchTopics {
        let t = Topics::default();
        BenchTopics {
            siren: t.name(&Topic::AlarmControl),
            status: t.name(&Topic::PanelStatus),
            panel_set: t.name(&Topic::PanelSet),
            availability: t.all_availability(),
        }
    }

    /// The reading topic of window `id`.
    pub fn window(id: &str) -> String {
        Topics::default().name(&Topic::Sensor { kind: SensorKind::Window, id: id.to_owned() })
    }
}

impl Default for BenchTopics {
    fn default() -> Self {
        BenchTopics::new()
    }
}

/// Waits until daemon `id` says it is online.
pub async fn online(probe: &mut Probe, id: &str, within: Duration) -> anyhow::Result<()> {
    let topic = Topics::default().name(&Topic::Availability(id.to_owned()));
    probe.expect(&topic, |p| Availability::decode(p) == Ok(Availability::Online), within).await?;
    Ok(())
}

/// Arms away (no code, no delays) and waits for the status that says so.
pub async fn arm_away(probe: &mut Probe, topics: &BenchTopics, within: Duration) -> anyhow::Result<()> {
    change(probe, topics, PanelCommand { action: PanelAction::ArmAway, code: None, force: false }, "armed_away", within)
        .await
}

/// Disarms with [`PIN`] and waits for the status that says so.
pub async fn disarm(probe: &mut Probe, topics: &BenchTopics, within: Duration) -> anyhow::Result<()> {
    let command = PanelCommand { action: PanelAction::Disarm, code: Some(PIN.to_owned()), force: false };
    change(probe, topics, command, "disarmed", within).await
}

async fn change(
    probe: &mut Probe,
    topics: &BenchTopics,
    command: PanelCommand,
    want: &'static str,
    within: Duration,
) -> anyhow::Result<()> {
    let n = probe.count(&topics.status);
    probe.publish(&topics.panel_set, command.encode(), false).await?;
    probe.expect_after(n, &topics.status, state(want), within).await.with_context(|| format!("waiting for {want}"))?;
    Ok(())
}
