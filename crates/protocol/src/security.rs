//! Home-security payloads: sensor readings, the alarm panel (Home Assistant's
//! `alarm_control_panel` vocabulary) and the siren.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::device::clip;
use crate::payload::{DecodeError, Payload, decode_json, is_json, text};
use crate::{Power, Timestamp};

/// The kinds of binary sensor, each with its own topic level under `<root>/security/`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SensorKind {
    Motion,
    Door,
    Window,
}

impl SensorKind {
    pub const ALL: [SensorKind; 3] = [SensorKind::Motion, SensorKind::Door, SensorKind::Window];

    pub fn as_str(self) -> &'static str {
        match self {
            SensorKind::Motion => "motion",
            SensorKind::Door => "door",
            SensorKind::Window => "window",
        }
    }

    pub(crate) fn from_topic_level(level: &str) -> Option<SensorKind> {
        SensorKind::ALL.into_iter().find(|k| k.as_str() == level)
    }

    /// The state meaning "something is happening": `MOTION` or `OPEN`.
    pub fn active(self) -> SensorState {
        match self {
            SensorKind::Motion => SensorState::Motion,
            SensorKind::Door | SensorKind::Window => SensorState::Open,
        }
    }

    /// The resting state: `NO_MOTION` or `CLOSED`.
    pub fn idle(self) -> SensorState {
        match self {
            SensorKind::Motion => SensorState::NoMotion,
            SensorKind::Door | SensorKind::Window => SensorState::Closed,
        }
    }
}

impl std::fmt::Display for SensorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A binary sensor's state: `MOTION`/`NO_MOTION` for motion, `OPEN`/`CLOSED` for contacts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SensorState {
    Motion,
    NoMotion,
    Open,
    Closed,
}

/// `MOTION`/`NO_MOTION` by its usual name.
pub type MotionState = SensorState;
/// `OPEN`/`CLOSED` by its usual name.
pub type ContactState = SensorState;

impl SensorState {
    /// `MOTION` or `OPEN`.
    pub fn is_active(self) -> bool {
        matches!(self, SensorState::Motion | SensorState::Open)
    }

    /// The kind of sensor that reports this state.
    pub fn fits(self, kind: SensorKind) -> bool {
        self == kind.active() || self == kind.idle()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            SensorState::Motion => "MOTION",
            SensorState::NoMotion => "NO_MOTION",
            SensorState::Open => "OPEN",
            SensorState::Closed => "CLOSED",
        }
    }

    fn from_word(word: &str) -> Option<SensorState> {
        [SensorState::Motion, SensorState::NoMotion, SensorState::Open, SensorState::Closed]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(word))
    }
}

/// Retained on `<root>/security/<kind>/<id>`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SensorReading {
    pub state: SensorState,
    pub device_id: String,
    pub ts: Timestamp,
}

impl Payload for SensorReading {
    const WHAT: &'static str = "sensor reading";
}

/// A JSON reading whose `state` is a plain string: see [`SensorReading::decode_for`].
#[derive(Deserialize)]
struct PlainReading<'a> {
    state: &'a str,
    device_id: Option<String>,
    ts: Option<Timestamp>,
}

