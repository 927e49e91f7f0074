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
