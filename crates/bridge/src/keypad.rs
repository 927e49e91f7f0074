//! Keypads and tag readers: a press becomes the panel's command, and the panel's answer goes back
//! to the keypad so that it shows the result.
//!
//! A Zigbee2MQTT keypad (Develco/frient KEPZB-110, Centralite 3400, Xfinity XHK1, Linkind…)
//! publishes `zigbee2mqtt/<name>` with `action` (`arm_all_zones`, `arm_day_zones`,
//! `arm_night_zones`, `disarm`, `panic`/`emergency`), `action_code` (the PIN, a string or a
//! number) and `action_transaction`; it shows what the panel did when told on
//! `zigbee2mqtt/<name>/set` `{"arm_mode":{"mode":"arm_all_zones","transaction":12}}`. A tag reader
//! (`generic`) publishes a tag's id on a topic of its own; the id is a credential as a PIN is (a
//! user's `tag_hash`), checked by the panel with the same rights and the same lockout.
//!
//! The bridge never sees whether a code is right: the panel does. It answers a keypad from what the
//! panel publishes next: a `wrong_code`, `code_refused`, `refused` or `lockout` event is
//! `invalid_code`, a `failed_to_arm` is `not_ready`, and every status is the mode it shows. Codes
//! are never logged.

use protocol::{PanelAction, PanelCommand, PanelEvent, PanelEventKind, PanelState, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A keypad press, read.
#[derive(Clone, PartialEq, Eq)]
pub struct Press {
    pub action: PanelAction,
    pub code: Option<String>,
    /// Zigbee2MQTT's `action_transaction`, echoed in the answer so the keypad matches it.
    pub transaction: Option<u64>,
}

/// Never shows the code.
impl std::fmt::Debug for Press {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Press")
            .field("action", &self.action)
            .field("code", &self.code.as_ref().map(|_| "<hidden>"))
            .field("transaction", &self.transaction)
            .finish()
    }
}

impl Press {
    pub fn command(&self) -> PanelCommand {
        PanelCommand { action: self.action, code: self.code.clone(), force: false }
    }
}

/// What a tag shown to a reader does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TagAction {
    /// Disarm when armed (or arming, or in alarm), arm away when disarmed.
    #[default]
    Toggle,
    Disarm,
    ArmAway,
    ArmHome,
    ArmNight,
}

impl TagAction {
    /// The panel action for a tag shown while the panel is in `state`; while the state is not
    /// known yet, a toggle disarms (an armed panel is the likelier one to be shown a tag at).
    pub fn action(self, state: Option<PanelState>) -> PanelAction {
        match self {
            TagAction::Toggle if state == Some(PanelState::Disarmed) => PanelAction::ArmAway,
            TagAction::Toggle | TagAction::Disarm => PanelAction::Disarm,
            TagAction::ArmAway => PanelAction::ArmAway,
            TagAction::ArmHome => PanelAction::ArmHome,
            TagAction::ArmNight => PanelAction::ArmNight,
        }
    }
}

/// Reads a Zigbee2MQTT keypad's message: `Ok(None)` for one without a press the panel takes (a
/// battery report, `exit_delay`, an empty action); an error for an `action_code` of the wrong type.
pub fn read_keypad(payload: &[u8]) -> Result<Option<Press>, String> {
    let json: Value = serde_json::from_slice(payload).map_err(|e| format!("not JSON ({e})"))?;
    let action = match json.get("action").and_then(Value::as_str).unwrap_or_default() {
        "arm_all_zones" => PanelAction::ArmAway,
        "arm_day_zones" => PanelAction::ArmHome,
        "arm_night_zones" => PanelAction::ArmNight,
        "disarm" => PanelAction::Disarm,
        "panic" | "emergency" => PanelAction::Trigger,
        _ => return Ok(None),
    };
    let code = match json.get("action_code") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Number(n)) => Some(n.to_string()),
        Some(other) => {
            let kind = match other {
                Value::Bool(_) => "true or false",
                Value::Array(_) => "a list",
                _ => "an object",
            };
            return Err(format!("action_code is {kind}: a keypad sends its code as a string or a number"));
        }
    };
    let transaction = json.get("action_transaction").and_then(Value::as_u64);
    Ok(Some(Press { action, code, transaction }))
}

/// A keypad message's `action_transaction`, read on its own (for answering a press that could
/// not be read otherwise).
pub fn transaction(payload: &[u8]) -> Option<u64> {
    serde_json::from_slice::<Value>(payload).ok()?.get("action_transaction")?.as_u64()
}

/// Reads a tag reader's message: the tag's id, at `pointer` in a JSON payload or the whole text;
/// `Ok(None)` when there is none (an empty payload, a missing field).
pub fn read_tag(pointer: Option<&str>, payload: &[u8]) -> Result<Option<String>, String> {
    let text = std::str::from_utf8(payload).map_err(|_| "not UTF-8 text".to_owned())?.trim();
    let id = match pointer.filter(|p| !p.is_empty()) {
        Some(pointer) => {
            let json: Value = serde_json::from_str(text).map_err(|e| format!("not JSON ({e})"))?;
            match json.pointer(pointer) {
                Some(Value::String(s)) => s.trim().to_owned(),
                Some(Value::Number(n)) => n.to_string(),
                Some(Value::Null) | None => return Ok(None),
                Some(_) => return Err(format!("{pointer} is not a tag id (a string or a number)")),
            }
        }
        None => text.to_owned(),
    };
    // Readers differ in the case of their hex ids: `04a2b3c4` is `04A2B3C4` (as `hash-tag` keeps it).
    Ok((!id.is_empty()).then(|| id.to_ascii_uppercase()))
}

