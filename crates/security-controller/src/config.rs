//! The panel's configuration: delays per mode, zones per sensor, users and their codes, lockout.
//!
//! Bounds follow what EN 50131 panels enforce: an entry delay of at most 45 s, a siren time of
//! 2–15 min. `allow_demo_timings` relaxes them for demos only (siren 5 s, delays down to 0).

use std::collections::BTreeMap;

use protocol::{ArmMode, SensorKind};
use serde::{Deserialize, Serialize};

use crate::codes;
use crate::people::{HomeZone, Hours, Right};
use crate::schedule::{Presence, Schedule};

/// One part of the home armed on its own (`[[panel.areas]]`): the house, the garage, a flat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Area {
    /// One topic level: its status is `security/areas/<name>/status`, its commands
    /// `security/areas/<name>/set`.
    pub name: String,
    /// The sensors (device ids) that guard it. One may guard several areas (a shared hallway)
    /// and then trips those of them that are armed. A sensor no area lists guards the first.
    #[serde(default)]
    pub sensors: Vec<String>,
    /// Its own exit delays; absent, the panel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_delay_s: Option<ModeDelays>,
    /// Its own entry delays; absent, the panel's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entry_delay_s: Option<ModeDelays>,
}

impl Area {
    /// An area of `sensors` with the panel's delays.
    pub fn new(name: impl Into<String>, sensors: &[&str]) -> Area {
        Area {
            name: name.into(),
            sensors: sensors.iter().map(|s| (*s).to_owned()).collect(),
            exit_delay_s: None,
            entry_delay_s: None,
        }
    }
}

/// A zone decides what a sensor's trip does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Zone {
    /// Delayed: starts the entry delay (doors you come home through).
    #[serde(rename = "entry")]
    Entry,
    /// Instant while armed in any mode (windows).
    #[serde(rename = "perimeter")]
    Perimeter,
    /// Instant in `away` only; ignored in `home` and `night` (people are inside).
    #[serde(rename = "interior")]
    Interior,
    /// Always, even disarmed: panic buttons, tamper contacts.
    #[serde(rename = "24h")]
    TwentyFourHour,
}

impl Zone {
    /// The zone of a sensor that the config does not list.
    pub fn default_for(kind: SensorKind) -> Zone {
        match kind {
            SensorKind::Door => Zone::Entry,
            SensorKind::Window => Zone::Perimeter,
            SensorKind::Motion => Zone::Interior,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Zone::Entry => "entry",
            Zone::Perimeter => "perimeter",
            Zone::Interior => "interior",
            Zone::TwentyFourHour => "24h",
        }
    }

    /// Whether an open sensor of this zone keeps the panel from being ready to arm.
    pub fn blocks_arming(self) -> bool {
        matches!(self, Zone::Entry | Zone::Perimeter)
    }
}

/// Seconds per arm mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModeDelays {
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub away: u64,
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub home: u64,
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub night: u64,
}

impl ModeDelays {
    pub fn get(&self, mode: ArmMode) -> u64 {
        match mode {
            ArmMode::Away => self.away,
            ArmMode::Home => self.home,
            ArmMode::Night => self.night,
        }
    }
}

/// A person who may arm and disarm: a name, a code, and (optionally) what they may do and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct User {
    pub name: String,
    /// `security-controller hash-pin` prints it; the PIN itself is never stored.
    pub pin_hash: String,
    /// A duress code: disarms normally and visibly, and publishes a silent `duress` event.
    #[serde(default)]
    pub duress: bool,
    /// The name status and events show for this user instead of `name`. A duress code needs
    /// one (the person it protects), or `changed_by` would give it away.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shows_as: Option<String>,
    /// What this user may do (`arm_away`, `arm_home`, `arm_night`, `disarm`, `bypass`); absent,
    /// everything. Arming with no code where none is required is open to anyone.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub may: Option<Vec<Right>>,
    /// Weekly windows the code is valid in, on the home's clock (`[panel] time_zone`); absent,
    /// always: `hours = [{ days = ["mon", "thu"], from = "08:00", until = "12:00" }]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub hours: Vec<Hours>,
    /// The first day the code is valid (`2026-12-24`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<jiff::civil::Date>,
    /// The last day the code is valid, the whole of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<jiff::civil::Date>,
    /// The areas (`[[panel.areas]]`) this code works in; absent, every area.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub areas: Option<Vec<String>>,
    /// A tag (RFID, NFC) as a second credential with the same rights: the Argon2 hash of its id
    /// (`security-controller hash-tag`). The bridge sends a tag reader's id as the code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tag_hash: Option<String>,
}

