//! The docker compose topology, run as plain processes: no Docker engine needed.
//!
//! The test reads `docker-compose.yml` through `docker-compose config` (so `.env` is interpolated
//! and the YAML anchors are resolved exactly as compose does), then runs
//! - Mosquitto with the repository's own `mosquitto/` config, password file and ACL — only the
//!   listener port and the container paths are rewritten to the test's temp dir;
//! - every daemon service with the exact command line, environment and credentials compose gives
//!   it, its volumes mapped to host paths.
//!
//! It checks that the home works (every device online with its own MQTT user, lights driven,
//! alarm and siren), that the ACL denies what it must (a door sensor's user cannot sound the
//! siren, fake another sensor or arm the panel; MQTT 3.1.1 hides that from the client, so the
//! broker log is the witness), that a wrong password is refused, and that every daemon stops
//! cleanly on SIGTERM, as `docker compose stop` does.
//!
//! It cannot drift from the compose file: services, commands and passwords all come from it.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;
use testkit::{Mosquitto, Probe};

const WITHIN: Duration = Duration::from_secs(30);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// `docker-compose config` as JSON, or `None` (loudly) where docker-compose is not installed.
fn compose_config() -> Option<Value> {
    let output = match Command::new("docker-compose")
        .arg("--project-directory")
        .arg(repo())
        .arg("-f")
        .arg(repo().join("docker-compose.yml"))
        .arg("config")
        .output()
    {
        Ok(output) => output,
        Err(e) => {
            assert!(
                std::env::var("CI").map(|v| v != "true").unwrap_or(true),
                "docker-compose is not installed but CI=true: .ci/run must install it ({e})"
            );
            eprintln!("\n*** SKIPPED: docker-compose is not installed (apt-get install docker-compose) ***\n");
            return None;
        }
    };
    assert!(output.status.success(), "docker-compose config failed: {}", String::from_utf8_lossy(&output.stderr));
    let mut python = Command::new("python3")
        .args(["-c", "import sys, yaml, json; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 with PyYAML (docker-compose depends on it) is needed to read the compose file");
    use std::io::Write;
    python.stdin.take().unwrap().write_all(&output.stdout).unwrap();
    let json = python.wait_with_output().unwrap();
    assert!(json.status.success(), "cannot convert the compose config to JSON");
    Some(serde_json::from_slice(&json.stdout).unwrap())
}

/// A service's volumes as (container path, host path); named volumes become dirs under `temp`.
fn volumes(service: &Value, temp: &Path) -> Vec<(String, PathBuf)> {
    let mut out = Vec::new();
    for volume in service["volumes"].as_array().into_iter().flatten() {
        let spec = volume.as_str().expect("short volume syntax");
        let mut parts = spec.split(':');
        let (source, target) = (parts.next().unwrap(), parts.next().unwrap());
        let host = if source.starts_with('/') {
            PathBuf::from(source)
        } else {
            let dir = temp.join("volumes").join(source);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).unwrap();
            dir
        };
        out.push((target.to_owned(), host));
    }
    // Longest container path first, so /a/b wins over /a.
    out.sort_by_key(|(target, _)| std::cmp::Reverse(target.len()));
    out
}

fn map_path(text: &str, volumes: &[(String, PathBuf)]) -> String {
    let mut text = text.to_owned();
    for (target, host) in volumes {
        text = text.replace(target.as_str(), &host.display().to_string());
    }
    text
}