/// The mode a Zigbee2MQTT keypad shows for the panel's state.
pub fn arm_mode(state: PanelState) -> &'static str {
    match state {
        PanelState::Disarmed => "disarm",
        PanelState::ArmedHome => "arm_day_zones",
        PanelState::ArmedNight => "arm_night_zones",
        PanelState::ArmedAway => "arm_all_zones",
        PanelState::Arming => "exit_delay",
        PanelState::Pending => "entry_delay",
        PanelState::Triggered => "in_alarm",
    }
}

/// What a keypad is told after an event that refuses its press; `None` for the others (a status
/// follows them).
pub fn refusal(event: PanelEventKind) -> Option<&'static str> {
    match event {
        PanelEventKind::WrongCode | PanelEventKind::CodeRefused | PanelEventKind::Refused | PanelEventKind::Lockout => {
            Some("invalid_code")
        }
        PanelEventKind::FailedToArm => Some("not_ready"),
        _ => None,
    }
}

/// The payload for `zigbee2mqtt/<name>/set`.
pub fn answer(mode: &str, transaction: Option<u64>) -> Vec<u8> {
    let mut arm_mode = serde_json::Map::from_iter([("mode".to_owned(), Value::from(mode))]);
    if let Some(t) = transaction {
        arm_mode.insert("transaction".into(), t.into());
    }
    serde_json::json!({ "arm_mode": arm_mode }).to_string().into_bytes()
}

/// How long after a press the panel's next answer is taken as the answer to it.
pub const ANSWER_WITHIN_MS: u64 = 10_000;

/// A press sent to the panel, whose answer the keypad waits for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Awaiting {
    /// The keypad (its index in the bridge's devices).
    pub device: usize,
    pub transaction: Option<u64>,
    pub area: Option<String>,
    pub since: Timestamp,
}

impl Awaiting {
    /// Whether `event` is the panel's answer to this press.
    pub fn answered_by(&self, event: &PanelEvent, now: Timestamp) -> bool {
        now.0.saturating_sub(self.since.0) <= ANSWER_WITHIN_MS
            && (self.area.is_none() || event.area.is_none() || self.area == event.area)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keypad_presses_are_read_and_their_code_never_shown() {
        type Read<'a> = Option<(PanelAction, Option<&'a str>, Option<u64>)>;
        let rows: &[(&str, Read<'_>)] = &[
            (
                r#"{"action":"disarm","action_code":"1234","action_transaction":7,"action_zone":0}"#,
                Some((PanelAction::Disarm, Some("1234"), Some(7))),
            ),
            (r#"{"action":"arm_all_zones","action_code":1234}"#, Some((PanelAction::ArmAway, Some("1234"), None))),
            (r#"{"action":"arm_day_zones","action_code":""}"#, Some((PanelAction::ArmHome, None, None))),
            (r#"{"action":"arm_night_zones"}"#, Some((PanelAction::ArmNight, None, None))),
            (r#"{"action":"panic"}"#, Some((PanelAction::Trigger, None, None))),
            (r#"{"action":"exit_delay"}"#, None),
            (r#"{"battery":80,"tamper":false}"#, None),
        ];
        for (payload, expected) in rows {
            let press = read_keypad(payload.as_bytes()).unwrap();
            let got = press.as_ref().map(|p| (p.action, p.code.as_deref(), p.transaction));
            assert_eq!(got, *expected, "{payload}");
            if let Some(p) = press {
                assert!(!format!("{p:?}").contains("1234"));
            }
        }
        for (payload, says) in [
            (r#"{"action":"disarm","action_code":true}"#, "true or false"),
            (r#"{"action":"disarm","action_code":{"pin":"1234"}}"#, "an object"),
            ("disarm 1234", "not JSON"),
        ] {
            let e = read_keypad(payload.as_bytes()).unwrap_err();
            assert!(e.contains(says) && !e.contains("1234"), "{payload}: {e}");
        }
    }

    #[test]
    fn tags_are_read_and_toggle_by_the_panel_state() {
        assert_eq!(read_tag(None, b" 04A2B3C4 \n"), Ok(Some("04A2B3C4".into())));
        assert_eq!(read_tag(Some("/uid"), br#"{"uid":"04a2","rssi":-40}"#), Ok(Some("04A2".into())), "one case");
        assert_eq!(read_tag(Some("/uid"), br#"{"rssi":-40}"#), Ok(None));
        assert_eq!(read_tag(None, b""), Ok(None));
        assert!(read_tag(Some("/uid"), br#"{"uid":[1]}"#).is_err());
        use PanelState as S;
        assert_eq!(TagAction::Toggle.action(Some(S::Disarmed)), PanelAction::ArmAway);
        assert_eq!(TagAction::Toggle.action(Some(S::ArmedAway)), PanelAction::Disarm);
        assert_eq!(TagAction::Toggle.action(Some(S::Triggered)), PanelAction::Disarm);
        assert_eq!(TagAction::Toggle.action(None), PanelAction::Disarm);
        assert_eq!(TagAction::ArmNight.action(Some(S::Disarmed)), PanelAction::ArmNight);
    }

    #[test]
    fn answers_speak_the_keypads_modes() {
        assert_eq!(answer("disarm", Some(7)), br#"{"arm_mode":{"mode":"disarm","transaction":7}}"#);
        assert_eq!(answer("in_alarm", None), br#"{"arm_mode":{"mode":"in_alarm"}}"#);
        assert_eq!(arm_mode(PanelState::ArmedHome), "arm_day_zones");
        assert_eq!(refusal(PanelEventKind::WrongCode), Some("invalid_code"));
        assert_eq!(refusal(PanelEventKind::FailedToArm), Some("not_ready"));
        assert_eq!(refusal(PanelEventKind::Armed), None);
    }
}