impl User {
    /// A user with every right at any time.
    pub fn new(name: impl Into<String>, pin_hash: impl Into<String>) -> User {
        User {
            name: name.into(),
            pin_hash: pin_hash.into(),
            duress: false,
            shows_as: None,
            may: None,
            hours: Vec::new(),
            valid_from: None,
            valid_until: None,
            areas: None,
            tag_hash: None,
        }
    }

    /// Whether `code` is this user's PIN or tag. Slow on purpose (Argon2id).
    pub fn owns(&self, code: &str) -> bool {
        codes::verify_pin(code, &self.pin_hash) || self.tag_hash.as_ref().is_some_and(|h| codes::verify_pin(code, h))
    }

    /// Whether this code works in `area` (`None`: a panel without areas, where every code does).
    pub fn serves(&self, area: Option<&str>) -> bool {
        match (area, &self.areas) {
            (Some(area), Some(areas)) => areas.iter().any(|a| a == area),
            _ => true,
        }
    }

    /// The name people see: `shows_as`, else `name`.
    pub fn shown_name(&self) -> &str {
        self.shows_as.as_deref().unwrap_or(&self.name)
    }
}

/// One sensor's settings; every field falls back to its zone's or kind's default.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SensorConfig {
    pub zone: Option<Zone>,
    /// Seconds of silence after which the sensor is in trouble (0: no silence supervision).
    #[serde(default, deserialize_with = "device_runtime::duration::opt_secs")]
    pub supervision_s: Option<u64>,
    /// A chime on the siren when it opens while the panel is disarmed (a shop door, a gate).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub chime: bool,
}

/// What losing a sensor means, per zone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRule {
    /// Losing a sensor of this zone (offline, or silent past its window) while armed triggers the
    /// alarm (tamper) instead of only reporting trouble.
    pub tamper_triggers: bool,
    /// Seconds of silence after which a sensor of this zone is in trouble (0: not supervised by silence).
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub supervision_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneRules {
    pub entry: ZoneRule,
    pub perimeter: ZoneRule,
    pub interior: ZoneRule,
    #[serde(rename = "24h")]
    pub twenty_four_hour: ZoneRule,
}

impl ZoneRules {
    pub fn get(&self, zone: Zone) -> ZoneRule {
        match zone {
            Zone::Entry => self.entry,
            Zone::Perimeter => self.perimeter,
            Zone::Interior => self.interior,
            Zone::TwentyFourHour => self.twenty_four_hour,
        }
    }
}

impl Default for ZoneRules {
    fn default() -> Self {
        // Sensors heartbeat every 60 s; ten missed heartbeats is a trouble.
        let contact = ZoneRule { tamper_triggers: true, supervision_s: 600 };
        ZoneRules {
            entry: contact,
            perimeter: contact,
            interior: ZoneRule { tamper_triggers: false, supervision_s: 0 },
            twenty_four_hour: contact,
        }
    }
}