/// The repository's Mosquitto config, listening on a free port of 127.0.0.1, container paths
/// mapped to copies in the broker's temp dir (readable by the `mosquitto` user it drops to).
fn start_broker(broker: &Value) -> Mosquitto {
    Mosquitto::start_with_config(|port, dir| {
        let volumes: Vec<(String, PathBuf)> = volumes(broker, dir)
            .into_iter()
            .map(|(target, host)| {
                if host.is_file() {
                    let copy = dir.join(host.file_name().unwrap());
                    std::fs::copy(&host, &copy).unwrap();
                    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o644)).unwrap();
                    (target, copy)
                } else {
                    (target, host)
                }
            })
            .collect();
        let conf_target = "/mosquitto/config/mosquitto.conf";
        let conf = volumes.iter().find(|(t, _)| t == conf_target).expect("the broker mounts mosquitto.conf").1.clone();
        let text = std::fs::read_to_string(conf).unwrap();
        let mut out = String::new();
        for line in text.lines() {
            let line = match line.trim() {
                "listener 1883" => format!("listener {port} 127.0.0.1"),
                "log_dest stdout" => format!("log_dest file {}/mosquitto.log", dir.display()),
                _ => map_path(line, &volumes),
            };
            out.push_str(&line);
            out.push('\n');
        }
        assert!(out.contains(&format!("listener {port} 127.0.0.1")), "mosquitto.conf has no `listener 1883` line");
        // Mosquitto logs "Denied PUBLISH" at debug level only: the one line the test adds, so
        // that the denials it checks are visible (README, troubleshooting, says the same).
        out.push_str("log_type debug\n");
        out
    })
    .expect("mosquitto with the repository's config did not start")
}

