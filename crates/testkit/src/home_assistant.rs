//! A real Home Assistant Core, started by a test, as a client of the test's broker.
//!
//! What: [`HomeAssistant::start`] runs `hass` (Home Assistant Core 2024.1.6, from the venv that
//! `ha/install.sh` builds) on a free port of 127.0.0.1 with a config dir of its own, onboards an
//! owner through the REST API (`/api/onboarding/users`, then `/auth/token`), adds the MQTT
//! integration through the config-entries flow, pointed at `127.0.0.1:<broker_port>` (discovery
//! on, prefix `homeassistant`), and returns once the integration's entry is `loaded` and HA has
//! announced itself with `online` on `homeassistant/status`. The test then reads entities
//! ([`states`](HomeAssistant::states), [`wait_for_state`](HomeAssistant::wait_for_state)), calls
//! services, renders templates (the device and entity registries are reachable that way, e.g.
//! `device_attr(device_id('binary_sensor.x'), 'manufacturer')`), reads HA's log and restarts it.
//!
//! Why: the discovery configs, state payloads and command payloads of the home are a contract
//! with Home Assistant, and the only faithful check of that contract is the real program reading
//! them off a real broker. Unit tests of the JSON cannot tell that HA ignores `ARMED_AWAY`, or
//! that it subscribes to a state topic only some time after the config arrives.
//!
//! How it is kept honest and quick:
//! - The venv is found at `$MQTT_HOME_HA_VENV` or `~/.cache/mqtt-home/ha-2024.1.6`. Missing, or
//!   built from another `ha/requirements.txt`, is an **error** telling to run `bash ha/install.sh`
//!   (CI does, in `.ci/run`): a test that needs HA fails rather than skips.
//! - HA runs with `PIP_NO_INDEX=1`: every requirement of the integrations it loads is pinned in
//!   `ha/requirements.txt`, and were one missing, HA's attempt to pip-install it fails at once
//!   instead of reaching for the network. [`start`](HomeAssistant::start) also fails if the log
//!   shows any install attempt.
//! - The configuration is lean: `homeassistant:` basics, `http:` on 127.0.0.1, `api:`, `config:`
//!   (config entries over REST), `onboarding:` and `logger:` at `info`. No `default_config`, no
//!   frontend, no recorder database. MQTT itself is a config entry, as a user would add it.
//! - Root is fine: HA 2024.1 runs as root without a word (unlike Mosquitto, it drops nothing).
//! - Cost, measured on a 2-core machine: the API answers ~2 s after spawn; HA's MQTT client then
//!   waits 1 s before it subscribes and 2 s of discovery quiet before its `online`, so `start`
//!   takes ~5 s and [`restart`](HomeAssistant::restart) ~7 s (~3 s of it the graceful stop).
//!   ~130 MB RSS. Its `online` is the moment devices re-send non-retained discovery configs.
//! - Each run logs to its own file in the config dir; [`log`](HomeAssistant::log) is all of them
//!   in order. On drop, HA gets SIGTERM, then SIGKILL after 5 s, and the config dir is removed,
//!   except when the test is panicking (or `start` failed): then it is kept and its path and the
//!   end of HA's log go to stderr.
//!
//! ```no_run
//! # async fn example() -> anyhow::Result<()> {
//! use std::time::Duration;
//! let broker = testkit::Mosquitto::start()?;
//! let mut ha = testkit::HomeAssistant::start(broker.port()).await?;
//! // ... publish a retained discovery config and state, then:
//! let door = ha.wait_for_state("binary_sensor.hall_door", |s| s["state"] == "on", Duration::from_secs(10)).await?;
//! assert_eq!(door["attributes"]["device_class"], "door");
//! ha.call_service("alarm_control_panel", "alarm_disarm",
//!     serde_json::json!({"entity_id": "alarm_control_panel.home_panel", "code": "1234"})).await?;
//! ha.restart().await?;
//! assert!(ha.problems("homeassistant.components.mqtt").is_empty(), "{}", ha.log());
//! # Ok(()) }
//! ```

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper::{Method, Request, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde_json::{Value, json};

use crate::Probe;

/// The Home Assistant Core release the harness runs (pinned in `ha/requirements.txt`).
pub const VERSION: &str = "2024.1.6";

/// Where the venv is, when not at the default place.
pub const VENV_VAR: &str = "MQTT_HOME_HA_VENV";

/// The file `ha/install.sh` writes into the venv: the sha256 of the requirements it was built from.
const STAMP: &str = ".mqtt-home-requirements.sha256";
const REQUIREMENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../ha/requirements.txt");

/// From spawn to an answering API (generous: a loaded 2-core CI machine).
const API_TIMEOUT: Duration = Duration::from_secs(90);
/// From the flow's end to the entry's `loaded`, and from then to HA's `online`.
const MQTT_TIMEOUT: Duration = Duration::from_secs(30);
/// One REST request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// A graceful stop (HA writes `.storage` on the way out).
const STOP_TIMEOUT: Duration = Duration::from_secs(30);

const USER: &str = "mqtt-home";
const PASSWORD: &str = "mqtt-home-test-password";

/// A Home Assistant Core process on a free port, onboarded, with the MQTT integration loaded.
pub struct HomeAssistant {
    venv: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    broker_port: u16,
    child: Option<Child>,
    /// How many times `hass` was spawned; run `n` logs to `home-assistant.run<n>.log`.
    runs: u32,
    started_in: Duration,
    tokens: Mutex<Tokens>,
    http: Client<HttpConnector, Full<Bytes>>,
}

#[derive(Clone, Default)]
struct Tokens {
    access: String,
    refresh: String,
}

enum Body {
    Empty,
    Json(Value),
    Form(String),
}

/// The venv `HomeAssistant` runs: `$MQTT_HOME_HA_VENV`, else `~/.cache/mqtt-home/ha-2024.1.6`.
pub fn venv() -> PathBuf {
    if let Some(dir) = std::env::var_os(VENV_VAR).filter(|v| !v.is_empty()) {
        return dir.into();
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/root"), PathBuf::from);
    home.join(".cache/mqtt-home").join(format!("ha-{VERSION}"))
}

/// An error unless the venv holds `hass`, built from this checkout's `ha/requirements.txt`.
pub fn check_venv(venv: &Path) -> anyhow::Result<()> {
    let run = "run `bash ha/install.sh` (CI does, in .ci/run)";
    let hass = venv.join("bin/hass");
    if !hass.is_file() {
        bail!(
            "Home Assistant {VERSION} is not installed: no {} (the venv is ${VENV_VAR} or ~/.cache/mqtt-home/ha-{VERSION}); {run}",
            hass.display()
        );
    }
    let built_from = std::fs::read_to_string(venv.join(STAMP)).unwrap_or_default();
    let out = Command::new("sha256sum").arg(REQUIREMENTS).output().context("cannot run sha256sum")?;
    let wanted = String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or_default().to_owned();
    if !out.status.success() || wanted.is_empty() {
        bail!("cannot hash {REQUIREMENTS}: {}", String::from_utf8_lossy(&out.stderr));
    }
    if built_from.trim() != wanted {
        bail!(
            "the Home Assistant venv {} was not built from this ha/requirements.txt (or not finished); {run}",
            venv.display()
        );
    }
    Ok(())
}

impl HomeAssistant {
    /// Starts HA against the broker on `127.0.0.1:broker_port` and returns once it is onboarded,
    /// its MQTT entry is loaded and it has published `online` on `homeassistant/status` (so its
    /// discovery subscription is in place and retained configs have been read).
    pub async fn start(broker_port: u16) -> anyhow::Result<HomeAssistant> {
        HomeAssistant::start_with(broker_port, "").await
    }

    /// Like [`start`](Self::start), with `extra` appended to `configuration.yaml`: top-level YAML,
    /// e.g. YAML-configured `mqtt:` entities, or a `logger:` of the test's own, which then replaces
    /// the harness's `logger: {default: info}`. The other sections the harness writes
    /// (`homeassistant`, `http`, `api`, `config`, `onboarding`) cannot be given again.
    pub async fn start_with(broker_port: u16, extra: &str) -> anyhow::Result<HomeAssistant> {
        let venv = venv();
        check_venv(&venv)?;
        let keys: Vec<&str> = extra
            .lines()
            .filter(|l| l.starts_with(|c: char| c.is_ascii_alphabetic()))
            .filter_map(|l| l.split_once(':').map(|(key, _)| key.trim()))
            .collect();
        if let Some(taken) = keys.iter().find(|k| ["homeassistant", "http", "api", "config", "onboarding"].contains(k))
        {
            bail!("the harness writes `{taken}:` itself; HA would silently keep only one of the two");
        }
        let logger = if keys.contains(&"logger") { "" } else { "logger:\n  default: info\n" };
        let dir = tempfile::Builder::new().prefix("mqtt-home-ha-").tempdir()?;
        let port = crate::free_port();
        let config = format!(
            "# Written by testkit::HomeAssistant: the least that serves the REST API and MQTT.\n\
             homeassistant:\n  name: mqtt-home test\n  latitude: 48.85\n  longitude: 2.35\n  \
             elevation: 35\n  unit_system: metric\n  time_zone: UTC\n  currency: EUR\n  country: FR\n\
             http:\n  server_host: 127.0.0.1\n  server_port: {port}\n\
             api:\nconfig:\nonboarding:\n\
             {logger}{extra}\n"
        );
        std::fs::write(dir.path().join("configuration.yaml"), config)?;
        let http = Client::builder(TokioExecutor::new()).pool_max_idle_per_host(0).build_http();
        let mut ha = HomeAssistant {
            venv,
            dir,
            port,
            broker_port,
            child: None,
            runs: 0,
            started_in: Duration::ZERO,
            tokens: Mutex::default(),
            http,
        };
        if let Err(e) = ha.boot(true).await {
            return Err(ha.failed(e));
        }
        Ok(ha)
    }

    /// Stops HA gracefully (SIGTERM; it writes `.storage` and says `offline`) and starts it again
    /// with the same config dir and port; the token stays valid. Returns once the entry is loaded
    /// and HA has said `online` again, with how long that took (the stop included).
    pub async fn restart(&mut self) -> anyhow::Result<Duration> {
        let t0 = Instant::now();
        self.stop().await?;
        if let Err(e) = self.boot(false).await {
            return Err(self.failed(e));
        }
        self.started_in = t0.elapsed();
        Ok(self.started_in)
    }

    /// Stops HA gracefully (SIGTERM, waiting for it to exit); an error if it had to be killed.
    /// [`restart`](Self::restart) starts it again.
    pub async fn stop(&mut self) -> anyhow::Result<()> {
        let Some(mut child) = self.child.take() else { return Ok(()) };
        let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let _ = child.kill();
        let _ = child.wait();
        bail!("Home Assistant did not stop within {STOP_TIMEOUT:?} of SIGTERM and was killed")
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    pub fn broker_port(&self) -> u16 {
        self.broker_port
    }

    /// The config dir (`configuration.yaml`, `.storage/`, the logs).
    pub fn config_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The owner's current access token (for a request of the test's own).
    pub fn token(&self) -> String {
        self.tokens.lock().unwrap().access.clone()
    }

    /// How long the last [`start`](Self::start) or [`restart`](Self::restart) took.
    pub fn started_in(&self) -> Duration {
        self.started_in
    }

    /// Every entity's state object (`entity_id`, `state`, `attributes`, `last_changed`, …).
    pub async fn states(&self) -> anyhow::Result<Vec<Value>> {
        Ok(serde_json::from_value(self.get("/api/states").await?)?)
    }

    /// One entity's state object, or `None` if HA has no such entity.
    pub async fn state(&self, entity_id: &str) -> anyhow::Result<Option<Value>> {
        let (status, body) = self.request(Method::GET, &format!("/api/states/{entity_id}"), Body::Empty, true).await?;
        match status {
            StatusCode::NOT_FOUND => Ok(None),
            s if s.is_success() => Ok(Some(serde_json::from_slice(&body)?)),
            s => bail!("GET /api/states/{entity_id}: {s}: {}", String::from_utf8_lossy(&body)),
        }
    }

    /// Polls `entity_id` every 100 ms until its state object satisfies `pred` and returns it. The
    /// error shows the last state seen, or, if the entity never appeared, the entities of its domain.
    pub async fn wait_for_state(
        &self,
        entity_id: &str,
        pred: impl Fn(&Value) -> bool,
        timeout: Duration,
    ) -> anyhow::Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let last = self.state(entity_id).await?;
            if let Some(state) = &last
                && pred(state)
            {
                return Ok(state.clone());
            }
            if Instant::now() >= deadline {
                if let Some(state) = last {
                    bail!("{entity_id}: no matching state within {timeout:?}; the last seen: {state}");
                }
                let domain = entity_id.split('.').next().unwrap_or_default();
                let known: Vec<String> = self
                    .states()
                    .await?
                    .iter()
                    .filter_map(|s| s["entity_id"].as_str())
                    .filter(|id| id.starts_with(&format!("{domain}.")))
                    .map(str::to_owned)
                    .collect();
                bail!("{entity_id} did not appear within {timeout:?}; the {domain} entities: {known:?}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Calls a service (`POST /api/services/<domain>/<service>` with `data`); returns the states
    /// that changed while it ran.
    pub async fn call_service(&self, domain: &str, service: &str, data: Value) -> anyhow::Result<Vec<Value>> {
        Ok(serde_json::from_value(self.post(&format!("/api/services/{domain}/{service}"), data).await?)?)
    }

    /// Renders a Jinja template in HA (`POST /api/template`): the way to the registries, e.g.
    /// `{{ device_attr(device_id('binary_sensor.x'), 'model') }}` or `{{ integration_entities('mqtt') }}`.
    pub async fn render_template(&self, template: &str) -> anyhow::Result<String> {
        let (status, body) =
            self.request(Method::POST, "/api/template", Body::Json(json!({ "template": template })), true).await?;
        let text = String::from_utf8_lossy(&body).into_owned();
        if !status.is_success() {
            bail!("POST /api/template: {status}: {text}");
        }
        Ok(text)
    }

    /// `GET` any REST path (`/api/...`) as the owner; the JSON body of a 2xx answer.
    pub async fn get(&self, path: &str) -> anyhow::Result<Value> {
        self.json(Method::GET, path, Body::Empty).await
    }

    /// `POST` JSON to any REST path as the owner; the JSON body of a 2xx answer.
    pub async fn post(&self, path: &str, body: Value) -> anyhow::Result<Value> {
        self.json(Method::POST, path, Body::Json(body)).await
    }

    /// HA's log: every run's, in order (each begins with a `--- Home Assistant run N ---` line).
    pub fn log(&self) -> String {
        (1..=self.runs)
            .map(|n| {
                let text = std::fs::read_to_string(self.log_path(n)).unwrap_or_default();
                format!("--- Home Assistant run {n} ---\n{text}")
            })
            .collect()
    }

    /// The WARNING, ERROR and CRITICAL records of HA's log whose logger starts with
    /// `logger_prefix` (`""` for all), each with its continuation lines (tracebacks).
    pub fn problems(&self, logger_prefix: &str) -> Vec<String> {
        problems(&self.log(), logger_prefix)
    }

    fn log_path(&self, run: u32) -> PathBuf {
        self.dir.path().join(format!("home-assistant.run{run}.log"))
    }

    /// Spawns `hass`, waits for its API, onboards and adds MQTT the first time, and waits for the
    /// entry to be loaded and for HA's `online`.
    async fn boot(&mut self, first: bool) -> anyhow::Result<()> {
        let t0 = Instant::now();
        // Subscribed before the spawn, so the `online` of this run cannot be missed.
        let broker = format!("mqtt://127.0.0.1:{}", self.broker_port);
        let watcher = format!("testkit-ha-{}-{}-{}", std::process::id(), self.port, self.runs + 1);
        let mut probe = Probe::connect(&broker, &watcher)
            .await
            .with_context(|| format!("cannot reach the broker at {broker} that Home Assistant is to use"))?;
        probe.subscribe("homeassistant/status").await?;

        self.spawn()?;
        self.wait_for_api().await?;
        if first {
            self.onboard().await.context("onboarding failed")?;
            self.add_mqtt().await.context("adding the MQTT integration failed")?;
        } else {
            // HA keeps auth in .storage; refresh only if the token has expired meanwhile.
            self.get("/api/").await.context("the token did not survive the restart")?;
        }
        self.wait_for_mqtt_entry().await?;
        probe
            .expect("homeassistant/status", |p| p == b"online", MQTT_TIMEOUT)
            .await
            .context("Home Assistant did not publish its birth message")?;
        let log = self.log();
        let installs: Vec<&str> =
            log.lines().filter(|l| l.contains("Attempting install") || l.contains("Unable to install")).collect();
        if !installs.is_empty() {
            bail!("Home Assistant tried to install packages (add them to ha/requirements.txt): {installs:#?}");
        }
        self.started_in = t0.elapsed();
        Ok(())
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        self.runs += 1;
        let console = File::create(self.dir.path().join(format!("console.run{}.log", self.runs)))?;
        let hass = self.venv.join("bin/hass");
        let child = Command::new(&hass)
            .arg("--config")
            .arg(self.dir.path())
            .arg("--log-file")
            .arg(self.log_path(self.runs))
            .arg("--log-no-color")
            // Every requirement is in the venv; were one not, fail instead of downloading it.
            .env("PIP_NO_INDEX", "1")
            .stdin(Stdio::null())
            .stdout(console.try_clone()?)
            .stderr(console)
            .spawn()
            .with_context(|| format!("cannot run {}", hass.display()))?;
        self.child = Some(child);
        Ok(())
    }

    async fn wait_for_api(&mut self) -> anyhow::Result<()> {
        let deadline = Instant::now() + API_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
                self.child = None;
                bail!("hass exited ({status}) before its API answered");
            }
            // The HTTP server comes up as the last step of HA's start. Before the onboarding, ask
            // what needs no token (a 401 would log a warning); after it, what needs the token.
            let path = if self.token().is_empty() { "/api/onboarding" } else { "/api/" };
            if let Ok((status, _)) = self.request(Method::GET, path, Body::Empty, true).await
                && status.is_success()
            {
                return Ok(());
            }
            // Someone took the free port between our look and HA's bind.
            let log = std::fs::read_to_string(self.log_path(self.runs)).unwrap_or_default();
            if let Some(line) = log.lines().find(|l| l.contains("Failed to create HTTP server")) {
                bail!("HA could not listen on port {}: {line}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        bail!("the API at {} did not answer within {API_TIMEOUT:?}", self.url())
    }

    async fn onboard(&self) -> anyhow::Result<()> {
        let client_id = format!("{}/", self.url());
        let user = json!({
            "client_id": client_id, "name": "mqtt-home test", "username": USER,
            "password": PASSWORD, "language": "en",
        });
        let answer = self.json(Method::POST, "/api/onboarding/users", Body::Json(user)).await?;
        let code = answer["auth_code"].as_str().with_context(|| format!("no auth_code in {answer}"))?;
        let form =
            format!("grant_type=authorization_code&code={}&client_id={}", form_encode(code), form_encode(&client_id));
        self.take_tokens(Body::Form(form)).await
    }

    async fn take_tokens(&self, form: Body) -> anyhow::Result<()> {
        let (status, body) = self.send(&Method::POST, "/auth/token", &form, None).await?;
        let answer: Value = serde_json::from_slice(&body)
            .with_context(|| format!("/auth/token: {status}: {}", String::from_utf8_lossy(&body)))?;
        let access = answer["access_token"].as_str().with_context(|| format!("/auth/token: {status}: {answer}"))?;
        let mut tokens = self.tokens.lock().unwrap();
        tokens.access = access.to_owned();
        if let Some(refresh) = answer["refresh_token"].as_str() {
            tokens.refresh = refresh.to_owned();
        }
        Ok(())
    }

    async fn refresh_token(&self) -> anyhow::Result<()> {
        let refresh = self.tokens.lock().unwrap().refresh.clone();
        let form = format!(
            "grant_type=refresh_token&refresh_token={}&client_id={}",
            form_encode(&refresh),
            form_encode(&format!("{}/", self.url()))
        );
        self.take_tokens(Body::Form(form)).await
    }

    async fn add_mqtt(&self) -> anyhow::Result<()> {
        let flow = self.post("/api/config/config_entries/flow", json!({ "handler": "mqtt" })).await?;
        let id = flow["flow_id"].as_str().with_context(|| format!("no flow_id in {flow}"))?;
        if flow["step_id"] != "broker" {
            bail!("the MQTT flow did not ask for the broker: {flow}");
        }
        let broker = json!({ "broker": "127.0.0.1", "port": self.broker_port });
        let done = self.post(&format!("/api/config/config_entries/flow/{id}"), broker).await?;
        if done["type"] != "create_entry" {
            bail!("the MQTT flow did not create an entry: {done}");
        }
        Ok(())
    }

    async fn wait_for_mqtt_entry(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + MQTT_TIMEOUT;
        loop {
            let entries = self.get("/api/config/config_entries/entry?domain=mqtt").await?;
            if entries.as_array().is_some_and(|e| e.iter().any(|e| e["state"] == "loaded")) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("the MQTT entry was not loaded within {MQTT_TIMEOUT:?}: {entries}");
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn json(&self, method: Method, path: &str, body: Body) -> anyhow::Result<Value> {
        let (status, bytes) = self.request(method.clone(), path, body, true).await?;
        if !status.is_success() {
            bail!("{method} {path}: {status}: {}", String::from_utf8_lossy(&bytes));
        }
        serde_json::from_slice(&bytes)
            .with_context(|| format!("{method} {path}: not JSON: {}", String::from_utf8_lossy(&bytes)))
    }

    /// One request; with `auth`, as the owner, refreshing the token once on a 401.
    async fn request(&self, method: Method, path: &str, body: Body, auth: bool) -> anyhow::Result<(StatusCode, Bytes)> {
        let token = self.token();
        let bearer = (auth && !token.is_empty()).then_some(token.as_str());
        let answer = self.send(&method, path, &body, bearer).await?;
        let refreshable = !self.tokens.lock().unwrap().refresh.is_empty();
        if answer.0 == StatusCode::UNAUTHORIZED && bearer.is_some() && refreshable {
            self.refresh_token().await?;
            return self.send(&method, path, &body, Some(&self.token())).await;
        }
        Ok(answer)
    }

    /// One request, as it is.
    async fn send(
        &self,
        method: &Method,
        path: &str,
        body: &Body,
        bearer: Option<&str>,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let (content_type, bytes) = match body {
            Body::Empty => (None, Bytes::new()),
            Body::Json(v) => (Some("application/json"), Bytes::from(v.to_string())),
            Body::Form(f) => (Some("application/x-www-form-urlencoded"), Bytes::from(f.clone())),
        };
        let mut request = Request::builder().method(method.clone()).uri(format!("{}{path}", self.url()));
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        if let Some(token) = bearer {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let request = request.body(Full::new(bytes))?;
        tokio::time::timeout(REQUEST_TIMEOUT, async {
            let response = self.http.request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok((status, body))
        })
        .await
        .with_context(|| format!("{method} {path}: no answer within {REQUEST_TIMEOUT:?}"))?
        .with_context(|| format!("{method} {path}"))
    }

    /// `e`, with the end of HA's log; the config dir is kept for a look.
    fn failed(&mut self, e: anyhow::Error) -> anyhow::Error {
        self.dir.disable_cleanup(true);
        let console =
            std::fs::read_to_string(self.dir.path().join(format!("console.run{}.log", self.runs))).unwrap_or_default();
        let log = if self.log().trim().is_empty() { console } else { self.log() };
        e.context(format!(
            "Home Assistant {VERSION} did not start (config dir and logs kept in {}); the end of its log:\n{}",
            self.dir.path().display(),
            tail(&log, 60)
        ))
    }
}

impl Drop for HomeAssistant {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            crate::terminate(&mut child, Duration::from_secs(5));
        }
        if std::thread::panicking() {
            self.dir.disable_cleanup(true);
            eprintln!(
                "Home Assistant's config dir and logs are kept in {}; the end of its log:\n{}",
                self.dir.path().display(),
                tail(&self.log(), 40)
            );
        }
    }
}

/// The WARNING, ERROR and CRITICAL records of `log` from a logger starting with `logger_prefix`.
fn problems(log: &str, logger_prefix: &str) -> Vec<String> {
    records(log)
        .into_iter()
        .filter(|r| {
            let level = r.split_whitespace().nth(2).unwrap_or_default();
            let logger = r.split_once(") [").and_then(|(_, rest)| rest.split_once(']')).map(|(l, _)| l);
            matches!(level, "WARNING" | "ERROR" | "CRITICAL") && logger.is_some_and(|l| l.starts_with(logger_prefix))
        })
        .collect()
}

/// The log's records: a line that starts with a date, and the lines after it that do not.
fn records(log: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for line in log.lines() {
        let starts_record =
            line.len() > 10 && line.as_bytes()[4] == b'-' && line[..4].bytes().all(|b| b.is_ascii_digit());
        match out.last_mut() {
            Some(record) if !starts_record && !line.starts_with("--- Home Assistant run") => {
                record.push('\n');
                record.push_str(line);
            }
            _ if starts_record => out.push(line.to_owned()),
            _ => {}
        }
    }
    out
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// `application/x-www-form-urlencoded` for one value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_found_by_level_and_logger_with_their_tracebacks() {
        let log = "2026-01-01 10:00:00.000 INFO (MainThread) [homeassistant.components.mqtt] fine\n\
                   2026-01-01 10:00:01.000 WARNING (Thread-2 (_thread_main)) [homeassistant.components.mqtt.client] bad\n\
                   Traceback (most recent call last):\n  line\n\
                   2026-01-01 10:00:02.000 ERROR (MainThread) [homeassistant.setup] other\n";
        assert_eq!(records(log).len(), 3);
        let mqtt = problems(log, "homeassistant.components.mqtt");
        assert_eq!(mqtt.len(), 1, "{mqtt:#?}");
        assert_eq!(mqtt[0].lines().count(), 3);
        assert!(mqtt[0].ends_with("bad\nTraceback (most recent call last):\n  line"));
        assert_eq!(problems(log, "").len(), 2);
    }

    #[test]
    fn form_values_are_percent_encoded() {
        assert_eq!(form_encode("http://127.0.0.1:8123/"), "http%3A%2F%2F127.0.0.1%3A8123%2F");
        assert_eq!(form_encode("abc-1_2.3~"), "abc-1_2.3~");
    }
}
