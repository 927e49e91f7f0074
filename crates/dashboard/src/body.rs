//! The JSON bodies the dashboard's API accepts, decoded into the home's commands.
//!
//! Pure functions of the request's bytes, so that they are tested (and fuzzed: `mqtt-home`'s
//! `tests/fuzz.rs`) without a server; the handlers in `web` only check who is asking and send
//! what these return. An error is the whole 400 message: what was wrong and what to send. It
//! never quotes the body (a panel body holds a code).

use protocol::{COLOR_TEMP_RANGE_K, LightCommand, LightSource, PanelAction, PanelCommand, Payload, Power};
use serde::Deserialize;

/// The longest code the panel is sent.
pub const MAX_CODE_DIGITS: usize = 16;

/// What to send to `POST /api/panel`.
pub const PANEL_SHAPE: &str = r#"send JSON {"action":"arm_away|arm_home|arm_night|disarm","code":"<digits>"} and, for one area of several, "area":"<name>" (the code is not repeated here)"#;

/// `POST /api/panel`; its `Debug` never shows the code.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelBody {
    action: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    force: bool,
    /// One area of a panel with several; absent, the whole house.
    #[serde(default)]
    area: Option<String>,
}

/// A panel command and the area it is for (none: the whole house).
pub type PanelRequest = (Option<String>, PanelCommand);

/// `POST /api/panel`'s body as the panel command it asks for, and the area it is for.
pub fn panel_command(body: &[u8]) -> Result<PanelRequest, String> {
    // serde's message could quote the code: say only where the JSON went wrong.
    let body: PanelBody = serde_json::from_slice(body)
        .map_err(|e| format!("bad JSON at line {} column {}: {PANEL_SHAPE}", e.line(), e.column()))?;
    let action = match body.action.to_ascii_lowercase().as_str() {
        "arm_away" => PanelAction::ArmAway,
        "arm_home" => PanelAction::ArmHome,
        "arm_night" => PanelAction::ArmNight,
        "disarm" => PanelAction::Disarm,
        _ => return Err(format!("unknown action: {PANEL_SHAPE}")),
    };
    let code = body.code.filter(|c| !c.is_empty());
    if code.as_ref().is_some_and(|c| c.len() > MAX_CODE_DIGITS || !c.bytes().all(|b| b.is_ascii_digit())) {
        return Err(format!("a code is 1 to {MAX_CODE_DIGITS} digits"));
    }
    let area = body.area.filter(|a| !a.is_empty());
    if let Some(Err(e)) = area.as_deref().map(protocol::validate_id) {
        return Err(format!("area: {e}"));
    }
    Ok((area, PanelCommand { action, code, force: body.force }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LightBody {
    #[serde(default)]
    state: Option<Power>,
    #[serde(default)]
    brightness: Option<u8>,
    #[serde(default)]
    color_temp_k: Option<u16>,
}

/// `POST /api/lights/<id>`'s body as the (manual) light command it asks for.
pub fn light_command(body: &[u8]) -> Result<LightCommand, String> {
    let body: LightBody = serde_json::from_slice(body).map_err(|e| {
        format!(
            "bad JSON ({e}): send {{\"state\":\"ON\"|\"OFF\",\"brightness\":0-100,\"color_temp_k\":{}-{}}}",
            COLOR_TEMP_RANGE_K.start(),
            COLOR_TEMP_RANGE_K.end()
        )
    })?;
    let command = LightCommand {
        state: body.state,
        brightness: body.brightness,
        color_temp_k: body.color_temp_k,
        source: Some(LightSource::Manual),
        ..LightCommand::default()
    };
    command.validate().map_err(|e| e.to_string())?;
    Ok(command)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LoginBody {
    password: String,
}

/// `POST /login`'s password.
pub fn login_password(body: &[u8]) -> Result<String, String> {
    serde_json::from_slice::<LoginBody>(body)
        .map(|b| b.password)
        .map_err(|_| r#"send JSON {"password":"…"}"#.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panel_bodies() {
        let ok = |body: &str| panel_command(body.as_bytes()).unwrap().1;
        assert_eq!(
            ok(r#"{"action":"ARM_AWAY"}"#),
            PanelCommand { action: PanelAction::ArmAway, code: None, force: false }
        );
        let (area, _) = panel_command(br#"{"action":"arm_away","area":"garage"}"#).unwrap();
        assert_eq!(area.as_deref(), Some("garage"));
        let disarm = ok(r#"{"action":"disarm","code":"1234","force":true}"#);
        assert_eq!((disarm.action, disarm.code.as_deref(), disarm.force), (PanelAction::Disarm, Some("1234"), true));
        assert_eq!(ok(r#"{"action":"arm_night","code":""}"#).code, None, "an empty code is no code");
        for (body, says) in [
            (r#"{"action":"open_sesame"}"#, "unknown action"),
            (r#"{"action":"disarm","code":"12a4"}"#, "1 to 16 digits"),
            (r#"{"action":"disarm","code":"12345678901234567"}"#, "1 to 16 digits"),
            (r#"{"action":"disarm","code":1234}"#, "bad JSON at line 1"),
            (r#"{"action":"disarm","pin":"1234"}"#, "bad JSON"),
            (r#"{"action":"disarm","code":"1234","area":"a/b"}"#, "area: device id"),
        ] {
            let e = panel_command(body.as_bytes()).unwrap_err();
            assert!(e.contains(says) && !e.contains("1234"), "{body}: {e}");
        }
    }

    #[test]
    fn light_bodies() {
        let c = light_command(br#"{"brightness":40}"#).unwrap();
        assert_eq!((c.brightness, c.source), (Some(40), Some(LightSource::Manual)));
        assert!(light_command(br#"{"brightness":400}"#).unwrap_err().contains("bad JSON"));
        assert!(light_command(br#"{"color_temp_k":1}"#).is_err());
        assert!(light_command(br#"{"colour":1}"#).is_err());
    }

    #[test]
    fn login_bodies() {
        assert_eq!(login_password(br#"{"password":"open sesame"}"#).unwrap(), "open sesame");
        assert!(login_password(br#"{"password":1}"#).is_err());
        assert!(login_password(b"password=x").is_err());
    }
}