impl SensorReading {
    /// Reads a reading on a `kind` topic by what it means, as real devices send it:
    ///
    /// - JSON with a `state`; `device_id` and `ts` are optional (the topic names the device and
    ///   the receiver's clock stands in: `device_id` is then empty and `ts` zero), `ts` is RFC 3339
    ///   with any offset or an epoch number, and other fields (`battery`, `linkquality`) are
    ///   ignored;
    /// - the state as a word in any case, per kind: `OPEN`/`CLOSED`, `MOTION`/`NO_MOTION`, and for
    ///   every kind `ON`/`OFF`, `true`/`false`, `1`/`0` (active/idle); in JSON also as a boolean
    ///   or a number; bare, as a person types it into `mosquitto_pub`.
    ///
    /// A state of another kind (a door saying `MOTION`) is an error that says so.
    pub fn decode_for(kind: SensorKind, bytes: &[u8]) -> Result<SensorReading, DecodeError> {
        let s = text(Self::WHAT, bytes)?;
        if !s.starts_with('{') {
            let word = s.trim_matches('"');
            let state = kind.state_of(word)?.ok_or_else(|| {
                DecodeError::invalid(
                    Self::WHAT,
                    format!("`{}` is not JSON or a {kind} state ({})", clip(s), kind.words()),
                )
            })?;
            return Ok(SensorReading { state, device_id: String::new(), ts: Timestamp(0) });
        }
        // The common form, read straight into its fields (no map of values): what a sensor of the
        // home sends. Anything else (a boolean or numeric state, an escaped string, a field of the
        // wrong type) is read the general way below, which also says what is wrong.
        if let Ok(plain) = serde_json::from_str::<PlainReading<'_>>(s)
            && let Some(state) = kind.state_of(plain.state)?
        {
            return Ok(SensorReading {
                state,
                device_id: plain.device_id.unwrap_or_default(),
                ts: plain.ts.unwrap_or(Timestamp(0)),
            });
        }
        let serde_json::Value::Object(fields) = decode_json::<serde_json::Value>(Self::WHAT, bytes)? else {
            unreachable!("a payload that starts with `{{` and parses is an object")
        };
        let bad = |detail: String| DecodeError::invalid(Self::WHAT, detail);
        let state = match fields.get("state") {
            Some(serde_json::Value::String(word)) => kind.state_of(word)?,
            Some(serde_json::Value::Bool(on)) => Some(if *on { kind.active() } else { kind.idle() }),
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(1) => Some(kind.active()),
            Some(serde_json::Value::Number(n)) if n.as_u64() == Some(0) => Some(kind.idle()),
            Some(other) => {
                return Err(bad(format!(
                    "state {} is not a {kind} state ({})",
                    clip(&other.to_string()),
                    kind.words()
                )));
            }
            None => return Err(bad(format!("no `state` field; a {kind} reading needs one ({})", kind.words()))),
        }
        .ok_or_else(|| bad(format!("state {} is not a {kind} state ({})", fields["state"], kind.words())))?;
        let device_id = match fields.get("device_id") {
            None | Some(serde_json::Value::Null) => String::new(),
            Some(serde_json::Value::String(id)) => id.clone(),
            Some(other) => return Err(bad(format!("device_id {} is not a string", clip(&other.to_string())))),
        };
        let ts = match fields.get("ts") {
            None | Some(serde_json::Value::Null) => Timestamp(0),
            Some(ts) => serde_json::from_value(ts.clone()).map_err(|e| bad(format!("ts: {e}")))?,
        };
        Ok(SensorReading { state, device_id, ts })
    }
}

impl SensorKind {
    /// The state a word means for this kind; `Ok(None)` for a word no sensor uses, an error for
    /// the state of another kind.
    fn state_of(self, word: &str) -> Result<Option<SensorState>, DecodeError> {
        let word = word.trim().to_ascii_uppercase();
        let meant = match word.as_str() {
            "ON" | "TRUE" | "1" => Some(self.active()),
            "OFF" | "FALSE" | "0" => Some(self.idle()),
            _ => SensorState::from_word(&word),
        };
        match meant {
            Some(state) if !state.fits(self) => Err(DecodeError::invalid(
                SensorReading::WHAT,
                format!(
                    "a {self} sensor reports {} or {}, not {}",
                    self.active().as_str(),
                    self.idle().as_str(),
                    state.as_str()
                ),
            )),
            meant => Ok(meant),
        }
    }

    /// The words a reading of this kind may say, for error messages.
    fn words(self) -> String {
        format!("{}/{}, ON/OFF, true/false, 1/0", self.active().as_str(), self.idle().as_str())
    }
}

/// The three armed modes of the panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ArmMode {
    Away,
    Home,
    Night,
}

impl ArmMode {
    pub const ALL: [ArmMode; 3] = [ArmMode::Away, ArmMode::Home, ArmMode::Night];

