//! Scenario files: the TOML format read, checked and turned into [`Scenario`] steps. Errors name
//! the file, the step and the line, and never quote the text (it holds PINs).

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, bail};
use serde::Deserialize;
use serde_json::Value as Json;

use super::{Action, Matcher, Scenario, Step, rewrite_root};

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
