//! What the home's integration tests share: daemon configs pointed at a test broker. Running
//! daemons as tasks and running a test on both brokers come from `testkit`.

#![allow(dead_code)]

use device_runtime::MqttConfig;
use protocol::{LightSource, LightState, Payload, Power};
pub use testkit::{Running, WITHIN};

pub fn mqtt(url: &str, id: &str) -> MqttConfig {
    MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id(id) }
}

pub fn bulb(url: &str, id: &str) -> Running {
    let config = light_bulb::Config { mqtt: mqtt(url, id), ..light_bulb::Config::default() };
    Running::spawn(|s| light_bulb::run(config, s))
}

/// A light controller with the kitchen and hall rooms and a 1 s motion timeout.
pub fn controller(url: &str) -> Running {
    let config = light_controller::Config {
        mqtt: mqtt(url, "light-controller"),
        motion_timeout_s: 1,
        ..light_controller::Config::default()
    };
    Running::spawn(|s| light_controller::run(config, s))
}

/// Matches a light state with this brightness and source.
pub fn light(brightness: u8, source: LightSource) -> impl Fn(&[u8]) -> bool {
    move |payload| {
        LightState::decode(payload).is_ok_and(|s| {
            s.brightness == brightness && s.source == source && (s.state == Power::On) == (brightness > 0)
        })
    }
}

pub fn text(expected: &'static str) -> impl Fn(&[u8]) -> bool {
    move |payload| payload == expected.as_bytes()
}

/// The shipped home's config, with a panel that arms and trips at once (the kitchen window is
/// perimeter), its files in `dir`, and the dashboard on `dashboard` (loopback: no login).
pub fn whole_home_config(dir: &std::path::Path, dashboard: std::net::SocketAddr) -> std::path::PathBuf {
    let mut panel = security_controller::config::PanelConfig {
        exit_delay_s: security_controller::config::ModeDelays { away: 0, home: 0, night: 0 },
        entry_delay_s: security_controller::config::ModeDelays { away: 0, home: 0, night: 0 },
        allow_demo_timings: true,
        ..security_controller::config::PanelConfig::default()
    };
    let perimeter = security_controller::config::SensorConfig {
        zone: Some(security_controller::config::Zone::Perimeter),
        supervision_s: None,
        chime: false,
    };
    panel.sensors.insert("kitchen-window".into(), perimeter);
    let panel = security_controller::Config {
        mqtt: device_runtime::MqttConfig::with_id("security-controller"),
        state_file: dir.join("panel.json"),
        panel,
        ..security_controller::Config::default()
    };
    let database = dir.join("mqtt-home.db");
    let files = [
        ("security-controller.toml", toml::to_string(&panel).unwrap()),
        ("dashboard.toml", format!("listen = \"{dashboard}\"\ndatabase = {database:?}\n[mqtt]\nid = \"dashboard\"\n")),
        ("recorder.toml", format!("database = {database:?}\n[mqtt]\nid = \"recorder\"\n")),
    ];
    testkit::shipped_home_config(dir, &files).unwrap()
}

/// Starts `command` with its soft limit of open files at `soft` (the hard one left as it is).
#[allow(unsafe_code)]
pub fn spawn_with_soft_limit(command: &mut std::process::Command, soft: u64) -> std::process::Child {
    use std::os::unix::process::CommandExt;
    // SAFETY: between fork and exec the closure calls only getrlimit and setrlimit, which are
    // async-signal-safe, on a struct of its own.
    unsafe {
        command.pre_exec(move || {
            let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 {
                limit.rlim_cur = soft.min(limit.rlim_max);
                libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            }
            Ok(())
        });
    }
    command.spawn().expect("cannot start mqtt-home")
}