    pub fn as_str(self) -> &'static str {
        match self {
            ArmMode::Away => "away",
            ArmMode::Home => "home",
            ArmMode::Night => "night",
        }
    }

    /// The Home Assistant state of a panel armed in this mode.
    pub fn armed_state(self) -> PanelState {
        match self {
            ArmMode::Away => PanelState::ArmedAway,
            ArmMode::Home => PanelState::ArmedHome,
            ArmMode::Night => PanelState::ArmedNight,
        }
    }
}

impl std::fmt::Display for ArmMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The panel's state, in Home Assistant's lowercase `alarm_control_panel` strings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelState {
    Disarmed,
    Arming,
    ArmedHome,
    ArmedAway,
    ArmedNight,
    Pending,
    Triggered,
}

impl PanelState {
    pub fn as_str(self) -> &'static str {
        match self {
            PanelState::Disarmed => "disarmed",
            PanelState::Arming => "arming",
            PanelState::ArmedHome => "armed_home",
            PanelState::ArmedAway => "armed_away",
            PanelState::ArmedNight => "armed_night",
            PanelState::Pending => "pending",
            PanelState::Triggered => "triggered",
        }
    }
}

impl std::fmt::Display for PanelState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The actions of Home Assistant's alarm panel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum PanelAction {
    ArmAway,
    ArmHome,
    ArmNight,
    Disarm,
    Trigger,
}

impl PanelAction {
    const ALL: [PanelAction; 5] =
        [PanelAction::ArmAway, PanelAction::ArmHome, PanelAction::ArmNight, PanelAction::Disarm, PanelAction::Trigger];

    pub fn as_str(self) -> &'static str {
        match self {
            PanelAction::ArmAway => "ARM_AWAY",
            PanelAction::ArmHome => "ARM_HOME",
            PanelAction::ArmNight => "ARM_NIGHT",
            PanelAction::Disarm => "DISARM",
            PanelAction::Trigger => "TRIGGER",
        }
    }

    /// The mode an arm action asks for.
    pub fn arm_mode(self) -> Option<ArmMode> {
        match self {
            PanelAction::ArmAway => Some(ArmMode::Away),
            PanelAction::ArmHome => Some(ArmMode::Home),
            PanelAction::ArmNight => Some(ArmMode::Night),
            PanelAction::Disarm | PanelAction::Trigger => None,
        }
    }
}

/// Sent to `<root>/security/panel/set`: `{"action":"ARM_AWAY","code":"1234","force":false}` or a bare `ARM_AWAY`.
///
/// Its `Debug` never shows the code. Home Assistant sends `"code":"None"` when it has no code;
/// that, and an empty string, read as no code.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelCommand {
    pub action: PanelAction,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub force: bool,
}

impl std::fmt::Debug for PanelCommand {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PanelCommand")
            .field("action", &self.action)
            .field("code", &self.code.as_ref().map(|_| "<redacted>"))
            .field("force", &self.force)
            .finish()
    }
}

impl Payload for PanelCommand {
    const WHAT: &'static str = "panel command";

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let s = text(Self::WHAT, bytes)?;
        let mut command: PanelCommand = if is_json(s) {
            // serde's messages quote the offending value; for a panel command that could be a PIN.
            decode_json(Self::WHAT, bytes).map_err(|e| match e {
                DecodeError::Json { what, detail } => DecodeError::Json { what, detail: redact_json_detail(&detail) },
                other => other,
            })?
        } else {
            let action =
                PanelAction::ALL.into_iter().find(|a| a.as_str().eq_ignore_ascii_case(s)).ok_or_else(|| {
                    DecodeError::invalid(
                        Self::WHAT,
                        "not JSON and not one of ARM_AWAY, ARM_HOME, ARM_NIGHT, DISARM, TRIGGER",
                    )
                })?;
            PanelCommand { action, code: None, force: false }
        };
        if matches!(command.code.as_deref(), Some("") | Some("None")) {
            command.code = None;
        }
        Ok(command)
    }
}

/// Keeps serde's position information but drops any quoted value, which might be a PIN.
fn redact_json_detail(detail: &str) -> String {
    let mut out = String::new();
    let mut in_quote = false;
    for c in detail.chars() {
        match c {
            '`' if !in_quote => {
                in_quote = true;
                out.push_str("`…");
            }
            '`' => {
                in_quote = false;
                out.push('`');
            }
            _ if in_quote => {}
            _ => out.push(c),
        }
    }
    out
}