/// The `[panel]` section of `config/security-controller.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PanelConfig {
    /// Seconds between an arm command and being armed, per mode (leave the house).
    pub exit_delay_s: ModeDelays,
    /// Seconds between an entry-zone trip and the alarm, per mode (reach the keypad). At most 45.
    pub entry_delay_s: ModeDelays,
    /// Seconds the siren sounds (120–900).
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub trigger_time_s: u64,
    /// After the siren time, disarm instead of returning to the armed mode.
    pub disarm_after_trigger: bool,
    /// Whether arming needs a code too (disarming always does).
    pub code_arm_required: bool,
    /// Wrong codes within `wrong_code_window_s` that lock the keypad.
    pub max_wrong_codes: u32,
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub wrong_code_window_s: u64,
    /// Seconds every code is refused after too many wrong ones.
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub lockout_s: u64,
    /// Seconds a sensor may be offline (Last Will) before it is a trouble — and, armed, a tamper
    /// where its zone says so. A broker restart takes every device offline for a few seconds.
    #[serde(deserialize_with = "device_runtime::duration::secs")]
    pub offline_grace_s: u64,
    /// Trips of one sensor in one arming after which it is bypassed until disarm (0: no limit).
    /// A swinging sensor would otherwise re-sound the siren for as long as it moves.
    pub swinger_limit: u32,
    /// For demos only: siren time down to 5 s and delays down to 0.
    pub allow_demo_timings: bool,
    pub users: Vec<User>,
    /// The home's time zone (IANA name, `Europe/Berlin`): users' hours and dates are on its clock.
    /// Default: the machine's own zone, or UTC where it has none (a container).
    pub time_zone: HomeZone,
    /// Automatic armings by the clock, each with a warning before it that a code can answer.
    pub schedules: Vec<Schedule>,
    /// Arming when every tracked person has left.
    pub presence: Presence,
    /// A battery at or below this percent is a warning (as is a device's own `battery_low`).
    pub low_battery_percent: u8,
    /// A Zigbee link quality (0–255) at or below this is a warning: the radio may drop readings.
    pub weak_linkquality: u8,
    /// Per-sensor settings, keyed by device id.
    pub sensors: BTreeMap<String, SensorConfig>,
    pub zones: ZoneRules,
    /// Beeps through the delays, chirps on arming and disarming (the chime is per sensor).
    pub sounds: crate::sounds::Sounds,
    /// The parts of the home armed on their own; none, one panel for the whole home (its
    /// topics as they always were).
    pub areas: Vec<Area>,
    /// The area this configuration is of, in a panel with several ([`PanelConfig::area_configs`]).
    #[serde(skip)]
    pub area: Option<String>,
}

impl Default for PanelConfig {
    fn default() -> Self {
        PanelConfig {
            exit_delay_s: ModeDelays { away: 60, home: 30, night: 30 },
            entry_delay_s: ModeDelays { away: 30, home: 30, night: 15 },
            trigger_time_s: 180,
            disarm_after_trigger: false,
            code_arm_required: false,
            max_wrong_codes: 5,
            wrong_code_window_s: 300,
            lockout_s: 90,
            offline_grace_s: 30,
            swinger_limit: 3,
            allow_demo_timings: false,
            users: Vec::new(),
            time_zone: HomeZone::default(),
            schedules: Vec::new(),
            presence: Presence::default(),
            low_battery_percent: 15,
            weak_linkquality: 25,
            sensors: BTreeMap::new(),
            zones: ZoneRules::default(),
            sounds: crate::sounds::Sounds::default(),
            areas: Vec::new(),
            area: None,
        }
    }
}

/// A configuration the panel refuses, naming the key and what to do.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("panel.{key}: {problem}")]
pub struct ConfigError {
    pub key: String,
    pub problem: String,
}

impl PanelConfig {
    /// The zone of sensor `id` of `kind`.
    pub fn zone(&self, kind: SensorKind, id: &str) -> Zone {
        self.sensors.get(id).and_then(|s| s.zone).unwrap_or_else(|| Zone::default_for(kind))
    }

    /// Seconds of silence before sensor `id` is in trouble (0: never).
    pub fn supervision_s(&self, zone: Zone, id: &str) -> u64 {
        self.sensors.get(id).and_then(|s| s.supervision_s).unwrap_or_else(|| self.zones.get(zone).supervision_s)
    }

    /// Whether `user`, whose code was right, may do `right` at `now` in this configuration's area.
    pub fn allow(&self, user: &User, right: Right, now: protocol::Timestamp) -> Result<(), protocol::Refusal> {
        if !user.serves(self.area.as_deref()) {
            return Err(protocol::Refusal::NotPermitted);
        }
        user.allow(right, self.time_zone.local(now))
    }

    /// What each area's panel runs with, in the order of `[[panel.areas]]`: this configuration
    /// with the area's delays, the schedules that arm it, and its name. Without areas, this one.
    pub fn area_configs(&self) -> Vec<PanelConfig> {
        if self.areas.is_empty() {
            return vec![self.clone()];
        }
        let mut configs = Vec::with_capacity(self.areas.len());
        for area in &self.areas {
            let mut config = self.clone();
            config.exit_delay_s = area.exit_delay_s.unwrap_or(self.exit_delay_s);
            config.entry_delay_s = area.entry_delay_s.unwrap_or(self.entry_delay_s);
            config.schedules.retain(|s| s.areas.is_empty() || s.areas.contains(&area.name));
            config.areas = Vec::new();
            config.area = Some(area.name.clone());
            configs.push(config);
        }
        configs
    }

