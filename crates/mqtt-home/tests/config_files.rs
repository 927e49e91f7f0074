//! The shipped config files say "the value shown is the built-in default": hold them to it, and
//! make sure every daemon accepts its file.

use std::path::Path;

use device_runtime::config::layer;
use device_runtime::daemon::DaemonConfig;
use mqtt_home::config_source::ConfigSource;

fn config_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../config"))
}

/// Loads `config/<C::NAME>.toml` over the defaults and checks it changes nothing.
fn file_equals_defaults<C: DaemonConfig + PartialEq + std::fmt::Debug>() {
    let path = config_dir().join(format!("{}.toml", C::NAME));
    let loaded: C = layer(&C::default(), Some(&path), toml::Table::new()).unwrap();
    loaded.validate().unwrap();
    assert_eq!(loaded, C::default(), "{} differs from the built-in defaults", path.display());
}

#[test]
fn lighting_files_show_the_defaults() {
    file_equals_defaults::<light_controller::Config>();
    file_equals_defaults::<light_bulb::Config>();
    file_equals_defaults::<circadian_sensor::Config>();
    file_equals_defaults::<binary_sensor::MotionConfig>();
    file_equals_defaults::<binary_sensor::DoorConfig>();
    file_equals_defaults::<binary_sensor::WindowConfig>();
    file_equals_defaults::<alarm_actuator::Config>();
}

#[test]
fn the_home_file_shows_the_defaults() {
    let home = mqtt_home::home::HomeConfig::load(&ConfigSource::Dir(config_dir().to_owned())).unwrap();
    assert_eq!(home, mqtt_home::home::HomeConfig::default());
}

#[test]
fn the_panel_files_validate_and_the_real_one_keeps_the_defaults() {
    let real: security_controller::Config = layer(
        &security_controller::Config::default(),
        Some(&config_dir().join("security-controller.toml")),
        toml::Table::new(),
    )
    .unwrap();
    real.validate().unwrap();
    let mut expected = security_controller::Config::default();
    expected.panel.users = real.panel.users.clone();
    assert_eq!(real, expected, "security-controller.toml differs from the defaults beyond its demo users");
    assert_eq!(real.panel.users.len(), 2);

    let demo: security_controller::Config = layer(
        &security_controller::Config::default(),
        Some(&config_dir().join("security-controller.demo.toml")),
        toml::Table::new(),
    )
    .unwrap();
    demo.validate().unwrap();
    assert!(demo.panel.allow_demo_timings && demo.panel.trigger_time_s < 60);
    assert!(security_controller::codes::verify_pin("1234", &demo.panel.users[0].pin_hash));
    assert!(
        demo.panel.users[1].duress && security_controller::codes::verify_pin("4321", &demo.panel.users[1].pin_hash)
    );

    let areas: security_controller::Config = layer(
        &security_controller::Config::default(),
        Some(&config_dir().join("security-controller.areas.toml")),
        toml::Table::new(),
    )
    .unwrap();
    areas.validate().unwrap();
    let names: Vec<&str> = areas.panel.areas.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(names, ["house", "garage"]);
    let gina = areas.panel.users.iter().find(|u| u.name == "gina").unwrap();
    assert!(security_controller::codes::verify_pin("7777", &gina.pin_hash));
    assert_eq!(gina.areas.as_deref(), Some(&["garage".to_owned()][..]));
}

/// A configuration refused is exit code 2 for `mqtt-home` as for every daemon, with the file and
/// the key in one line.
#[test]
fn a_bad_home_file_exits_2_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("home.toml"), "bulbz = [\"kitchen\"]\n").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"))
        .args(["run", "--config-dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown field `bulbz`") && stderr.contains("home.toml"), "{stderr}");
}