/// Retained on `<root>/security/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelStatus {
    /// Home Assistant's state string; `value_template: {{ value_json.state }}`.
    pub state: PanelState,
    /// The mode being armed, armed, or that tripped (absent when disarmed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ArmMode>,
    /// Whether arming would succeed without `force`.
    pub ready: bool,
    /// Entry and perimeter sensors open now.
    pub open_sensors: Vec<String>,
    /// Sensors bypassed for this arming.
    pub bypassed: Vec<String>,
    /// Sensors offline or silent past their supervision window, or with their tamper switch open.
    pub troubles: Vec<String>,
    /// What needs looking after but keeps nothing from arming: `front: battery low (9 %)`,
    /// `hall: weak radio (link quality 12)`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<String>,
    /// Seconds left of the exit or entry delay, or of the siren time while triggered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delay_remaining_s: Option<u64>,
    /// The sensor (or `panel` for a TRIGGER command) that last tripped the alarm, and when.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_trigger_ts: Option<Timestamp>,
    /// The user who last armed or disarmed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub changed_by: Option<String>,
    /// Seconds until codes are accepted again after too many wrong ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lockout_remaining_s: Option<u64>,
    /// The area this status is of (`security/areas/<area>/status`); absent on the house's status.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    /// On the house's status of a panel with several areas: each area's state. Empty with one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub areas: BTreeMap<String, PanelState>,
    pub device_id: String,
    pub ts: Timestamp,
}

impl Payload for PanelStatus {
    const WHAT: &'static str = "panel status";
}

/// What happened, one per line of the panel's history.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PanelEventKind {
    Arming,
    Armed,
    Disarmed,
    FailedToArm,
    EntryStarted,
    Triggered,
    AlarmEnded,
    WrongCode,
    Lockout,
    CodeRefused,
    Duress,
    Trouble,
    Restored,
    Bypassed,
    /// A sensor the panel had only learned from the broker was taken out (its retained reading cleared).
    Removed,
    /// A right code, but its user may not do that, or not now: `reason` says which.
    Refused,
    /// A scheduled arming comes in a few minutes; a DISARM with a code cancels it.
    AutoArmWarning,
    /// A scheduled arming was cancelled (by `user`).
    AutoArmCancelled,
    /// A device needs looking after (a low battery, a weak radio); it keeps nothing from arming.
    Warning,
}

impl PanelEventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PanelEventKind::Arming => "arming",
            PanelEventKind::Armed => "armed",
            PanelEventKind::Disarmed => "disarmed",
            PanelEventKind::FailedToArm => "failed_to_arm",
            PanelEventKind::EntryStarted => "entry_started",
            PanelEventKind::Triggered => "triggered",
            PanelEventKind::AlarmEnded => "alarm_ended",
            PanelEventKind::WrongCode => "wrong_code",
            PanelEventKind::Lockout => "lockout",
            PanelEventKind::CodeRefused => "code_refused",
            PanelEventKind::Duress => "duress",
            PanelEventKind::Trouble => "trouble",
            PanelEventKind::Restored => "restored",
            PanelEventKind::Bypassed => "bypassed",
            PanelEventKind::Removed => "removed",
            PanelEventKind::Refused => "refused",
            PanelEventKind::AutoArmWarning => "auto_arm_warning",
            PanelEventKind::AutoArmCancelled => "auto_arm_cancelled",
            PanelEventKind::Warning => "warning",
        }
    }
}

/// Published (not retained) on `<root>/security/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PanelEvent {
    pub event: PanelEventKind,
    /// Unique to this event, assigned by the panel as it publishes it (`<run>-<n>`: a random
    /// number per panel run, then a count), so that a reader tells a redelivery from a new event
    /// of the same kind in the same millisecond. Absent from events of older panels.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<ArmMode>,
    /// The user whose code was used (never the code).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The sensors concerned (open, bypassed, tripped, in trouble).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sensors: Vec<String>,
    /// Why a right code was refused (`refused` events only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<Refusal>,
    /// What a trouble, warning, restore or alarm is about, when it is one of the [`Cause`]s a
    /// monitoring centre reports by a code of its own (a tamper, a low battery).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<Cause>,
    /// A sentence for people.
    pub message: String,
    /// The area it happened in, when the panel serves several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub area: Option<String>,
    pub device_id: String,
    pub ts: Timestamp,
}