    pub fn validate(&self) -> Result<(), ConfigError> {
        let err = |key: String, problem: String| Err(ConfigError { key, problem });
        let demo = self.allow_demo_timings;
        check_delays("", &self.entry_delay_s, &self.exit_delay_s)?;
        let (min_siren, max_siren) = if demo { (5, 900) } else { (120, 900) };
        if !(min_siren..=max_siren).contains(&self.trigger_time_s) {
            return err(
                "trigger_time_s".into(),
                format!(
                    "{} s is outside {min_siren}-{max_siren} s (EN 50131: a siren sounds 2-15 min; allow_demo_timings = true for demos)",
                    self.trigger_time_s
                ),
            );
        }
        if self.max_wrong_codes == 0 {
            return err("max_wrong_codes".into(), "must be at least 1".into());
        }
        if self.lockout_s == 0 || self.wrong_code_window_s == 0 {
            return err("lockout_s".into(), "lockout_s and wrong_code_window_s must be at least 1".into());
        }
        if self.offline_grace_s > 300 {
            return err(
                "offline_grace_s".into(),
                format!("{} s is above 300 s: a tamper would go unnoticed too long", self.offline_grace_s),
            );
        }
        let mut names = std::collections::BTreeSet::new();
        for (i, user) in self.users.iter().enumerate() {
            if user.name.trim().is_empty() {
                return err(format!("users[{i}].name"), "is empty".into());
            }
            if user.duress && user.shows_as.is_none() {
                return err(
                    format!("users[{i}].shows_as"),
                    format!(
                        "duress user `{}` needs shows_as = \"<the user it protects>\", or the status would show `changed_by: {}`",
                        user.name, user.name
                    ),
                );
            }
            if !names.insert(user.name.as_str()) {
                return err(format!("users[{i}].name"), format!("`{}` appears twice", user.name));
            }
            if user.duress && (user.may.is_some() || !user.hours.is_empty() || user.valid_until.is_some()) {
                return err(
                    format!("users[{i}]"),
                    format!(
                        "duress user `{}` has may, hours or valid_until: a duress code must work always",
                        user.name
                    ),
                );
            }
            if let Some(problem) = user.problems().into_iter().next() {
                return err(format!("users[{i}]"), format!("user `{}`: {problem}", user.name));
            }
            if user.tag_hash.as_ref().is_some_and(|h| !codes::is_valid_hash(h)) {
                return err(
                    format!("users[{i}].tag_hash"),
                    format!(
                        "user `{}` has no valid Argon2 hash of a tag; make one with `security-controller hash-pin` (the tag's id as the PIN)",
                        user.name
                    ),
                );
            }
            if !codes::is_valid_hash(&user.pin_hash) {
                return err(
                    format!("users[{i}].pin_hash"),
                    format!(
                        "user `{}` has no valid Argon2 hash; make one with `security-controller hash-pin`",
                        user.name
                    ),
                );
            }
        }
        if let Some(problem) = self.presence.problem() {
            return err("presence".into(), problem);
        }
        for (i, schedule) in self.schedules.iter().enumerate() {
            if let Some(problem) = schedule.problem() {
                return err(format!("schedules[{i}]"), problem);
            }
        }
        self.validate_areas()?;
        for id in self.sensors.keys() {
            if let Err(e) = protocol::validate_id(id) {
                return err(format!("sensors.{id}"), e.to_string());
            }
        }
        Ok(())
    }
}

