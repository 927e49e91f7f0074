//! Running a scenario against a broker: one connection, every message recorded, each step in turn,
//! a readable timeline.

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, bail};
use device_runtime::MqttConfig;
use protocol::Qos;
use tokio::time::Instant;

use super::{Action, Matcher, Scenario, Step, display_payload, filter_matches};
use crate::ctl::Session;

/// How long the runner lets retained messages arrive before the first step.
const SETTLE_QUIET: Duration = Duration::from_millis(300);
const SETTLE_MAX: Duration = Duration::from_secs(3);

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
            Action::Publish { topic, payload, retain } => self.publish(topic, payload, *retain).await,
            Action::Wait(d) => {
                self.line("…", &format!("wait {} s", secs(*d)));
                let deadline = Instant::now() + *d;
                while self.receive_until(deadline).await.is_some() {}
                Ok(())
            }
            Action::Expect { topic, matcher, within, current } => self.expect(topic, matcher, *within, *current).await,
            Action::ExpectNone { topic, matcher, during } => self.expect_none(topic, matcher, *during).await,
        }
    }

    async fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) -> anyhow::Result<()> {
        self.drain().await;
        self.mark = self.log.len();
        self.session
            .publisher()
            .send_bytes(topic, payload.to_vec(), Qos::AtLeastOnce, retain)
            .await
            .with_context(|| format!("cannot publish on {topic}"))?;
        let flag = if retain { " (retained)" } else { "" };
        self.line("→", &format!("{topic} {}{flag}", display_payload(payload)));
        Ok(())
    }

    /// The first message that `hit`s: `found` already, else one received before `deadline`.
    async fn first_hit(
        &mut self,
        mut found: Option<usize>,
        deadline: Instant,
        hit: impl Fn(&Received) -> bool,
    ) -> Option<usize> {
        while found.is_none() {
            let i = self.receive_until(deadline).await?;
            if hit(&self.log[i]) {
                found = Some(i);
            }
        }
        found
    }

    async fn expect(&mut self, topic: &str, matcher: &Matcher, within: Duration, current: bool) -> anyhow::Result<()> {
        let began = Instant::now();
        let hit = |r: &Received| filter_matches(topic, &r.topic) && matcher.matches(&r.payload);
        let already = if current {
            self.current_match(topic, matcher)
        } else {
            (self.mark..self.log.len()).find(|&i| hit(&self.log[i]))
        };
        if let Some(i) = self.first_hit(already, began + within, hit).await {
            let name = self.log[i].topic.clone();
            let took = began.elapsed().as_secs_f64();
            self.line("✓", &format!("{name} {} ({took:.2} s)", matcher.short()));
            return Ok(());
        }
        let last = match self.last_seen(topic) {
            Some(r) => display_payload(&r.payload),
            None => "nothing".into(),
        };
        let when = if current { "" } else { " after the last publish" };
        let message = format!(
            "{topic}: no message matching {}{when} within {} s; last seen: {last}",
            matcher.long(),
            secs(within)
        );
        self.line("✗", &message);
        bail!(message)
    }

    async fn expect_none(&mut self, topic: &str, matcher: &Matcher, during: Duration) -> anyhow::Result<()> {
        let hit = |r: &Received| filter_matches(topic, &r.topic) && matcher.matches(&r.payload);
        let already = (self.mark..self.log.len()).find(|&i| hit(&self.log[i]));
        let Some(i) = self.first_hit(already, Instant::now() + during, hit).await else {
            self.line("✓", &format!("no {topic} {} for {} s", matcher.short(), secs(during)));
            return Ok(());
        };
        let r = &self.log[i];
        let message = format!(
            "{topic}: unexpected {} {} (expected none matching {} for {} s)",
            r.topic,
            display_payload(&r.payload),
            matcher.long(),
            secs(during)
        );
        self.line("✗", &message);
        bail!(message)
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