/// What a `trouble`, `warning`, `restored` or `triggered` event is about, where it is more than a
/// sensor's fault or trip: what a monitoring centre gets its own code for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Cause {
    /// A device's tamper switch (its case opened, torn off the wall).
    Tamper,
    /// A device's battery is low.
    BatteryLow,
    /// A device's radio link is weak.
    WeakRadio,
}

/// Why a user whose code was right may not do what they asked. Never about the code itself: a
/// wrong code is a `wrong_code` event, which says nothing of why.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// The user has no right to this action (`may` in the panel's config).
    NotPermitted,
    /// Not in any of the user's hours.
    OutsideHours,
    /// Past the user's `valid_until`.
    Expired,
    /// Before the user's `valid_from`.
    NotYetValid,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotPermitted => "not_permitted",
            Refusal::OutsideHours => "outside_hours",
            Refusal::Expired => "expired",
            Refusal::NotYetValid => "not_yet_valid",
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Payload for PanelEvent {
    const WHAT: &'static str = "panel event";
}

/// Retained on `<root>/security/leader` when panels run as a pair (`standby = true`): which panel
/// is active, for which term. The active one renews it every third of its lease; a standby that
/// hears no renewal for a lease (or the holder's availability go `offline`) claims the next term.
/// The claim with the highest term wins; of two with the same term, the one the broker delivered
/// last.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelLeader {
    /// The MQTT id of the panel that holds (or claims) the term.
    pub holder: String,
    pub term: u64,
    pub ts: Timestamp,
}

impl Payload for PanelLeader {
    const WHAT: &'static str = "panel leader claim";
}

/// Retained on `<root>/security/snapshot` by the active panel of a pair, on every change: its
/// whole state, as its state file holds it, for the standby to take over from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PanelSnapshot {
    pub holder: String,
    pub term: u64,
    /// The panel's state file's content (its own format, versioned there).
    pub state: serde_json::Value,
    pub ts: Timestamp,
}

impl Payload for PanelSnapshot {
    const WHAT: &'static str = "panel snapshot";
}

/// What the siren plays: the alarm itself, or one of the short sounds of a panel's day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Tone {
    /// The siren: what `ON` without a tone is.
    Alarm,
    /// Slow beeps through the exit delay: leave now.
    ExitBeeps,
    /// Fast beeps through the entry delay: disarm now.
    EntryBeeps,
    /// A door opened while disarmed (per sensor, `chime = true`).
    Chime,
    /// One chirp: armed.
    ArmChirp,
    /// Two chirps: disarmed.
    DisarmChirp,
}

impl Tone {
    pub const ALL: [Tone; 6] =
        [Tone::Alarm, Tone::ExitBeeps, Tone::EntryBeeps, Tone::Chime, Tone::ArmChirp, Tone::DisarmChirp];

    pub fn as_str(self) -> &'static str {
        match self {
            Tone::Alarm => "alarm",
            Tone::ExitBeeps => "exit_beeps",
            Tone::EntryBeeps => "entry_beeps",
            Tone::Chime => "chime",
            Tone::ArmChirp => "arm_chirp",
            Tone::DisarmChirp => "disarm_chirp",
        }
    }
}

/// Sent to `<root>/control/alarm` (QoS 1; applying it twice is applying it once): `{"state":"ON","reason":"…"}`, or a bare `ON`/`OFF`.
/// With a `tone` other than `alarm`, a sound short of the alarm (`{"state":"ON","tone":"exit_beeps","duration_s":30}`),
/// stopped by `OFF` with the same tone; `OFF` without a tone stops everything.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlarmCommand {
    pub state: Power,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Absent: the alarm (`alarm`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone: Option<Tone>,
    /// Seconds a sound plays (beeps: the delay); absent, the tone's own length.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_s: Option<u64>,
    /// The term of the panel that sent it, when panels run as a pair ([`PanelLeader`]): the
    /// siren ignores a command of a lower term than one it has obeyed (a deposed panel's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub term: Option<u64>,
}

