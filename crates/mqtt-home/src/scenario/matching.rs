//! Matching what arrives against what a scenario expects: topic filters, JSON subsets, and the way
//! payloads are shown in the timeline (any `code` masked).

use serde_json::Value as Json;

use super::{FILE_ROOT, Matcher};

/// The longest payload excerpt a timeline line shows.
const EXCERPT_CHARS: usize = 160;

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
    pub(super) fn short(&self) -> String {
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
    pub(super) fn long(&self) -> String {
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
            _ if is_secret(k) => out.push(format!("{key}=…")),
            Json::String(s) => out.push(format!("{key}={s}")),
            other => out.push(format!("{key}={other}")),
        }
    }
}

/// The fields that carry a credential: the panel's `code`, a Zigbee2MQTT keypad's `action_code`,
/// a tag reader's id.
const SECRET_FIELDS: [&str; 5] = ["code", "action_code", "pin", "tag", "uid"];

fn is_secret(field: &str) -> bool {
    SECRET_FIELDS.contains(&field)
}

/// Replaces every credential field's value ([`SECRET_FIELDS`]) with "…", at any depth.
fn mask_json(mut json: Json) -> Json {
    fn walk(v: &mut Json) {
        match v {
            Json::Object(map) => {
                for (k, inner) in map.iter_mut() {
                    if is_secret(k) {
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

/// A payload as the timeline shows it: JSON with any credential masked, text clipped.
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
