//! Executable scenarios: `mqtt-home scenario FILE...` runs a TOML timeline against any broker.
//!
//! People demo and verify the home with these files: publish this, wait, expect that topic and
//! state within a deadline. The runner prints a readable timeline and the command exits non-zero
//! when an expectation fails, so the same file is a demo script and an acceptance test.
//!
//! # File format
//!
//! ```toml
//! name = "intrusion"
//! description = "Armed away, a window opens: alarm, siren, lights; the right code disarms"
//!
//! [[step]]
//! say = "arm away"        # optional on any step: printed in the timeline (a step may be only this)
//! publish = { topic = "home/security/panel/set", json = { action = "ARM_AWAY" } }
//!
//! [[step]]
//! expect = { topic = "home/security/status", json = { state = "armed_away" }, within_s = 10 }
//!
//! [[step]]
//! wait_s = 1.5
//!
//! [[step]]
//! expect_none = { topic = "home/security/alarm", json = { state = "ON" }, for_s = 3 }
//!
//! [[finally]]             # optional: runs after the steps, passed or failed (put the home back)
//! publish = { topic = "home/security/window/kitchen-window", payload = "CLOSED", retain = true }
//! ```
//!
//! Each step does one thing: `publish`, `expect`, `expect_none` or `wait_s` (plus an optional `say`).
//!
//! - `publish`: `topic`, and the payload as text (`payload = "OPEN"`) or as a table sent as JSON
//!   (`json = { action = "DISARM", code = "1234" }`); `retain` defaults to false. QoS 1.
//! - `expect`: a message on `topic` (MQTT wildcards allowed) received after the most recent
//!   `publish` was sent, so a stale retained value does not satisfy a transition. `json` is a subset
//!   match (every key given is in the received JSON object with an equal value; nested tables
//!   recursively; arrays element by element), `payload` an exact text match, neither: any message.
//!   `within_s` defaults to 10. With `current = true` the topic's latest value counts too, even if it
//!   came before the publish (a retained state): "the home is in this state", not "it changed to it".
//! - `expect_none`: no such message for `for_s` seconds (one received since the last publish counts).
//! - `wait_s`: let time pass (messages keep arriving and are recorded).
//!
//! Topics are written in full with the default root `home`; with `--topic-root X` a leading
//! `home/` becomes `X/`. The runner subscribes once, before the first step, to every topic the
//! expectations need. A panel command's `code` is never printed: the timeline shows `"…"`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use device_runtime::MqttConfig;
use protocol::Qos;
use serde::Deserialize;
use serde_json::Value as Json;
use tokio::time::Instant;

use crate::ctl::Session;

/// The topic root scenario files are written with.
const FILE_ROOT: &str = "home";
/// How long the runner lets retained messages arrive before the first step.
const SETTLE_QUIET: Duration = Duration::from_millis(300);
const SETTLE_MAX: Duration = Duration::from_secs(3);
/// The longest payload excerpt a timeline line shows.
const EXCERPT_CHARS: usize = 160;

/// A parsed scenario file.
#[derive(Debug, Clone, PartialEq)]
pub struct Scenario {
    /// Where it came from, for messages.
    pub source: String,
    pub name: String,
    pub description: String,
    pub steps: Vec<Step>,
    pub finally: Vec<Step>,
}

/// One step: an action and an optional line for the timeline.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub say: Option<String>,
    pub action: Option<Action>,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    Publish { topic: String, payload: Vec<u8>, retain: bool },
    Expect { topic: String, matcher: Matcher, within: Duration, current: bool },
    ExpectNone { topic: String, matcher: Matcher, during: Duration },
    Wait(Duration),
}