impl AlarmCommand {
    /// The siren on or off, for `reason`.
    pub fn siren(state: Power, reason: Option<String>) -> AlarmCommand {
        AlarmCommand { state, reason, tone: None, duration_s: None, term: None }
    }

    /// The tone this command is about: `alarm` when it names none.
    pub fn tone(&self) -> Tone {
        self.tone.unwrap_or(Tone::Alarm)
    }
}

impl Payload for AlarmCommand {
    const WHAT: &'static str = "alarm command";

    fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        let s = text(Self::WHAT, bytes)?;
        if is_json(s) {
            return decode_json(Self::WHAT, bytes);
        }
        Power::from_word(s)
            .map(|state| AlarmCommand::siren(state, None))
            .ok_or_else(|| DecodeError::invalid(Self::WHAT, format!("`{}` is not JSON, ON or OFF", clip(s))))
    }
}

/// Retained on `<root>/security/alarm` by the siren.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlarmState {
    pub state: Power,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// When the siren entered this state.
    pub since: Timestamp,
    /// A sound short of the alarm playing now (beeps, a chime, a chirp); `state` stays `OFF`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tone: Option<Tone>,
    pub device_id: String,
    pub ts: Timestamp,
}

impl Payload for AlarmState {
    const WHAT: &'static str = "alarm state";
}

