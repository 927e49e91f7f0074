//! Every shipped scenario (`scenarios/*.toml`) runs green against the whole home, started in-process
//! from the shipped `config/` directory, on the embedded broker and on Mosquitto; and a scenario
//! that should fail does, with a message that says why.
//!
//! The home is the shipped one with three changes, all for determinism or speed, none to the files:
//! the circadian sensor is off and there are no motion sensors (their simulation would move the
//! lights and trip the armed panel at random; the scenarios play those sensors themselves), the
//! panel keeps its state file in a temporary directory, and the light controller's motion timeout
//! is 3 s instead of 60 s. The last two are copies of the shipped daemon files with one key
//! changed, given to the home through `config_files` (an absolute path there replaces the config
//! directory), so everything else is read from the real files.

mod common;

use testkit::on_both_brokers;

use std::path::{Path, PathBuf};
use std::time::Instant;

use device_runtime::{CommonArgs, MqttConfig};
use mqtt_home::config_source::ConfigSource;
use mqtt_home::home::QuietHome;
use mqtt_home::scenario::{self, Scenario};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn shipped_scenarios() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join("scenarios"))
        .expect("no scenarios directory")
        .map(|e| e.expect("cannot list scenarios").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 13, "expected the thirteen shipped scenarios, found {files:?}");
    files
}

async fn every_shipped_scenario_passes(url: String) {
    let config = MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id("scenario-test") };
    let faster_motion = [("light-controller", "motion_timeout_s", 3.into())];
    let mut timeline = Vec::new();
    let home = QuietHome::start(
        &ConfigSource::BuiltIn,
        &config.broker,
        CommonArgs::default(),
        &faster_motion,
        &config,
        &mut timeline,
    )
    .await
    .unwrap_or_else(|e| panic!("{e:#}\n{}", String::from_utf8_lossy(&timeline)));
    let started = Instant::now();
    for file in shipped_scenarios() {
        let scenario = Scenario::load(&file).unwrap();
        let mut timeline = Vec::new();
        let outcome = scenario::run(&scenario, &config, &mut timeline).await;
        let timeline = String::from_utf8_lossy(&timeline);
        print!("{timeline}");
        if let Err(e) = outcome {
            panic!("{e:#}\n{timeline}");
        }
        let secrets = ["1234", "4321", "04A2B3C4"];
        assert!(!secrets.iter().any(|s| timeline.contains(s)), "a PIN or tag in the timeline:\n{timeline}");
    }
    println!("all scenarios passed in {:.1} s", started.elapsed().as_secs_f64());
    assert!(home.state_file.exists(), "the panel did not use the temporary state file");
    tokio::time::timeout(common::WITHIN, home.stop()).await.expect("the home did not stop");
}
on_both_brokers!(shipped, super::every_shipped_scenario_passes);

/// The shipped config directory with home.toml pointing the panel at `panel_file` instead of the
/// demo's, in a temporary directory: a home as a user makes one by editing one line.
fn config_dir_with_panel(panel_file: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(repo().join("config")).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            std::fs::copy(&path, dir.path().join(path.file_name().unwrap())).unwrap();
        }
    }
    let home = std::fs::read_to_string(dir.path().join("home.toml")).unwrap();
    let line = r#"security-controller = "security-controller.demo.toml""#;
    assert!(home.contains(line), "home.toml no longer has the line this test changes: {line}");
    let home = home.replace(line, &format!(r#"security-controller = "{panel_file}""#));
    std::fs::write(dir.path().join("home.toml"), home).unwrap();
    dir
}

/// `scenarios/areas/` against the home run with the shipped two-area panel
/// (config/security-controller.areas.toml).
async fn the_areas_scenario_passes_with_the_shipped_areas_config(url: String) {
    let config = MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id("scenario-test-areas") };
    let dir = config_dir_with_panel("security-controller.areas.toml");
    let source = ConfigSource::Dir(dir.path().to_owned());
    let mut timeline = Vec::new();
    let home = QuietHome::start(&source, &config.broker, CommonArgs::default(), &[], &config, &mut timeline)
        .await
        .unwrap_or_else(|e| panic!("{e:#}\n{}", String::from_utf8_lossy(&timeline)));
    let scenario = Scenario::load(&repo().join("scenarios/areas/two-areas.toml")).unwrap();
    let mut timeline = Vec::new();
    let outcome = scenario::run(&scenario, &config, &mut timeline).await;
    let timeline = String::from_utf8_lossy(&timeline);
    print!("{timeline}");
    if let Err(e) = outcome {
        panic!("{e:#}\n{timeline}");
    }
    assert!(!timeline.contains("7777"), "a PIN in the timeline:\n{timeline}");
    tokio::time::timeout(common::WITHIN, home.stop()).await.expect("the home did not stop");
}
on_both_brokers!(areas, super::the_areas_scenario_passes_with_the_shipped_areas_config);