/// What a received payload must be.
#[derive(Debug, Clone, PartialEq)]
pub enum Matcher {
    Any,
    /// Exact text.
    Text(String),
    /// A JSON subset.
    Json(Json),
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileDoc {
    name: String,
    #[serde(default)]
    description: String,
    #[serde(default, rename = "step")]
    steps: Vec<FileStep>,
    #[serde(default)]
    finally: Vec<FileStep>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileStep {
    say: Option<String>,
    publish: Option<FilePublish>,
    expect: Option<FileExpect>,
    expect_none: Option<FileExpectNone>,
    wait_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FilePublish {
    topic: String,
    payload: Option<String>,
    json: Option<toml::Table>,
    #[serde(default)]
    retain: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExpect {
    topic: String,
    payload: Option<String>,
    json: Option<toml::Table>,
    within_s: Option<f64>,
    #[serde(default)]
    current: bool,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileExpectNone {
    topic: String,
    payload: Option<String>,
    json: Option<toml::Table>,
    for_s: f64,
}

impl Scenario {
    /// Reads and checks a scenario file.
    pub fn load(path: &Path) -> anyhow::Result<Scenario> {
        let text = std::fs::read_to_string(path).with_context(|| format!("cannot read scenario {}", path.display()))?;
        Scenario::parse(&path.display().to_string(), &text)
    }

    /// Parses scenario text; `source` names it in errors. Errors never quote the file's text (it holds PINs).
    pub fn parse(source: &str, text: &str) -> anyhow::Result<Scenario> {
        let doc: FileDoc = toml::from_str(text).map_err(|e| {
            let place = e.span().map(|span| locate(text, span.start)).unwrap_or_default();
            anyhow::anyhow!("{source}{place}: {}", e.message().trim_end_matches('.'))
        })?;
        let convert = |section: &str, steps: Vec<FileStep>| -> anyhow::Result<Vec<Step>> {
            steps
                .into_iter()
                .enumerate()
                .map(|(i, s)| s.check().with_context(|| format!("{source}: {section} {}", i + 1)))
                .collect()
        };
        let scenario = Scenario {
            source: source.to_owned(),
            name: doc.name,
            description: doc.description,
            steps: convert("step", doc.steps)?,
            finally: convert("finally step", doc.finally)?,
        };
        if scenario.steps.is_empty() {
            bail!("{source}: no [[step]]");
        }
        Ok(scenario)
    }

    /// The same scenario with every topic's leading `home/` replaced by `root/`.
    pub fn with_root(mut self, root: &str) -> Scenario {
        for step in self.steps.iter_mut().chain(self.finally.iter_mut()) {
            match &mut step.action {
                Some(
                    Action::Publish { topic, .. } | Action::Expect { topic, .. } | Action::ExpectNone { topic, .. },
                ) => *topic = rewrite_root(topic, root),
                Some(Action::Wait(_)) | None => {}
            }
        }
        self
    }

    /// Every topic filter the expectations need, once each, in order of appearance.
    pub fn filters(&self) -> Vec<String> {
        let mut filters: Vec<String> = Vec::new();
        for step in self.steps.iter().chain(&self.finally) {
            if let Some(Action::Expect { topic, .. } | Action::ExpectNone { topic, .. }) = &step.action
                && !filters.contains(topic)
            {
                filters.push(topic.clone());
            }
        }
        filters
    }
}

/// " (step 3, line 25)": where a byte offset falls in the file.
fn locate(text: &str, offset: usize) -> String {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let steps = before.lines().filter(|l| l.trim_start().starts_with("[[step]]")).count();
    let finals = before.lines().filter(|l| l.trim_start().starts_with("[[finally]]")).count();
    let last_step = before.rfind("[[step]]");
    let last_final = before.rfind("[[finally]]");
    match (last_step, last_final) {
        (_, Some(f)) if last_step.is_none_or(|s| f > s) => format!(" (finally step {finals}, line {line})"),
        (Some(_), _) => format!(" (step {steps}, line {line})"),
        _ => format!(" (line {line})"),
    }
}

fn seconds(what: &str, s: f64) -> anyhow::Result<Duration> {
    if !(0.0..=24.0 * 3600.0).contains(&s) {
        bail!("{what} = {s} is not a number of seconds between 0 and 86400");
    }
    Ok(Duration::from_secs_f64(s))
}

fn matcher(payload: Option<String>, json: Option<toml::Table>) -> anyhow::Result<Matcher> {
    match (payload, json) {
        (Some(_), Some(_)) => bail!("give `payload` (text) or `json` (a table), not both"),
        (Some(text), None) => Ok(Matcher::Text(text)),
        (None, Some(table)) => Ok(Matcher::Json(toml_to_json(table)?)),
        (None, None) => Ok(Matcher::Any),
    }
}

fn toml_to_json(table: toml::Table) -> anyhow::Result<Json> {
    serde_json::to_value(table).context("the table cannot be written as JSON")
}

fn check_topic(topic: &str, wildcards: bool) -> anyhow::Result<()> {
    if topic.is_empty() {
        bail!("the topic is empty");
    }
    let has_wildcard = topic.contains(['+', '#']);
    if has_wildcard && !wildcards {
        bail!("cannot publish to `{topic}`: `+` and `#` are for subscriptions");
    }
    let levels: Vec<&str> = topic.split('/').collect();
    for (i, level) in levels.iter().enumerate() {
        let bad_hash = level.contains('#') && (*level != "#" || i + 1 != levels.len());
        let bad_plus = level.contains('+') && *level != "+";
        if bad_hash || bad_plus {
            bail!("`{topic}` is not a valid MQTT topic filter (`#` must be last and alone in its level, `+` alone)");
        }
    }
    Ok(())
}

impl FileStep {
    fn check(self) -> anyhow::Result<Step> {
        let count = usize::from(self.publish.is_some())
            + usize::from(self.expect.is_some())
            + usize::from(self.expect_none.is_some())
            + usize::from(self.wait_s.is_some());
        if count > 1 {
            bail!("a step does one thing: publish, expect, expect_none or wait_s");
        }
        if count == 0 && self.say.is_none() {
            bail!("an empty step: give publish, expect, expect_none, wait_s or say");
        }
        let action = if let Some(p) = self.publish {
            check_topic(&p.topic, false)?;
            let payload = match (p.payload, p.json) {
                (Some(_), Some(_)) => bail!("publish: give `payload` (text) or `json` (a table), not both"),
                (Some(text), None) => text.into_bytes(),
                (None, Some(table)) => serde_json::to_vec(&toml_to_json(table)?)?,
                (None, None) => {
                    bail!("publish: give `payload` (text) or `json` (a table); an empty payload is `payload = \"\"`")
                }
            };
            Some(Action::Publish { topic: p.topic, payload, retain: p.retain })
        } else if let Some(e) = self.expect {
            check_topic(&e.topic, true)?;
            Some(Action::Expect {
                matcher: matcher(e.payload, e.json).context("expect")?,
                within: seconds("within_s", e.within_s.unwrap_or(10.0))?,
                topic: e.topic,
                current: e.current,
            })
        } else if let Some(e) = self.expect_none {
            check_topic(&e.topic, true)?;
            Some(Action::ExpectNone {
                matcher: matcher(e.payload, e.json).context("expect_none")?,
                during: seconds("for_s", e.for_s)?,
                topic: e.topic,
            })
        } else if let Some(w) = self.wait_s {
            Some(Action::Wait(seconds("wait_s", w)?))
        } else {
            None
        };
        Ok(Step { say: self.say, action })
    }
}

/// `home/...` → `root/...`; other topics are left alone.
pub fn rewrite_root(topic: &str, root: &str) -> String {
    if topic == FILE_ROOT {
        return root.to_owned();
    }
    match topic.strip_prefix(FILE_ROOT).and_then(|rest| rest.strip_prefix('/')) {
        Some(rest) => format!("{root}/{rest}"),
        None => topic.to_owned(),
    }
}

/// Whether MQTT topic filter `filter` (with `+` and `#`) matches topic name `topic`.
pub fn filter_matches(filter: &str, topic: &str) -> bool {
    // A wildcard first level never matches `$SYS`-style topics.
    if topic.starts_with('$') && (filter.starts_with('+') || filter.starts_with('#')) {
        return false;
    }
    let mut levels = topic.split('/');
    for part in filter.split('/') {
        if part == "#" {
            // `#` matches the parent level too: `home/#` matches `home`.
            return true;
        }
        match levels.next() {
            Some(level) if part == "+" || part == level => {}
            _ => return false,
        }
    }
    levels.next().is_none()
}

/// Whether `actual` contains `expected`: objects by subset, arrays element by element, numbers by value.
pub fn json_subset(expected: &Json, actual: &Json) -> bool {
    match (expected, actual) {
        (Json::Object(want), Json::Object(have)) => {
            want.iter().all(|(k, v)| have.get(k).is_some_and(|h| json_subset(v, h)))
        }
        (Json::Array(want), Json::Array(have)) => {
            want.len() == have.len() && want.iter().zip(have).all(|(w, h)| json_subset(w, h))
        }
        (Json::Number(want), Json::Number(have)) => match (want.as_i64(), have.as_i64()) {
            (Some(w), Some(h)) => w == h,
            _ => want.as_f64().zip(have.as_f64()).is_some_and(|(w, h)| w == h),
        },
        _ => expected == actual,
    }
}

impl Matcher {
    pub fn matches(&self, payload: &[u8]) -> bool {
        match self {
            Matcher::Any => true,
            Matcher::Text(text) => payload == text.as_bytes(),
            Matcher::Json(want) => serde_json::from_slice::<Json>(payload).is_ok_and(|have| json_subset(want, &have)),
        }
    }

    /// How the timeline shows what was expected: `state=armed_away`, `"online"`, `anything`.
    fn short(&self) -> String {
        match self {
            Matcher::Any => "a message".into(),
            Matcher::Text(text) => format!("{text:?}"),
            Matcher::Json(Json::Object(map)) => {
                let mut parts = Vec::new();
                flatten("", map, &mut parts);
                parts.join(" ")
            }
            Matcher::Json(other) => other.to_string(),
        }
    }

    /// The expectation as the failure message shows it.
    fn long(&self) -> String {
        match self {
            Matcher::Any => "anything".into(),
            Matcher::Text(text) => format!("{text:?}"),
            Matcher::Json(json) => mask_json(json.clone()).to_string(),
        }
    }
}

fn flatten(prefix: &str, map: &serde_json::Map<String, Json>, out: &mut Vec<String>) {
    for (k, v) in map {
        let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
        match v {
            Json::Object(inner) => flatten(&key, inner, out),
            _ if k == "code" => out.push(format!("{key}=…")),
            Json::String(s) => out.push(format!("{key}={s}")),
            other => out.push(format!("{key}={other}")),
        }
    }
}

/// Replaces every `code` field's value with "…", at any depth.
fn mask_json(mut json: Json) -> Json {
    fn walk(v: &mut Json) {
        match v {
            Json::Object(map) => {
                for (k, inner) in map.iter_mut() {
                    if k == "code" {
                        *inner = Json::String("…".into());
                    } else {
                        walk(inner);
                    }
                }
            }
            Json::Array(items) => items.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut json);
    json
}

/// A payload as the timeline shows it: JSON with any `code` masked, text clipped.
pub fn display_payload(payload: &[u8]) -> String {
    let text = match serde_json::from_slice::<Json>(payload) {
        Ok(json @ (Json::Object(_) | Json::Array(_))) => mask_json(json).to_string(),
        // A bare payload with digits only could be a PIN typed on the wrong topic: do not show it.
        _ if !payload.is_empty() && payload.iter().all(u8::is_ascii_digit) && payload.len() >= 4 => "…".into(),
        _ => String::from_utf8_lossy(payload).into_owned(),
    };
    let mut clipped: String = text.chars().take(EXCERPT_CHARS).collect();
    if clipped.len() < text.len() {
        clipped.push('…');
    }
    clipped
}

/// One message received during the run.
struct Received {
    topic: String,
    payload: Vec<u8>,
}

/// The state of one run: the connection, everything received, and where the last publish falls.
struct Runner<'a> {
    session: Session,
    log: Vec<Received>,
    /// Index in `log` of the first message received after the most recent publish.
    mark: usize,
    start: Instant,
    out: &'a mut (dyn Write + Send),
}

impl Runner<'_> {
    fn line(&mut self, symbol: &str, text: &str) {
        let t = self.start.elapsed().as_secs_f64();
        let _ = writeln!(self.out, "[{t:7.3}s] {symbol} {text}");
        let _ = self.out.flush();
    }

    /// Waits for the next message until `deadline`, recording it.
    async fn receive_until(&mut self, deadline: Instant) -> Option<usize> {
        let left = deadline.saturating_duration_since(Instant::now());
        let (topic, payload) = self.session.next(left).await?;
        self.log.push(Received { topic, payload });
        Some(self.log.len() - 1)
    }

    /// Records whatever has already arrived, without waiting.
    async fn drain(&mut self) {
        while self.receive_until(Instant::now()).await.is_some() {}
    }

    /// The latest message on a topic matching `filter`, if any.
    fn last_seen(&self, filter: &str) -> Option<&Received> {
        self.log.iter().rev().find(|r| filter_matches(filter, &r.topic))
    }

    /// Runs one step; `Err` is the step's failure as the user reads it.
    async fn step(&mut self, step: &Step) -> anyhow::Result<()> {
        if let Some(say) = &step.say {
            self.line("»", say);
        }
        let Some(action) = &step.action else { return Ok(()) };
        match action {
            Action::Publish { topic, payload, retain } => {
                self.drain().await;
                self.mark = self.log.len();
                self.session
                    .publisher()
                    .send_bytes(topic, payload.clone(), Qos::AtLeastOnce, *retain)
                    .await
                    .with_context(|| format!("cannot publish on {topic}"))?;
                let flag = if *retain { " (retained)" } else { "" };
                self.line("→", &format!("{topic} {}{flag}", display_payload(payload)));
                Ok(())
            }
            Action::Wait(d) => {
                self.line("…", &format!("wait {} s", secs(*d)));
                let deadline = Instant::now() + *d;
                while self.receive_until(deadline).await.is_some() {}
                Ok(())
            }
            Action::Expect { topic, matcher, within, current } => {
                let began = Instant::now();
                let deadline = began + *within;
                let found = if *current {
                    self.current_match(topic, matcher)
                } else {
                    (self.mark..self.log.len())
                        .find(|&i| filter_matches(topic, &self.log[i].topic) && matcher.matches(&self.log[i].payload))
                };
                let mut found = found;
                while found.is_none() {
                    let Some(i) = self.receive_until(deadline).await else { break };
                    let r = &self.log[i];
                    if filter_matches(topic, &r.topic) && matcher.matches(&r.payload) {
                        found = Some(i);
                    }
                }
                match found {
                    Some(i) => {
                        let name = self.log[i].topic.clone();
                        let took = began.elapsed().as_secs_f64();
                        self.line("✓", &format!("{name} {} ({took:.2} s)", matcher.short()));
                        Ok(())
                    }
                    None => {
                        let last = match self.last_seen(topic) {
                            Some(r) => display_payload(&r.payload),
                            None => "nothing".into(),
                        };
                        let when = if *current { "" } else { " after the last publish" };
                        let message = format!(
                            "{topic}: no message matching {}{when} within {} s; last seen: {last}",
                            matcher.long(),
                            secs(*within)
                        );
                        self.line("✗", &message);
                        bail!(message)
                    }
                }
            }
            Action::ExpectNone { topic, matcher, during } => {
                let deadline = Instant::now() + *during;
                let hit = |r: &Received| filter_matches(topic, &r.topic) && matcher.matches(&r.payload);
                let mut found = (self.mark..self.log.len()).find(|&i| hit(&self.log[i]));
                while found.is_none() {
                    let Some(i) = self.receive_until(deadline).await else { break };
                    if hit(&self.log[i]) {
                        found = Some(i);
                    }
                }
                match found {
                    None => {
                        self.line("✓", &format!("no {topic} {} for {} s", matcher.short(), secs(*during)));
                        Ok(())
                    }
                    Some(i) => {
                        let r = &self.log[i];
                        let message = format!(
                            "{topic}: unexpected {} {} (expected none matching {} for {} s)",
                            r.topic,
                            display_payload(&r.payload),
                            matcher.long(),
                            secs(*during)
                        );
                        self.line("✗", &message);
                        bail!(message)
                    }
                }
            }
        }
    }

    /// For `current = true`: a message after the last publish, or the latest value of a matching topic.
    fn current_match(&self, filter: &str, matcher: &Matcher) -> Option<usize> {
        let after = (self.mark..self.log.len())
            .find(|&i| filter_matches(filter, &self.log[i].topic) && matcher.matches(&self.log[i].payload));
        if after.is_some() {
            return after;
        }
        let mut seen_topics: Vec<&str> = Vec::new();
        for (i, r) in self.log.iter().enumerate().rev() {
            if !filter_matches(filter, &r.topic) || seen_topics.contains(&r.topic.as_str()) {
                continue;
            }
            if matcher.matches(&r.payload) {
                return Some(i);
            }
            seen_topics.push(&r.topic);
        }
        None
    }
}

/// `1.5`, `10`: seconds as people write them.
fn secs(d: Duration) -> String {
    d.as_secs_f64().to_string()
}

/// Runs `scenario` (topics as written, `home/...`) against the broker of `config`, printing the
/// timeline to `out`. `Err` says which step failed and why (or why the run could not start).
pub async fn run(scenario: &Scenario, config: &MqttConfig, out: &mut (dyn Write + Send)) -> anyhow::Result<()> {
    let scenario = scenario.clone().with_root(&config.topic_root);
    let start = Instant::now();
    let filters = scenario.filters();
    let session =
        Session::open(config, &filters).await.with_context(|| format!("{}: cannot start", scenario.source))?;
    let mut runner = Runner { session, log: Vec::new(), mark: 0, start, out };
    let header = if scenario.description.is_empty() {
        scenario.name.clone()
    } else {
        format!("{}: {}", scenario.name, scenario.description)
    };
    runner.line("▶", &header);

    // Retained values arrive right after the subscription; let them in before the first step so
    // none of them passes for an answer to it.
    let settle_end = Instant::now() + SETTLE_MAX;
    while Instant::now() < settle_end {
        if runner.receive_until((Instant::now() + SETTLE_QUIET).min(settle_end)).await.is_none() {
            break;
        }
    }
    runner.mark = runner.log.len();

    let mut failure: Option<anyhow::Error> = None;
    for (i, step) in scenario.steps.iter().enumerate() {
        if let Err(e) = runner.step(step).await {
            failure = Some(e.context(format!("{}: step {}", scenario.source, i + 1)));
            break;
        }
    }
    for (i, step) in scenario.finally.iter().enumerate() {
        if let Err(e) = runner.step(step).await
            && failure.is_none()
        {
            failure = Some(e.context(format!("{}: finally step {}", scenario.source, i + 1)));
        }
    }
    let took = start.elapsed().as_secs_f64();
    match &failure {
        None => runner.line("■", &format!("{} passed ({} steps, {took:.1} s)", scenario.name, scenario.steps.len())),
        Some(_) => runner.line("■", &format!("{} FAILED ({took:.1} s)", scenario.name)),
    }
    runner.session.close().await;
    match failure {
        None => Ok(()),
        Some(e) => Err(e),
    }
}

/// Runs every file in order; the number that failed (each failure printed with `{:#}` to `err`).
pub async fn run_files(
    files: &[PathBuf],
    config: &MqttConfig,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> usize {
    let mut failed = 0;
    for file in files {
        let outcome = match Scenario::load(file) {
            Ok(scenario) => run(&scenario, config, out).await,
            Err(e) => Err(e),
        };
        if let Err(e) = outcome {
            failed += 1;
            let _ = writeln!(err, "mqtt-home: scenario failed: {e:#}");
        }
        let _ = writeln!(out);
    }
    failed
}

/// A scenario that waits until every device in `ids` reports `online` (retained values count).
pub fn home_is_up(ids: &[String]) -> Scenario {
    // Written with the root scenario files use; the runner moves it to the configured one.
    let topics = protocol::Topics::new(FILE_ROOT);
    let online = |id: &String| Step {
        say: None,
        action: Some(Action::Expect {
            topic: topics.name(&protocol::Topic::Availability(id.clone())),
            matcher: Matcher::Text(protocol::Availability::Online.as_str().to_owned()),
            within: Duration::from_secs(20),
            current: true,
        }),
    };
    Scenario {
        source: "home-is-up".to_owned(),
        name: "home-is-up".to_owned(),
        description: "every daemon online".to_owned(),
        steps: ids.iter().map(online).collect(),
        finally: Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"
name = "intrusion"
description = "Armed away, a window opens"

[[step]]
say = "arm away"
publish = { topic = "home/security/panel/set", json = { action = "ARM_AWAY" } }

[[step]]
expect = { topic = "home/security/status", json = { state = "armed_away" }, within_s = 10 }

[[step]]
wait_s = 1.5

[[step]]
expect_none = { topic = "home/security/alarm", json = { state = "ON" }, for_s = 3 }

[[finally]]
publish = { topic = "home/security/panel/set", payload = '{"action":"DISARM","code":"1234"}' }
"#;

    #[test]
    fn parses_the_documented_format() {
        let s = Scenario::parse("example.toml", EXAMPLE).unwrap();
        assert_eq!(s.name, "intrusion");
        assert_eq!(s.steps.len(), 4);
        assert_eq!(s.finally.len(), 1);
        assert_eq!(s.steps[0].say.as_deref(), Some("arm away"));
        assert_eq!(
            s.steps[0].action,
            Some(Action::Publish {
                topic: "home/security/panel/set".into(),
                payload: br#"{"action":"ARM_AWAY"}"#.to_vec(),
                retain: false
            })
        );
        assert_eq!(s.steps[2].action, Some(Action::Wait(Duration::from_millis(1500))));
        assert_eq!(s.filters(), ["home/security/status", "home/security/alarm"]);
        match &s.steps[1].action {
            Some(Action::Expect { within, current, .. }) => {
                assert_eq!(*within, Duration::from_secs(10));
                assert!(!current);
            }
            other => panic!("not an expect: {other:?}"),
        }
    }

    #[test]
    fn errors_name_the_file_and_the_step_and_never_quote_a_pin() {
        let typo = EXAMPLE.replace("within_s = 10", "withn_s = 10");
        let e = format!("{:#}", Scenario::parse("x.toml", &typo).unwrap_err());
        assert!(e.starts_with("x.toml (step 2, line 10): unknown field `withn_s`"), "{e}");
        assert!(!e.ends_with('.'), "{e}");

        let bad = EXAMPLE.replace("payload = '{\"action\"", "payload = '{\"action\"\nbroken");
        let e = format!("{:#}", Scenario::parse("x.toml", &bad).unwrap_err());
        assert!(e.contains("x.toml (finally step 1"), "{e}");
        assert!(!e.contains("1234"), "the PIN leaked into an error: {e}");

        let two = EXAMPLE.replace("wait_s = 1.5", "wait_s = 1.5\npublish = { topic = \"home/x\", payload = \"1\" }");
        let e = format!("{:#}", Scenario::parse("x.toml", &two).unwrap_err());
        assert!(e.contains("x.toml: step 3: a step does one thing"), "{e}");

        let wild = EXAMPLE.replace("home/security/panel/set\", json", "home/+/panel/set\", json");
        let e = format!("{:#}", Scenario::parse("x.toml", &wild).unwrap_err());
        assert!(e.contains("step 1: cannot publish to `home/+/panel/set`"), "{e}");

        let e = format!("{:#}", Scenario::parse("x.toml", "name = \"n\"").unwrap_err());
        assert_eq!(e, "x.toml: no [[step]]");

        let negative = EXAMPLE.replace("wait_s = 1.5", "wait_s = -1");
        let e = format!("{:#}", Scenario::parse("x.toml", &negative).unwrap_err());
        assert!(e.contains("step 3: wait_s = -1"), "{e}");
    }

    #[test]
    fn json_subset_matching() {
        let have: Json = serde_json::json!({
            "state": "armed_away", "ready": true, "open_sensors": [], "n": 5, "nested": { "a": 1, "b": "x" }
        });
        let yes = [
            serde_json::json!({}),
            serde_json::json!({ "state": "armed_away" }),
            serde_json::json!({ "state": "armed_away", "ready": true, "open_sensors": [] }),
            serde_json::json!({ "n": 5.0 }),
            serde_json::json!({ "nested": { "b": "x" } }),
        ];
        let no = [
            serde_json::json!({ "state": "disarmed" }),
            serde_json::json!({ "missing": 1 }),
            serde_json::json!({ "n": "5" }),
            serde_json::json!({ "open_sensors": ["front"] }),
            serde_json::json!({ "nested": { "a": 2 } }),
        ];
        for want in &yes {
            assert!(json_subset(want, &have), "{want} should match");
        }
        for want in &no {
            assert!(!json_subset(want, &have), "{want} should not match");
        }
        let m = Matcher::Json(serde_json::json!({ "state": "ON" }));
        assert!(m.matches(br#"{"state":"ON","since":"x"}"#));
        assert!(!m.matches(b"ON"));
        assert!(!m.matches(&[0xff, 0x00]));
        assert!(Matcher::Text("online".into()).matches(b"online"));
        assert!(!Matcher::Text("online".into()).matches(b"online "));
    }

    #[test]
    fn toml_integers_match_json_numbers() {
        let s = Scenario::parse(
            "x.toml",
            "name = \"n\"\n[[step]]\nexpect = { topic = \"home/lights/kitchen/state\", json = { brightness = 50, source = \"circadian\" } }\n",
        )
        .unwrap();
        let Some(Action::Expect { matcher, .. }) = &s.steps[0].action else { panic!("not an expect") };
        assert!(matcher.matches(br#"{"state":"ON","brightness":50,"color_temp_k":2700,"source":"circadian"}"#));
        assert!(!matcher.matches(br#"{"state":"ON","brightness":5,"source":"circadian"}"#));
        assert_eq!(matcher.short(), "brightness=50 source=circadian");
    }

    #[test]
    fn topic_root_rewriting() {
        assert_eq!(rewrite_root("home/security/status", "flat-7"), "flat-7/security/status");
        assert_eq!(rewrite_root("home/#", "x"), "x/#");
        assert_eq!(rewrite_root("home", "x"), "x");
        assert_eq!(rewrite_root("homework/a", "x"), "homework/a");
        assert_eq!(rewrite_root("other/home/a", "x"), "other/home/a");
        let s = Scenario::parse("example.toml", EXAMPLE).unwrap().with_root("flat-7");
        assert_eq!(s.filters(), ["flat-7/security/status", "flat-7/security/alarm"]);
        assert!(
            matches!(&s.finally[0].action, Some(Action::Publish { topic, .. }) if topic == "flat-7/security/panel/set")
        );
    }

    #[test]
    fn topic_filters() {
        assert!(filter_matches("home/security/status", "home/security/status"));
        assert!(!filter_matches("home/security/status", "home/security/status/x"));
        assert!(filter_matches("home/lights/+/state", "home/lights/kitchen/state"));
        assert!(!filter_matches("home/lights/+/state", "home/lights/kitchen/set"));
        assert!(filter_matches("home/#", "home/lights/kitchen/state"));
        assert!(filter_matches("home/#", "home"));
        assert!(!filter_matches("home/+", "home/a/b"));
        assert!(!filter_matches("#", "$SYS/broker"));
        assert!(!filter_matches("+/broker", "$SYS/broker"));
        assert!(filter_matches("+/broker", "x/broker"));
    }

    #[test]
    fn pins_are_masked_in_the_timeline() {
        let shown = display_payload(br#"{"action":"DISARM","code":"1234"}"#);
        assert_eq!(shown, r#"{"action":"DISARM","code":"…"}"#);
        assert_eq!(display_payload(b"1234"), "…");
        assert_eq!(display_payload(b"OPEN"), "OPEN");
        let m = Matcher::Json(serde_json::json!({ "action": "DISARM", "code": "4321" }));
        assert!(!m.short().contains("4321") && !m.long().contains("4321"));
    }

    #[test]
    fn every_shipped_scenario_parses() {
        let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../../scenarios"));
        let mut count = 0;
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                let s = Scenario::load(&path).unwrap_or_else(|e| panic!("{e:#}"));
                assert!(!s.description.is_empty(), "{} has no description", path.display());
                count += 1;
            }
        }
        assert!(count >= 5, "only {count} scenarios shipped");
    }
}