impl PanelConfig {
    /// Area names unique and usable in a topic, their sensors' ids and delays valid, and every
    /// area a user or schedule names one that exists.
    fn validate_areas(&self) -> Result<(), ConfigError> {
        let err = |key: String, problem: String| Err(ConfigError { key, problem });
        let mut names = std::collections::BTreeSet::new();
        for (i, area) in self.areas.iter().enumerate() {
            if let Err(e) = protocol::validate_id(&area.name) {
                return err(format!("areas[{i}].name"), format!("{e}: an area's name is one topic level"));
            }
            if !names.insert(area.name.as_str()) {
                return err(format!("areas[{i}].name"), format!("`{}` appears twice", area.name));
            }
            if let Some(Err(e)) = area.sensors.iter().map(|s| protocol::validate_id(s)).find(Result::is_err) {
                return err(format!("areas[{i}].sensors"), e.to_string());
            }
            let entry = area.entry_delay_s.unwrap_or(self.entry_delay_s);
            let exit = area.exit_delay_s.unwrap_or(self.exit_delay_s);
            check_delays(&format!("areas[{i}]."), &entry, &exit)?;
        }
        let unknown = |listed: &[String]| listed.iter().find(|a| !names.contains(a.as_str())).cloned();
        let known = || {
            if names.is_empty() {
                "there are no [[panel.areas]]".to_owned()
            } else {
                format!("the areas are {}", names.iter().copied().collect::<Vec<_>>().join(", "))
            }
        };
        for (i, user) in self.users.iter().enumerate() {
            let Some(areas) = &user.areas else { continue };
            if user.duress {
                return err(format!("users[{i}].areas"), "a duress code must work in every area".into());
            }
            if let Some(area) = unknown(areas) {
                return err(
                    format!("users[{i}].areas"),
                    format!("user `{}`: no area `{area}`; {}", user.name, known()),
                );
            }
        }
        for (i, schedule) in self.schedules.iter().enumerate() {
            if let Some(area) = unknown(&schedule.areas) {
                return err(format!("schedules[{i}].areas"), format!("no area `{area}`; {}", known()));
            }
        }
        Ok(())
    }
}