/// A scenario that must fail: the runner says which step, what it waited for and what it saw,
/// still runs the `finally` steps, and never prints the code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_expectation_fails_the_scenario_with_a_useful_message() {
    const DOOMED: &str = r#"
name = "doomed"
description = "expects a brightness nobody sends"

[[step]]
publish = { topic = "home/lights/kitchen/set", payload = '{"state":"ON","brightness":40,"code":"9999"}' }

[[step]]
expect = { topic = "home/lights/+/set", json = { brightness = 41 }, within_s = 0.5 }

[[step]]
say = "never reached"

[[finally]]
publish = { topic = "home/lights/kitchen/set", payload = "OFF" }
"#;
    let broker = testkit::embedded();
    let scenario = Scenario::parse("doomed.toml", DOOMED).unwrap();
    let config = MqttConfig { broker: broker.url().parse().unwrap(), ..MqttConfig::with_id("scenario-test-doomed") };
    let mut timeline = Vec::new();
    let error = scenario::run(&scenario, &config, &mut timeline).await.expect_err("the scenario passed");
    let error = format!("{error:#}");
    let timeline = String::from_utf8_lossy(&timeline);
    assert!(
        error.starts_with("doomed.toml: step 2: home/lights/+/set: no message matching {\"brightness\":41}"),
        "{error}"
    );
    assert!(error.contains("within 0.5 s; last seen: {\"brightness\":40,\"code\":\"…\",\"state\":\"ON\"}"), "{error}");
    assert!(timeline.contains("✗ home/lights/+/set: no message matching"), "{timeline}");
    assert!(!timeline.contains("never reached"), "a step ran after the failure:\n{timeline}");
    assert!(timeline.contains("→ home/lights/kitchen/set OFF"), "the finally step did not run:\n{timeline}");
    assert!(timeline.contains("doomed FAILED"), "{timeline}");
    assert!(!timeline.contains("9999") && !error.contains("9999"), "the code was printed:\n{timeline}\n{error}");
}

/// `expect_none` fails when the message it forbids arrives, even before the step starts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forbidden_message_fails_expect_none() {
    const SIREN: &str = r#"
name = "siren"
description = "forbids what it publishes"

[[step]]
publish = { topic = "home/security/alarm", json = { state = "ON" } }

[[step]]
expect_none = { topic = "home/security/alarm", json = { state = "ON" }, for_s = 1 }
"#;
    let broker = testkit::embedded();
    let scenario = Scenario::parse("siren.toml", SIREN).unwrap();
    let config = MqttConfig { broker: broker.url().parse().unwrap(), ..MqttConfig::with_id("scenario-test-siren") };
    let mut timeline = Vec::new();
    let error = format!("{:#}", scenario::run(&scenario, &config, &mut timeline).await.expect_err("passed"));
    assert!(
        error.starts_with("siren.toml: step 2: home/security/alarm: unexpected home/security/alarm {\"state\":\"ON\"}"),
        "{error}"
    );
}

/// The installed binary, started where there is no `config/`, runs the demo built into it: the
/// intrusion scenario needs the demo's users (PIN 1234) and its short delays.
#[test]
fn the_binary_started_anywhere_runs_the_built_in_demo() {
    let elsewhere = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"))
        .current_dir(elsewhere.path())
        .args(["scenario", "--with-home"])
        .arg(repo().join("scenarios/intrusion.toml"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("passed"), "{stdout}");
}