/// The siren's state by its usual name.
pub type SirenState = AlarmState;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sensor_readings_must_fit_their_kind() {
        let open = br#"{"state":"OPEN","device_id":"front","ts":"2026-11-22T18:04:05.120Z"}"#;
        assert_eq!(SensorReading::decode_for(SensorKind::Door, open).unwrap().state, SensorState::Open);
        let err = SensorReading::decode_for(SensorKind::Motion, open).unwrap_err().to_string();
        assert!(err.contains("a motion sensor reports MOTION or NO_MOTION, not OPEN"), "{err}");
        assert_eq!(SensorReading::decode_for(SensorKind::Motion, b"motion").unwrap().state, SensorState::Motion);
        assert!(SensorReading::decode_for(SensorKind::Window, b"ajar").is_err());
    }

    /// Every payload of the issue's table, on a door topic, means open.
    #[test]
    fn readings_are_read_by_what_they_mean() {
        let t = Timestamp(1_795_664_447_137);
        let cases: &[(&str, &str, Timestamp)] = &[
            ("OPEN", "", Timestamp(0)),
            ("open", "", Timestamp(0)),
            ("ON", "", Timestamp(0)),
            ("1", "", Timestamp(0)),
            ("true", "", Timestamp(0)),
            (r#""OPEN""#, "", Timestamp(0)),
            (r#"{"state":"OPEN"}"#, "", Timestamp(0)),
            (r#"{"state":"open"}"#, "", Timestamp(0)),
            (r#"{"state":true}"#, "", Timestamp(0)),
            (r#"{"state":1}"#, "", Timestamp(0)),
            (r#"{"state":"OPEN","device_id":"x","ts":"2026-11-26T03:40:47.137782+00:00"}"#, "x", t),
            (r#"{"state":"OPEN","device_id":"x","ts":"2026-11-26T03:40:47.137Z","battery":97}"#, "x", t),
            (r#"{"state":"OPEN","ts":1795664447.137}"#, "", t),
            (r#"{"state":"OPEN","ts":1795664447137}"#, "", t),
            (r#"{"state":"OPEN","device_id":null,"ts":null}"#, "", Timestamp(0)),
        ];
        for (payload, id, ts) in cases {
            let reading = SensorReading::decode_for(SensorKind::Door, payload.as_bytes());
            assert_eq!(
                reading,
                Ok(SensorReading { state: SensorState::Open, device_id: id.to_string(), ts: *ts }),
                "{payload}"
            );
        }
        for (payload, state) in [
            ("OFF", SensorState::NoMotion),
            ("false", SensorState::NoMotion),
            ("no_motion", SensorState::NoMotion),
            (r#"{"state":"ON"}"#, SensorState::Motion),
        ] {
            assert_eq!(
                SensorReading::decode_for(SensorKind::Motion, payload.as_bytes()).map(|r| r.state),
                Ok(state),
                "{payload}"
            );
        }
    }

    #[test]
    fn what_cannot_be_read_says_why() {
        for (payload, needle) in [
            ("ajar", "`ajar` is not JSON or a door state (OPEN/CLOSED, ON/OFF, true/false, 1/0)"),
            ("MOTION", "a door sensor reports OPEN or CLOSED, not MOTION"),
            (r#"{"contact":false}"#, "no `state` field"),
            (r#"{"state":"ajar"}"#, "state \"ajar\" is not a door state"),
            (r#"{"state":2}"#, "state 2 is not a door state"),
            (r#"{"state":"OPEN","ts":"yesterday"}"#, "ts: `yesterday` is not an RFC 3339 time"),
            (r#"{"state":"OPEN","device_id":7}"#, "device_id 7 is not a string"),
            ("{", "EOF"),
        ] {
            let err = SensorReading::decode_for(SensorKind::Door, payload.as_bytes()).unwrap_err().to_string();
            assert!(err.contains(needle) && err.starts_with("sensor reading"), "{payload}: {err}");
        }
    }

    #[test]
    fn panel_commands_read_home_assistant_and_bare_words() {
        let ha = PanelCommand::decode(br#"{"action":"DISARM","code":"1234"}"#).unwrap();
        assert_eq!((ha.action, ha.code.as_deref(), ha.force), (PanelAction::Disarm, Some("1234"), false));
        let none = PanelCommand::decode(br#"{"action":"ARM_AWAY","code":"None"}"#).unwrap();
        assert_eq!(none.code, None);
        let bare = PanelCommand::decode(b"arm_night").unwrap();
        assert_eq!((bare.action, bare.code), (PanelAction::ArmNight, None));
        let forced = PanelCommand::decode(br#"{"action":"ARM_HOME","force":true}"#).unwrap();
        assert!(forced.force);
        assert!(PanelCommand::decode(b"ARM_VACATION").is_err());
        assert!(PanelCommand::decode(br#"{"action":"DISARM","pin":"1234"}"#).is_err());
    }

    #[test]
    fn panel_command_errors_and_debug_never_show_the_code() {
        let err = PanelCommand::decode(br#"{"action":"DISARM","code":4321}"#).unwrap_err().to_string();
        assert!(!err.contains("4321"), "{err}");
        let err = PanelCommand::decode(br#"{"action":"DISARM","code":"4321","x":"4321"}"#).unwrap_err().to_string();
        assert!(!err.contains("4321"), "{err}");
        let cmd = PanelCommand { action: PanelAction::Disarm, code: Some("4321".into()), force: false };
        assert!(!format!("{cmd:?}").contains("4321"));
    }

    #[test]
    fn alarm_commands_accept_bare_words() {
        assert_eq!(AlarmCommand::decode(b"ON").unwrap(), AlarmCommand::siren(Power::On, None));
        let json = AlarmCommand::decode(br#"{"state":"OFF","reason":"disarmed"}"#).unwrap();
        assert_eq!((json.state, json.reason.as_deref(), json.tone()), (Power::Off, Some("disarmed"), Tone::Alarm));
        assert!(AlarmCommand::decode(b"LOUD").is_err());
        let beeps = AlarmCommand::decode(br#"{"state":"ON","tone":"exit_beeps","duration_s":30}"#).unwrap();
        assert_eq!((beeps.tone(), beeps.duration_s), (Tone::ExitBeeps, Some(30)));
        assert!(AlarmCommand::decode(br#"{"state":"ON","tone":"kazoo"}"#).is_err());
    }

    #[test]
    fn panel_states_are_home_assistant_strings() {
        let json = serde_json::to_string(&[PanelState::ArmedAway, PanelState::Disarmed, PanelState::Pending]).unwrap();
        assert_eq!(json, r#"["armed_away","disarmed","pending"]"#);
    }
}
