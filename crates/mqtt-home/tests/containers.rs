//! The shipped `docker-compose.yml`, run for real: every service in its own podman container.
//!
//! `containers/setup.sh` (idempotent, cached; run here first) installs podman and podman-compose
//! 1.6 and builds the images locally: no registry is needed. The test then runs the compose file
//! UNMODIFIED, plus an override file that only
//! - publishes the broker and the dashboard on free ports of 127.0.0.1 (`ports: !override`);
//! - adds `--no-simulate` to the door, window and motion sensors: simulated contacts are open about
//!   half the time, the panel refuses to arm with one open, and the intrusion scenario needs a
//!   quiet home (as `mqtt-home scenario --with-home` starts one);
//!
//! under a project name of its own, and checks, through compose's own healthchecks (`podman
//! healthcheck run`: without systemd nothing runs them) and the published ports:
//! 1. every service becomes healthy, the broker included, and every daemon says `online`;
//! 2. the ACL: a door sensor's user cannot publish another door's state;
//! 3. the dashboard answers, refuses a request without the DASHBOARD_TOKEN login, accepts one with it;
//! 4. `scenarios/intrusion.toml` passes as the operator (the siren sounds), with the siren's latency
//!    (its wait for `armed_away` raised to the shipped 60 s exit delay; it is written for the demo's 5 s);
//! 5. a daemon whose process is SIGKILLed (a crash) is restarted by `restart: unless-stopped` and
//!    comes back online;
//! 6. `down` then `up`: the recorder's history and the panel's armed state survive in their volumes;
//! 7. `down`: every daemon exits within 2 s of its SIGTERM, none needed SIGKILL, and stopping
//!    stays under the 10 s grace period (checked last; reported per container, with the times).
//!
//! The project is always removed with its volumes (`down -v`), also when the test fails.
//! Where podman cannot run (no user namespaces, not root, ...), the test says so in one line and
//! passes, except under `CI=true`, where it fails.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant, UNIX_EPOCH};

use serde_json::Value;
use testkit::Probe;

const HEALTHY_WITHIN: Duration = Duration::from_secs(90);
const WITHIN: Duration = Duration::from_secs(30);
/// How long a daemon may take from SIGTERM to exit (its own log's "terminated (SIGTERM)" line to
/// podman's `died` event): it says offline, disconnects and leaves.
const SHUTDOWN_WITHIN: Duration = Duration::from_secs(2);
/// How long the stopping half of `down` may take: less than `stop_grace_period` (10 s), what a
/// container that does not exit on SIGTERM costs. podman-compose 1.6 runs a `podman stop` per
/// container, all at once, then removes them one by one (~0.15-0.25 s each): with every daemon
/// exiting within half a second of SIGTERM, `down` took 4.4-9.8 s in all on a 2-CPU machine
/// (the more so while it compiled), nearly all of it podman's own start-up and bookkeeping.
const STOP_WITHIN: Duration = Duration::from_secs(10);

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

fn secs(d: Duration) -> String {
    format!("{:.1} s", d.as_secs_f64())
}

fn text(output: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr))
}

/// A value of `.env`, e.g. `MQTT_PASSWORD_OPERATOR`.
fn dotenv(key: &str) -> String {
    let prefix = format!("{key}=");
    std::fs::read_to_string(repo().join(".env"))
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix(prefix.as_str()).map(str::to_owned))
        .unwrap_or_else(|| panic!(".env has no {key}"))
}

/// What `containers/setup.sh` prints: where podman's config and podman-compose are.
struct Tools {
    containers_conf: PathBuf,
    podman_compose: PathBuf,
}

