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

use std::time::Duration;

use serde_json::Value as Json;

mod file;
mod matching;
mod runner;

pub use matching::{display_payload, filter_matches, json_subset, rewrite_root};
pub use runner::{run, run_files};

/// The topic root scenario files are written with.
const FILE_ROOT: &str = "home";

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
mod tests;