/// A daemon service as a process; SIGKILLed on drop if the test did not stop it.
struct Daemon {
    service: String,
    id: String,
    username: String,
    password: String,
    health_file: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn binary_dir() -> PathBuf {
    Path::new(env!("CARGO_BIN_EXE_mqtt-home")).parent().unwrap().to_owned()
}

/// Builds the daemons' binaries (a no-op when `cargo test --workspace` already did).
fn build(binaries: &[String]) {
    let mut cargo = Command::new(env!("CARGO"));
    cargo.current_dir(repo()).args(["build", "--workspace"]);
    for binary in binaries {
        cargo.args(["--bin", binary]);
    }
    let status = cargo.status().expect("cannot run cargo");
    assert!(status.success(), "cannot build {binaries:?}");
}

fn start_daemon(name: &str, service: &Value, url: &str, temp: &Path) -> Daemon {
    let dir = temp.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let volumes = volumes(service, temp);
    // The image's WORKDIR is /app: mounts under /app become links in the daemon's own /app.
    let app = dir.join("app");
    std::fs::create_dir_all(&app).unwrap();
    for (target, host) in &volumes {
        if let Some(rest) = target.strip_prefix("/app/") {
            std::os::unix::fs::symlink(host, app.join(rest)).unwrap();
        }
    }
    let command: Vec<String> =
        service["command"].as_array().unwrap().iter().map(|a| map_path(a.as_str().unwrap(), &volumes)).collect();
    let id = command.iter().skip_while(|a| *a != "--id").nth(1).expect("every daemon is given --id").clone();
    let mut environment: BTreeMap<String, String> = service["environment"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_eq!(environment["MQTT_BROKER_URL"], "mqtt://broker:1883", "{name}: the broker is the `broker` service");
    environment.insert("MQTT_BROKER_URL".into(), url.to_owned());
    // The dashboard's port in its container is its own; here it must not collide with anything.
    if environment.contains_key("DASHBOARD_LISTEN") {
        environment.insert("DASHBOARD_LISTEN".into(), format!("127.0.0.1:{}", testkit::free_port()));
    }
    // The image sets it (Dockerfile ENV); the healthcheck tests it.
    let health_file = dir.join("mqtt-connected");
    environment.insert("MQTT_HEALTH_FILE".into(), health_file.display().to_string());
    let log = dir.join("daemon.log");
    let out = std::fs::File::create(&log).unwrap();
    let child = Command::new(binary_dir().join(&command[0]))
        .args(&command[1..])
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .envs(&environment)
        .current_dir(&app)
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .unwrap_or_else(|e| panic!("{name}: cannot run {}: {e}", command[0]));
    Daemon {
        service: name.to_owned(),
        id,
        username: environment.get("MQTT_USERNAME").cloned().unwrap_or_default(),
        password: environment.get("MQTT_PASSWORD").cloned().unwrap_or_default(),
        health_file,
        log,
        child: Some(child),
    }
}

fn json_field(key: &'static str, value: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| serde_json::from_slice::<Value>(p).is_ok_and(|v| v[key] == value)
}

/// A user's password from `.env`, e.g. `OPERATOR`.
fn env_password(user: &str) -> String {
    let key = format!("MQTT_PASSWORD_{user}=");
    std::fs::read_to_string(repo().join(".env"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(key.as_str()).map(str::to_owned))
        .unwrap_or_else(|| panic!(".env has no {key}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_compose_topology_works_as_plain_processes_and_the_acl_holds() {
    let Some(compose) = compose_config() else { return };
    if testkit::mosquitto_or_skip().is_none() {
        return;
    }
    let services = compose["services"].as_object().expect("services");
    let temp = tempfile::tempdir().unwrap();
    let mosquitto = start_broker(&services["broker"]);
    let url = mosquitto.url();

    // Services behind a profile (the EMQX broker) are not part of the home `docker compose up` starts.
    let daemons_in_compose: Vec<(&String, &Value)> =
        services.iter().filter(|(name, s)| *name != "broker" && s.get("profiles").is_none()).collect();
    let mut binaries: Vec<String> =
        daemons_in_compose.iter().map(|(_, s)| s["command"][0].as_str().unwrap().to_owned()).collect();
    binaries.sort();
    binaries.dedup();
    build(&binaries);
    let mut daemons: Vec<Daemon> =
        daemons_in_compose.iter().map(|(name, service)| start_daemon(name, service, &url, temp.path())).collect();
    assert!(daemons.len() >= 12, "expected a service per daemon, found {}", daemons.len());

    let operator_password = env_password("OPERATOR");
    let mut probe = Probe::connect_as(&url, "compose-test-operator", Some(("operator", &operator_password)))
        .await
        .expect("the operator user connects");
    probe.subscribe("home/#").await.unwrap();

    // 1. Every daemon is online, connected as its own user, and healthy by its healthcheck.
    for d in &daemons {
        let topic = format!("home/devices/{}/availability", d.id);
        if let Err(e) = probe.expect(&topic, |p| p == b"online", WITHIN).await {
            panic!("{} is not online: {e:#}\nits log:\n{}", d.service, std::fs::read_to_string(&d.log).unwrap());
        }
        assert!(d.health_file.exists(), "{}: no health file while connected", d.service);
        assert!(
            mosquitto.log().contains(&format!("u'{}'", d.username)),
            "{} did not connect as its user {}",
            d.service,
            d.username
        );
    }

    // 2. Lighting: the circadian sensor's phases reach the bulbs through the controller.
    probe.expect("home/lights/circadian_rhythm", json_field("device_id", "circadian"), WITHIN).await.unwrap();
    let driven = |p: &[u8]| {
        serde_json::from_slice::<Value>(p).is_ok_and(|v| v["source"] == "circadian" || v["source"] == "motion")
    };
    probe.expect("home/lights/kitchen/state", driven, WITHIN).await.unwrap();

    // 3. Security: a panic TRIGGER from the operator sounds the siren and flashes the lights;
    //    the demo code disarms.
    probe.expect("home/security/status", json_field("state", "disarmed"), WITHIN).await.unwrap();
    probe.publish("home/security/panel/set", r#"{"action":"TRIGGER"}"#, false).await.unwrap();
    probe.expect("home/security/status", json_field("state", "triggered"), WITHIN).await.unwrap();
    probe.expect("home/security/alarm", json_field("state", "ON"), WITHIN).await.unwrap();
    probe.expect("home/lights/kitchen/state", json_field("source", "alarm"), WITHIN).await.unwrap();
    let sirens = probe.count("home/security/alarm");
    let statuses = probe.count("home/security/status");
    probe.publish("home/security/panel/set", r#"{"action":"DISARM","code":"1234"}"#, false).await.unwrap();
    probe.expect_after(statuses, "home/security/status", json_field("state", "disarmed"), WITHIN).await.unwrap();
    probe.expect_after(sirens, "home/security/alarm", json_field("state", "OFF"), WITHIN).await.unwrap();

    // 4. Home Assistant's user reads every daemon's discovery config (each device may write its own).
    let ha_password = env_password("HOMEASSISTANT");
    let mut ha = Probe::connect_as(&url, "compose-test-homeassistant", Some(("homeassistant", &ha_password)))
        .await
        .expect("the homeassistant user connects");
    ha.subscribe("homeassistant/#").await.unwrap();
    for topic in [
        "homeassistant/binary_sensor/home_front/door/config",
        "homeassistant/alarm_control_panel/home_security-controller/panel/config",
        "homeassistant/light/home_kitchen/light/config",
        "homeassistant/siren/home_siren/siren/config",
        "homeassistant/sensor/home_circadian/phase/config",
    ] {
        ha.expect(topic, |p| !p.is_empty(), WITHIN).await.unwrap_or_else(|e| panic!("{topic}: {e:#}"));
    }
    drop(ha);

    // 5. A Zigbee2MQTT door (config/bridge.toml's example) reaches the home through the bridge,
    //    each on its own user.
    let z2m_password = env_password("ZIGBEE2MQTT");
    let mut z2m = Probe::connect_as(&url, "compose-test-zigbee2mqtt", Some(("zigbee2mqtt", &z2m_password)))
        .await
        .expect("the zigbee2mqtt user connects");
    z2m.publish("zigbee2mqtt/garage_door", r#"{"contact":false,"battery":97}"#, true).await.unwrap();
    probe.expect("home/security/door/garage-door", json_field("state", "OPEN"), WITHIN).await.unwrap();
    z2m.publish("zigbee2mqtt/garage_door", r#"{"contact":true,"battery":97}"#, true).await.unwrap();
    probe.expect("home/security/door/garage-door", json_field("state", "CLOSED"), WITHIN).await.unwrap();
    drop(z2m);

    // 6. The ACL: the front door's user may not sound the siren, fake a window, arm the panel or
    //    rewrite another device's discovery config.
    let front = daemons.iter().find(|d| d.id == "front").expect("a front door service");
    let (user, password) = (front.username.clone(), front.password.clone());
    let mut intruder = Probe::connect_as(&url, "front-acl-test", Some((&user, &password))).await.unwrap();
    let sirens = probe.count("home/security/alarm");
    let statuses = probe.count("home/security/status");
    intruder.publish("home/control/alarm", r#"{"state":"ON","reason":"acl test"}"#, false).await.unwrap();
    intruder.publish("home/security/window/kitchen-window", r#"{"state":"OPEN"}"#, true).await.unwrap();
    intruder.publish("home/security/panel/set", r#"{"action":"TRIGGER"}"#, false).await.unwrap();
    intruder.publish("homeassistant/siren/home_siren/siren/config", "", true).await.unwrap();
    probe.expect_none("home/control/alarm", json_field("reason", "acl test"), Duration::from_secs(2)).await.unwrap();
    assert_eq!(probe.count("home/security/alarm"), sirens, "the siren reacted to the door sensor's user");
    assert!(
        probe.seen("home/security/status")[statuses..].iter().all(|p| !json_field("state", "triggered")(p)),
        "the panel reacted to the door sensor's user"
    );
    let log = mosquitto.log();
    for topic in [
        "home/control/alarm",
        "home/security/window/kitchen-window",
        "home/security/panel/set",
        "homeassistant/siren/home_siren/siren/config",
    ] {
        assert!(
            log.lines().any(|l| l.contains("Denied PUBLISH from front-acl-test") && l.contains(topic)),
            "no denial of {topic} in the broker log"
        );
    }
    // ...while its own topic is allowed.
    intruder.publish("home/security/door/front", r#"{"state":"CLOSED"}"#, false).await.unwrap();
    probe.expect("home/security/door/front", |p| p == br#"{"state":"CLOSED"}"#, WITHIN).await.unwrap();
    drop(intruder);

    // 7. A wrong password, and no password at all, are refused.
    let refused = Probe::connect_as(&url, "front-wrong-password", Some((&user, "not-the-password"))).await;
    assert!(refused.is_err(), "a wrong password was accepted");
    assert!(Probe::connect(&url, "anonymous-test").await.is_err(), "an anonymous client was accepted");

    // 8. SIGTERM, as `docker compose stop` sends: each daemon says offline and exits 0.
    for d in &mut daemons {
        let child = d.child.as_ref().unwrap();
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    }
    for d in &mut daemons {
        let mut child = d.child.take().unwrap();
        let status = child.wait().unwrap();
        assert!(status.success(), "{} exited with {status} on SIGTERM", d.service);
        let topic = format!("home/devices/{}/availability", d.id);
        probe.expect(&topic, |p| p == b"offline", WITHIN).await.unwrap();
        assert!(!d.health_file.exists(), "{}: the health file outlived the connection", d.service);
    }
}