/// Runs `containers/setup.sh`; `None` (after one line, or a failure under CI=true) where podman
/// cannot run on this machine.
fn setup() -> Option<Tools> {
    let started = Instant::now();
    let mut command = Command::new("bash");
    command.arg(repo().join("containers/setup.sh")).env("CARGO", env!("CARGO")).stdin(Stdio::null());
    // What cargo sets for this test process only: ring's build script reruns when
    // CARGO_MANIFEST_DIR changes, so passing them on rebuilds ring and rustls in the script's
    // `cargo build`, and again in the next `cargo test` (~25 s each time).
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_PKG_")
            || key.starts_with("CARGO_BIN_EXE_")
            || key.starts_with("CARGO_MANIFEST_")
            || [
                "CARGO_CRATE_NAME",
                "CARGO_PRIMARY_PACKAGE",
                "CARGO_TARGET_TMPDIR",
                "CARGO_RUSTC_CURRENT_DIR",
                "OUT_DIR",
            ]
            .contains(&key.as_ref())
        {
            command.env_remove(key.as_ref());
        }
    }
    let output = command.output().expect("cannot run bash containers/setup.sh");
    let log = String::from_utf8_lossy(&output.stderr);
    for line in log.lines().filter(|l| l.starts_with("containers/setup.sh:")) {
        eprintln!("{line}");
    }
    if output.status.code() == Some(3) {
        let why = log.lines().rfind(|l| l.starts_with("containers/setup.sh:")).unwrap_or("podman cannot run here");
        assert!(std::env::var("CI").map(|v| v != "true").unwrap_or(true), "CI=true but {why}");
        eprintln!("*** SKIPPED: the compose file cannot run in containers here: {why} ***");
        return None;
    }
    assert!(output.status.success(), "containers/setup.sh failed ({}):\n{log}", output.status);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value = |key: &str| -> PathBuf {
        let prefix = format!("{key}=");
        let line = stdout.lines().find_map(|l| l.strip_prefix(prefix.as_str()));
        PathBuf::from(line.unwrap_or_else(|| panic!("containers/setup.sh printed no {key}=:\n{stdout}")))
    };
    eprintln!("containers: setup {}", secs(started.elapsed()));
    Some(Tools { containers_conf: value("CONTAINERS_CONF"), podman_compose: value("PODMAN_COMPOSE") })
}

/// One container of the project, from `podman ps -a`.
#[derive(Debug, Clone)]
struct Container {
    name: String,
    service: String,
}

/// A compose project of the shipped file plus the test's override; removed with its volumes on drop.
struct Project {
    name: String,
    tools: Tools,
    files: Vec<PathBuf>,
    broker_port: u16,
    removed: bool,
    temp: tempfile::TempDir,
}

impl Project {
    fn podman(&self) -> Command {
        let mut command = Command::new("podman");
        command.env("CONTAINERS_CONF", &self.tools.containers_conf).stdin(Stdio::null());
        command
    }

    fn compose(&self) -> Command {
        let mut command = Command::new(&self.tools.podman_compose);
        command.env("CONTAINERS_CONF", &self.tools.containers_conf).current_dir(repo()).stdin(Stdio::null());
        command.arg("-p").arg(&self.name);
        for file in &self.files {
            command.arg("-f").arg(file);
        }
        command
    }

    /// `podman-compose ARGS`, which must succeed; how long it took.
    fn run(&self, args: &[&str]) -> Duration {
        let started = Instant::now();
        let output = self.compose().args(args).output().expect("cannot run podman-compose");
        assert!(output.status.success(), "podman-compose {args:?} failed ({}):\n{}", output.status, text(&output));
        started.elapsed()
    }