/// Entry delays within EN 50131's 45 s, exit delays within 255 s; `key` is where they are.
fn check_delays(key: &str, entry: &ModeDelays, exit: &ModeDelays) -> Result<(), ConfigError> {
    for mode in ArmMode::ALL {
        let e = entry.get(mode);
        if e > 45 {
            return Err(ConfigError {
                key: format!("{key}entry_delay_s.{mode}"),
                problem: format!("{e} s is above the EN 50131 limit of 45 s; shorten it"),
            });
        }
        let x = exit.get(mode);
        if x > 255 {
            return Err(ConfigError {
                key: format!("{key}exit_delay_s.{mode}"),
                problem: format!("{x} s is above 255 s"),
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> User {
        User::new(name, codes::hash_pin_with("1234", codes::test_params()).unwrap())
    }

    #[test]
    fn defaults_are_valid_and_zones_default_by_kind() {
        let c = PanelConfig::default();
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.zone(SensorKind::Door, "front"), Zone::Entry);
        assert_eq!(c.zone(SensorKind::Window, "w"), Zone::Perimeter);
        assert_eq!(c.zone(SensorKind::Motion, "m"), Zone::Interior);
        assert_eq!(c.supervision_s(Zone::Entry, "front"), 600);
        assert_eq!(c.supervision_s(Zone::Interior, "m"), 0);
    }

    #[test]
    fn per_sensor_settings_win() {
        let mut c = PanelConfig::default();
        c.sensors.insert(
            "panic".into(),
            SensorConfig { zone: Some(Zone::TwentyFourHour), supervision_s: Some(30), chime: false },
        );
        assert_eq!(c.zone(SensorKind::Door, "panic"), Zone::TwentyFourHour);
        assert_eq!(c.supervision_s(Zone::TwentyFourHour, "panic"), 30);
    }

    #[test]
    fn out_of_bounds_values_name_their_key() {
        let cases: Vec<(PanelConfig, &str)> = vec![
            (
                PanelConfig { entry_delay_s: ModeDelays { away: 60, home: 30, night: 15 }, ..Default::default() },
                "panel.entry_delay_s.away",
            ),
            (
                PanelConfig { exit_delay_s: ModeDelays { away: 60, home: 300, night: 15 }, ..Default::default() },
                "panel.exit_delay_s.home",
            ),
            (PanelConfig { trigger_time_s: 60, ..Default::default() }, "panel.trigger_time_s"),
            (PanelConfig { trigger_time_s: 1000, ..Default::default() }, "panel.trigger_time_s"),
            (PanelConfig { trigger_time_s: 4, allow_demo_timings: true, ..Default::default() }, "panel.trigger_time_s"),
            (PanelConfig { max_wrong_codes: 0, ..Default::default() }, "panel.max_wrong_codes"),
            (PanelConfig { users: vec![user("a"), user("a")], ..Default::default() }, "panel.users[1].name"),
            (PanelConfig { users: vec![User::new("b", "1234")], ..Default::default() }, "panel.users[0].pin_hash"),
        ];
        for (config, key) in cases {
            let e = config.validate().unwrap_err().to_string();
            assert!(e.starts_with(key), "{e}");
            assert!(!e.ends_with('.'), "{e}");
        }
        let demo = PanelConfig { trigger_time_s: 5, allow_demo_timings: true, ..Default::default() };
        assert_eq!(demo.validate(), Ok(()));
    }

    #[test]
    fn areas_users_and_schedules_must_agree() {
        let two = || vec![Area::new("house", &["front"]), Area::new("garage", &["garage-door"])];
        let with_areas = |areas: Vec<Area>, users: Vec<User>| PanelConfig { areas, users, ..Default::default() };
        let gina =
            |areas: &[&str]| User { areas: Some(areas.iter().map(|a| (*a).to_owned()).collect()), ..user("gina") };
        assert_eq!(with_areas(two(), vec![gina(&["garage"])]).validate(), Ok(()));
        let mut slow = Area::new("shed", &[]);
        slow.entry_delay_s = Some(ModeDelays { away: 60, home: 0, night: 0 });
        let schedule: crate::schedule::Schedule =
            toml::from_str("arm = \"away\"\nat = \"22:00\"\nareas = [\"attic\"]").unwrap();
        let cases: Vec<(PanelConfig, &str, &str)> = vec![
            (
                with_areas(two(), vec![gina(&["attic"])]),
                "panel.users[0].areas",
                "no area `attic`; the areas are garage, house",
            ),
            (with_areas(vec![], vec![gina(&["garage"])]), "panel.users[0].areas", "there are no [[panel.areas]]"),
            (with_areas(vec![Area::new("a", &[]), Area::new("a", &[])], vec![]), "panel.areas[1].name", "twice"),
            (with_areas(vec![Area::new("up stairs", &[])], vec![]), "panel.areas[0].name", "one topic level"),
            (with_areas(vec![Area::new("a", &["x/y"])], vec![]), "panel.areas[0].sensors", "ASCII"),
            (with_areas(vec![slow], vec![]), "panel.areas[0].entry_delay_s.away", "45 s"),
            (
                PanelConfig { schedules: vec![schedule], ..with_areas(two(), vec![]) },
                "panel.schedules[0].areas",
                "attic",
            ),
        ];
        for (config, key, says) in cases {
            let e = config.validate().unwrap_err().to_string();
            assert!(e.starts_with(key) && e.contains(says), "{e}");
        }
        let duress = User { duress: true, shows_as: Some("gina".into()), ..gina(&["garage"]) };
        let e = with_areas(two(), vec![duress]).validate().unwrap_err().to_string();
        assert!(e.contains("duress code must work in every area"), "{e}");
    }

    #[test]
    fn each_area_runs_with_its_own_delays_schedules_and_name() {
        let mut garage = Area::new("garage", &[]);
        garage.exit_delay_s = Some(ModeDelays { away: 0, home: 0, night: 0 });
        let schedule = |areas: &[&str]| crate::schedule::Schedule {
            arm: ArmMode::Away,
            at: "22:00".parse().unwrap(),
            days: crate::people::Day::ALL.to_vec(),
            warn_min: 5,
            areas: areas.iter().map(|a| (*a).to_owned()).collect(),
        };
        let c = PanelConfig {
            areas: vec![Area::new("house", &[]), garage],
            schedules: vec![schedule(&["garage"]), schedule(&[])],
            ..Default::default()
        };
        let configs = c.area_configs();
        assert_eq!(configs.iter().map(|c| c.area.as_deref()).collect::<Vec<_>>(), [Some("house"), Some("garage")]);
        assert_eq!((configs[0].exit_delay_s.away, configs[1].exit_delay_s.away), (60, 0));
        assert_eq!((configs[0].schedules.len(), configs[1].schedules.len()), (1, 2));
        assert_eq!(PanelConfig::default().area_configs(), [PanelConfig::default()], "no areas: the panel as it is");
    }

    #[test]
    fn zone_names_in_toml() {
        let c: PanelConfig =
            toml::from_str("[sensors.panic]\nzone = \"24h\"\n[sensors.garage]\nzone = \"perimeter\"\n").unwrap();
        assert_eq!(c.sensors["panic"].zone, Some(Zone::TwentyFourHour));
        assert!(toml::from_str::<PanelConfig>("[sensors.x]\nzone = \"garden\"\n").is_err());
    }
}
