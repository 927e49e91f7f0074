//! What the small intrusion benches of issue #11 share (`adapter`, `notify`): their one flag, a
//! panel with no delays and a cheap PIN, and the matcher for its state.

use protocol::{PanelStatus, Payload};
use security_controller::codes;
use security_controller::config::{ModeDelays, PanelConfig, User};

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
    let user = User {
        name: "bench".into(),
        pin_hash: codes::hash_pin_with(PIN, codes::test_params())?,
        duress: false,
        shows_as: None,
    };
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
    })
}

/// Matches a panel status in state `want`.
pub fn state(want: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == want)
}