    fn containers(&self) -> Vec<Container> {
        let output = self
            .podman()
            .args(["ps", "-a", "--format", "json", "--filter"])
            .arg(format!("label=io.podman.compose.project={}", self.name))
            .output()
            .unwrap();
        assert!(output.status.success(), "podman ps: {}", text(&output));
        let list: Value = serde_json::from_slice(&output.stdout).unwrap();
        let mut containers: Vec<Container> = list
            .as_array()
            .unwrap()
            .iter()
            .map(|c| Container {
                name: c["Names"][0].as_str().unwrap().to_owned(),
                service: c["Labels"]["com.docker.compose.service"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        containers.sort_by(|a, b| a.service.cmp(&b.service));
        containers
    }

    fn container(&self, service: &str) -> Container {
        self.containers().into_iter().find(|c| c.service == service).unwrap_or_else(|| panic!("no {service} container"))
    }

    fn logs(&self, container: &str) -> String {
        text(&self.podman().args(["logs", container]).output().unwrap())
    }

    fn inspect(&self, container: &str, format: &str) -> String {
        let output = self.podman().args(["inspect", "--format", format, container]).output().unwrap();
        String::from_utf8_lossy(&output.stdout).trim().to_owned()
    }

    /// Runs every container's compose healthcheck until each passed once; returns how many.
    fn wait_healthy(&self, label: &str) -> usize {
        let started = Instant::now();
        let containers = self.containers();
        let mut pending: Vec<&Container> = containers.iter().collect();
        while !pending.is_empty() {
            pending.retain(|c| {
                let status = self.podman().args(["healthcheck", "run", &c.name]).output().unwrap().status;
                !status.success()
            });
            if pending.is_empty() {
                break;
            }
            if started.elapsed() > HEALTHY_WITHIN {
                let mut report = String::new();
                for c in &pending {
                    let logs = self.logs(&c.name);
                    let tail: Vec<&str> = logs.lines().rev().take(15).collect();
                    let tail: Vec<&str> = tail.into_iter().rev().collect();
                    report.push_str(&format!("--- {} (unhealthy), its log's end:\n{}\n", c.service, tail.join("\n")));
                }
                panic!("{label}: {} services not healthy within {HEALTHY_WITHIN:?}:\n{report}", pending.len());
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        eprintln!("containers: {label}: {} services healthy in {}", containers.len(), secs(started.elapsed()));
        containers.len()
    }

    fn broker_url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.broker_port)
    }

    fn remove(&mut self) {
        if !self.removed {
            self.removed = true;
            let output = self.compose().args(["down", "-v", "-t", "2"]).output();
            if let Ok(output) = output
                && !output.status.success()
            {
                eprintln!("containers: down -v failed: {}", text(&output));
            }
        }
    }
}

impl Drop for Project {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `podman-compose config` of the shipped file as JSON (podman-compose's venv has PyYAML).
fn shipped_config(tools: &Tools) -> Value {
    let output = Command::new(&tools.podman_compose)
        .env("CONTAINERS_CONF", &tools.containers_conf)
        .current_dir(repo())
        .arg("-f")
        .arg(repo().join("docker-compose.yml"))
        .arg("config")
        .output()
        .unwrap();
    assert!(output.status.success(), "podman-compose config: {}", text(&output));
    let python = tools.podman_compose.parent().unwrap().join("python");
    let mut child = Command::new(python)
        .args(["-c", "import sys, yaml, json; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&output.stdout).unwrap();
    let json = child.wait_with_output().unwrap();
    assert!(json.status.success(), "cannot read the compose config as YAML");
    serde_json::from_slice(&json.stdout).unwrap()
}

/// The override: free published ports, and quiet binary sensors (see the module's comment).
fn override_file(config: &Value, broker_port: u16, dashboard_port: u16) -> String {
    let services = config["services"].as_object().unwrap();
    assert!(services.contains_key("broker") && services.contains_key("dashboard"));
    let mut out = String::from("# Written by crates/mqtt-home/tests/containers.rs\nservices:\n");
    out.push_str(&format!("  broker:\n    ports: !override\n      - \"127.0.0.1:{broker_port}:1883\"\n"));
    out.push_str(&format!("  dashboard:\n    ports: !override\n      - \"127.0.0.1:{dashboard_port}:8080\"\n"));
    for (name, service) in services {
        let command: Vec<&str> =
            service["command"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if matches!(command.first(), Some(&("door-sensor" | "window-sensor" | "motion-sensor"))) {
            let mut quiet: Vec<String> = command.iter().map(|a| serde_json::to_string(a).unwrap()).collect();
            quiet.push("\"--no-simulate\"".into());
            out.push_str(&format!("  {name}:\n    command: [{}]\n", quiet.join(", ")));
        }
    }
    out
}

/// Each daemon service's device id (its `--id`).
fn daemon_ids(config: &Value) -> BTreeMap<String, String> {
    let mut ids = BTreeMap::new();
    for (name, service) in config["services"].as_object().unwrap() {
        if service.get("profiles").is_some() {
            continue;
        }
        let command: Vec<&str> =
            service["command"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        if let Some(id) = command.iter().skip_while(|a| **a != "--id").nth(1) {
            ids.insert(name.clone(), (*id).to_owned());
        }
    }
    ids
}

/// Leftovers of earlier runs killed before their cleanup (their test process is gone).
fn remove_stale_projects(tools: &Tools) {
    let podman = || {
        let mut c = Command::new("podman");
        c.env("CONTAINERS_CONF", &tools.containers_conf);
        c
    };
    let Ok(output) =
        podman().args(["ps", "-a", "--format", "{{ index .Labels \"io.podman.compose.project\" }}"]).output()
    else {
        return;
    };
    let mut projects: Vec<String> = String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter(|p| p.starts_with("mqtthome-test-"))
        .map(str::to_owned)
        .collect();
    projects.sort();
    projects.dedup();
    for project in projects {
        let pid = project.trim_start_matches("mqtthome-test-").split('-').next().unwrap_or_default();
        if Path::new("/proc").join(pid).exists() {
            continue;
        }
        eprintln!("containers: removing {project}, left by a test run that did not clean up");
        let label = format!("label=io.podman.compose.project={project}");
        let ids = podman().args(["ps", "-aq", "--filter", &label]).output().unwrap();
        let ids: Vec<String> = String::from_utf8_lossy(&ids.stdout).split_whitespace().map(str::to_owned).collect();
        if !ids.is_empty() {
            let _ = podman().args(["rm", "-f", "-t", "1"]).args(&ids).output();
        }
        let volumes = podman().args(["volume", "ls", "-q", "--filter", &label]).output().unwrap();
        for volume in String::from_utf8_lossy(&volumes.stdout).split_whitespace() {
            let _ = podman().args(["volume", "rm", "-f", volume]).output();
        }
        let _ = podman().args(["network", "rm", "-f", &format!("{project}_default")]).output();
    }
}

fn state_is(state: &'static str) -> impl Fn(&[u8]) -> bool {
    move |p| serde_json::from_slice::<Value>(p).is_ok_and(|v| v["state"] == state)
}

/// A plain HTTP/1.0 exchange with the dashboard: (status, headers, body).
fn http(port: u16, method: &str, path: &str, headers: &[(&str, &str)], body: &str) -> (u16, String, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap_or_else(|e| panic!("dashboard port {port}: {e}"));
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut request =
        format!("{method} {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {}\r\n", body.len());
    for (name, value) in headers {
        request.push_str(&format!("{name}: {value}\r\n"));
    }
    request.push_str("\r\n");
    request.push_str(body);
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, head.to_owned(), body.to_owned())
}

/// Logs in to the dashboard with `token`; the session cookie, or the refusal's status.
fn dashboard_login(port: u16, token: &str) -> Result<String, u16> {
    let (status, _, page) = http(port, "GET", "/login", &[], "");
    assert_eq!(status, 200, "GET /login: {page}");
    let csrf = page
        .split("name=\"csrf-token\" content=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .expect("the login page carries its CSRF token");
    let body = serde_json::json!({ "password": token }).to_string();
    let (status, head, _) =
        http(port, "POST", "/login", &[("content-type", "application/json"), ("x-csrf-token", csrf)], &body);
    if status != 200 {
        return Err(status);
    }
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: ").or_else(|| l.strip_prefix("Set-Cookie: ")))
        .and_then(|c| c.split(';').next())
        .expect("a login sets a session cookie");
    Ok(cookie.to_owned())
}

/// The panel's events in the recorder's history, as the dashboard serves them (oldest first).
fn dashboard_history(port: u16, cookie: &str) -> Vec<Value> {
    let (status, _, body) =
        http(port, "GET", "/api/history?since=24h&kind=panel&limit=1000", &[("cookie", cookie)], "");
    assert_eq!(status, 200, "GET /api/history: {body}");
    let value: Value = serde_json::from_str(&body).unwrap();
    value["rows"].as_array().cloned().unwrap_or_default()
}

/// `scenarios/intrusion.toml` as the compose home needs it: the panel there has the shipped exit
/// delay (config/security-controller.toml), not the demo's 5 s the scenario waits for.
fn intrusion_scenario(dir: &Path) -> PathBuf {
    let shipped = std::fs::read_to_string(repo().join("scenarios/intrusion.toml")).unwrap();
    let config: toml::Value =
        toml::from_str(&std::fs::read_to_string(repo().join("config/security-controller.toml")).unwrap()).unwrap();
    let exit_delay = config["panel"]["exit_delay_s"]["away"].as_integer().unwrap_or(60);
    let step = r#"json = { state = "armed_away" }, within_s = 10 }"#;
    assert!(shipped.contains(step), "scenarios/intrusion.toml changed: no `{step}` step");
    let adapted =
        shipped.replace(step, &format!(r#"json = {{ state = "armed_away" }}, within_s = {} }}"#, exit_delay + 15));
    let path = dir.join("intrusion.toml");
    std::fs::write(&path, adapted).unwrap();
    path
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_compose_file_runs_in_podman_containers() {
    let test_started = Instant::now();
    let Some(tools) = setup() else { return };
    remove_stale_projects(&tools);
    let config = shipped_config(&tools);
    let ids = daemon_ids(&config);
    assert!(ids.len() >= 12, "expected a service per daemon, found {ids:?}");

    let temp = tempfile::tempdir().unwrap();
    let (broker_port, dashboard_port) = (testkit::free_port(), testkit::free_port());
    let override_path = temp.path().join("override.yml");
    std::fs::write(&override_path, override_file(&config, broker_port, dashboard_port)).unwrap();
    let mut project = Project {
        name: format!("mqtthome-test-{}-{}", std::process::id(), fastrand::u32(..)),
        tools,
        files: vec![repo().join("docker-compose.yml"), override_path],
        broker_port,
        removed: false,
        temp,
    };
    let url = project.broker_url();
    let operator_password = dotenv("MQTT_PASSWORD_OPERATOR");
    let token = dotenv("DASHBOARD_TOKEN");

    // 1. Up; every service healthy by its own healthcheck, the broker included; every daemon online.
    let up_first = project.run(&["up", "-d"]);
    eprintln!("containers: up (new project: network, volumes, {} containers) {}", ids.len() + 1, secs(up_first));
    let healthy = project.wait_healthy("first up");
    assert_eq!(healthy, ids.len() + 1, "a container per service: {:?}", project.containers());
    let mut probe = Probe::connect_as(&url, "containers-test-operator", Some(("operator", &operator_password)))
        .await
        .expect("the operator connects through the published broker port");
    probe.subscribe("home/#").await.unwrap();
    for (service, id) in &ids {
        let topic = format!("home/devices/{id}/availability");
        if let Err(e) = probe.expect(&topic, |p| p == b"online", WITHIN).await {
            let log = project.logs(&project.container(service).name);
            panic!("{service} is not online: {e:#}\nits log:\n{log}");
        }
    }
    eprintln!("containers: {} daemons online", ids.len());

    // 2. The ACL: the front door's user cannot report the back door (MQTT 3.1.1 acknowledges and
    //    drops a denied publish, so the witness is that nobody receives it).
    let front_password = dotenv("MQTT_PASSWORD_FRONT");
    let mut front = Probe::connect_as(&url, "containers-test-front", Some(("front", &front_password))).await.unwrap();
    let forged = r#"{"state":"OPEN","device_id":"back","forged":"containers-test"}"#;
    front.publish("home/security/door/back", forged, false).await.unwrap();
    probe
        .expect_none("home/security/door/back", |p| p == forged.as_bytes(), Duration::from_secs(2))
        .await
        .expect("the broker delivered a door sensor's publish on another door's topic");
    let own = r#"{"state":"CLOSED","device_id":"front","ts":"2026-01-01T00:00:00.000Z"}"#;
    front.publish("home/security/door/front", own, false).await.unwrap();
    probe.expect("home/security/door/front", |p| p == own.as_bytes(), WITHIN).await.unwrap();
    drop(front);
    let broker = project.container("broker");
    if project.logs(&broker.name).contains("Denied PUBLISH from containers-test-front") {
        eprintln!("containers: the broker log shows the denial");
    } else {
        eprintln!(
            "containers: NOTE: no \"Denied PUBLISH\" in `podman logs {}`: Mosquitto 2.0 logs denials at debug \
             level, which mosquitto/mosquitto.conf does not enable",
            broker.name
        );
    }

    // 3. The dashboard, on its published port: nothing without the token's login, everything with it.
    let (status, _, _) = http(dashboard_port, "GET", "/api/home", &[], "");
    assert_eq!(status, 401, "GET /api/home without a login");
    assert_eq!(dashboard_login(dashboard_port, "not-the-dashboard-token"), Err(401), "a wrong token was accepted");
    let cookie = dashboard_login(dashboard_port, &token).expect("the DASHBOARD_TOKEN login");
    let (status, _, body) = http(dashboard_port, "GET", "/api/home", &[("cookie", &cookie)], "");
    assert_eq!(status, 200, "GET /api/home with the session: {body}");
    eprintln!("containers: the dashboard refuses without its token (401) and answers with it");

    // 4. The intrusion scenario, as the operator, through the published port; the siren sounds.
    let scenario = intrusion_scenario(project.temp.path());
    let scenario_started = Instant::now();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_mqtt-home"))
        .args(["--broker", &url, "--username", "operator", "scenario"])
        .arg(&scenario)
        .env("MQTT_PASSWORD", &operator_password)
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert!(output.status.success(), "mqtt-home scenario intrusion failed:\n{}", text(&output));
    eprintln!("containers: intrusion scenario passed in {}", secs(scenario_started.elapsed()));

    // 5. Arm (home) for the persistence check; meanwhile a daemon killed with SIGKILL comes back
    //    by its restart policy.
    let statuses = probe.count("home/security/status");
    probe.publish("home/security/panel/set", r#"{"action":"ARM_HOME"}"#, false).await.unwrap();
    let victim = project.container("hall");
    let availability = format!("home/devices/{}/availability", ids["hall"]);
    let before = probe.count(&availability);
    let killed = Instant::now();
    // A crash (or the OOM killer): SIGKILL to the container's process from outside. Not `podman
    // kill`, which, like `docker kill`, counts as stopping it by hand: unless-stopped then leaves
    // it stopped (checked on podman 4.3).
    let pid = project.inspect(&victim.name, "{{.State.Pid}}");
    let status = Command::new("kill").args(["-KILL", &pid]).status().unwrap();
    assert!(status.success(), "kill -KILL {pid} ({})", victim.name);
    probe
        .expect_after(before, &availability, |p| p == b"online", WITHIN)
        .await
        .expect("the SIGKILLed daemon was not restarted (restart: unless-stopped)");
    let said_offline = probe.seen(&availability)[before..].iter().any(|p| p == b"offline");
    assert_eq!(probe.seen(&availability).last().map(Vec::as_slice), Some(&b"online"[..]), "hall's last word");
    let restarts = project.inspect(&victim.name, "{{.RestartCount}}");
    eprintln!(
        "containers: hall SIGKILLed ({}), restarted by its policy (RestartCount {restarts}), online again in {}",
        if said_offline { "its Last Will said offline" } else { "no offline seen" },
        secs(killed.elapsed())
    );
    let exit_delay = Duration::from_secs(60);
    probe
        .expect_after(statuses, "home/security/status", state_is("armed_home"), exit_delay)
        .await
        .expect("the panel arms (home)");
    let history_before = dashboard_history(dashboard_port, &cookie);
    assert!(!history_before.is_empty(), "the recorder recorded nothing");
    drop(probe);

    // 6. Down (volumes kept), in its two halves so that the logs can be read in between:
    //    podman-compose 1.6's `down` is its `stop` (`podman stop -t <stop_grace_period>` for every
    //    container at once, the broker too) followed by removing them one by one.
    //    Per container: its exit code, and the time from SIGTERM (its own log line) to its exit.
    let stop = project.run(&["stop"]);
    let mut exits = BTreeMap::new();
    for c in project.containers() {
        let code: i64 = project.inspect(&c.name, "{{.State.ExitCode}}").parse().unwrap_or(-1);
        let finished: i128 = project.inspect(&c.name, "{{.State.FinishedAt.UnixNano}}").parse().unwrap_or(0);
        let logged = text(&project.podman().args(["logs", "--timestamps", &c.name]).output().unwrap());
        // Mosquitto says "terminating"; the daemons "terminated (SIGTERM): shutting down".
        let marker = if c.service == "broker" { "terminating" } else { "terminated (SIGTERM)" };
        let term = logged.lines().rev().find_map(|line| {
            let (at, message) = line.split_once(' ')?;
            message.contains(marker).then(|| humantime::parse_rfc3339(at).ok()).flatten()
        });
        let shutdown = term.map(|t| (finished - t.duration_since(UNIX_EPOCH).unwrap().as_nanos() as i128) as f64 / 1e9);
        exits.insert(c.service.clone(), (code, shutdown, marker));
    }
    let removed = project.run(&["down"]);
    let down = stop + removed;
    assert!(project.containers().is_empty(), "down left containers: {:?}", project.containers());
    let mut report = Vec::new();
    let mut problems = Vec::new();
    for (service, (code, shutdown, marker)) in &exits {
        match shutdown {
            Some(d) => report.push(format!("{service} {code} in {:.0} ms", d.max(0.0) * 1e3)),
            None => report.push(format!("{service} {code} (no \"{marker}\" line)")),
        }
        if *code == 137 {
            problems.push(format!("{service} was SIGKILLed (137) after stop_grace_period"));
        } else if *code != 0 {
            problems.push(format!("{service} exited {code}"));
        }
        match shutdown {
            Some(d) if *d > SHUTDOWN_WITHIN.as_secs_f64() => {
                problems.push(format!("{service} took {d:.1} s from SIGTERM to exit"));
            }
            None if service != "broker" => problems.push(format!("{service}: no \"{marker}\" in its log")),
            _ => {}
        }
    }
    eprintln!(
        "containers: down {} = stop {} + remove {} ({}); exit code and SIGTERM to exit: {}",
        secs(down),
        secs(stop),
        secs(removed),
        if down <= Duration::from_secs(5) { "under 5 s" } else { "over 5 s" },
        report.join(", ")
    );

    // 7. Up again: the panel is still armed and the history is still there.
    let up_again = project.run(&["up", "-d"]);
    eprintln!("containers: up (existing volumes) {}", secs(up_again));
    project.wait_healthy("second up");
    let mut probe = Probe::connect_as(&url, "containers-test-operator-2", Some(("operator", &operator_password)))
        .await
        .expect("the operator connects after up");
    probe.subscribe("home/security/status").await.unwrap();
    probe
        .expect("home/security/status", state_is("armed_home"), WITHIN)
        .await
        .expect("the panel is armed after down/up");
    let volume = format!("{}_panel-state", project.name);
    let mountpoint =
        text(&project.podman().args(["volume", "inspect", "--format", "{{.Mountpoint}}", &volume]).output().unwrap());
    let panel =
        std::fs::read_to_string(Path::new(mountpoint.trim()).join("panel.json")).expect("panel.json in its volume");
    let saved: Value = serde_json::from_str(&panel).unwrap();
    assert!(saved["arm"]["state"] == "armed" && saved["arm"]["mode"] == "home", "panel.json after down/up: {panel}");
    let cookie = dashboard_login(dashboard_port, &token).expect("the DASHBOARD_TOKEN login after up");
    let history_after = dashboard_history(dashboard_port, &cookie);
    assert!(
        history_after.len() >= history_before.len() && history_after.first() == history_before.first(),
        "the recorder's history did not survive down/up: {} rows before, {} after",
        history_before.len(),
        history_after.len()
    );
    eprintln!(
        "containers: after down/up the panel is armed_home and the history kept its {} rows ({} now)",
        history_before.len(),
        history_after.len()
    );

    // 8. The siren's latency through the compose broker, as a user's tool sees it: armed home, the
    //    kitchen window (perimeter: no entry delay) opens; from the operator's publish to the
    //    panel's siren command, and to the siren saying ON, each received by the operator.
    probe.subscribe("home/control/alarm").await.unwrap();
    probe.subscribe("home/security/alarm").await.unwrap();
    let (commands, states) = (probe.count("home/control/alarm"), probe.count("home/security/alarm"));
    let open = r#"{"state":"OPEN","device_id":"kitchen-window","ts":"2026-01-01T00:00:00.000Z"}"#;
    let opened = Instant::now();
    probe.publish("home/security/window/kitchen-window", open, false).await.unwrap();
    probe.expect_after(commands, "home/control/alarm", state_is("ON"), WITHIN).await.expect("the panel's siren ON");
    let commanded = opened.elapsed();
    probe.expect_after(states, "home/security/alarm", state_is("ON"), WITHIN).await.expect("the siren's ON");
    let sounded = opened.elapsed();
    eprintln!(
        "containers: siren latency through the compose broker (debug build): window OPEN -> home/control/alarm ON \
         {:.1} ms -> home/security/alarm ON {:.1} ms",
        commanded.as_secs_f64() * 1e3,
        sounded.as_secs_f64() * 1e3
    );
    drop(probe);

    project.remove();
    eprintln!("containers: whole test {}", secs(test_started.elapsed()));

    // Checked last, so that everything above is known whatever happens here.
    assert!(problems.is_empty(), "down: {}\n(every container: {})", problems.join("; "), report.join(", "));
    assert!(
        stop < STOP_WITHIN,
        "down: stopping took {} (under {} expected): {}",
        secs(stop),
        secs(STOP_WITHIN),
        report.join(", ")
    );
}
