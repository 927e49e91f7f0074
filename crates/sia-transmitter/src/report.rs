//! Which of the panel's events the monitoring centre is told, and in which code. Pure.
//!
//! Each event becomes zero or more [`Signal`]s (a `triggered` with one sensor is one burglary
//! signal of that sensor's zone); each signal is written as SIA DCS or Contact ID by
//! [`Signal::body`]. Zones, users and areas travel as the numbers the centre was given
//! (`[zones]`, `[users]`, `[areas]` in the config); one it was not given is 0.

use std::collections::BTreeMap;

use protocol::{ArmMode, Cause, PanelEvent, PanelEventKind};
use serde::{Deserialize, Serialize};

use crate::dc09::Body;

/// The encoding the centre reads.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// SIA DCS (`"SIA-DCS"`, `Nri1/BA03`).
    #[default]
    SiaDcs,
    /// Ademco Contact ID (`"ADM-CID"`, `1130 01 003`).
    ContactId,
}

/// What the centre is told, in the home's words.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    Burglary,
    BurglaryRestore,
    /// A code entered under duress: a silent hold-up alarm.
    Duress,
    Tamper,
    TamperRestore,
    Trouble,
    TroubleRestore,
    LowBattery,
    LowBatteryRestore,
    /// Armed away by a user.
    Closing,
    /// Armed by a schedule or by presence (nobody's code).
    AutomaticClosing,
    /// Armed home or night: the perimeter only.
    PerimeterArmed,
    /// Disarmed by a user.
    Opening,
    /// Disarmed by presence (nobody's code).
    AutomaticOpening,
    FailToClose,
    /// The keypad locked out after wrong codes.
    CodeTamper,
    Bypass,
    /// A periodic test report.
    Test,
}

impl Code {
    /// The SIA DCS event code.
    pub fn sia(self) -> &'static str {
        match self {
            Code::Burglary => "BA",
            Code::BurglaryRestore => "BR",
            Code::Duress => "HA",
            Code::Tamper => "TA",
            Code::TamperRestore => "TR",
            Code::Trouble => "BT",
            Code::TroubleRestore => "BJ",
            Code::LowBattery => "XT",
            Code::LowBatteryRestore => "XR",
            Code::Closing => "CL",
            Code::AutomaticClosing => "CA",
            Code::PerimeterArmed => "NL",
            Code::Opening => "OP",
            Code::AutomaticOpening => "OA",
            Code::FailToClose => "CI",
            Code::CodeTamper => "JA",
            Code::Bypass => "BB",
            Code::Test => "RP",
        }
    }

    /// The Contact ID qualifier (1 new event or opening, 3 restore or closing) and event code.
    pub fn contact_id(self) -> (u8, u16) {
        match self {
            Code::Burglary => (1, 130),
            Code::BurglaryRestore => (3, 130),
            Code::Duress => (1, 121),
            Code::Tamper => (1, 137),
            Code::TamperRestore => (3, 137),
            Code::Trouble => (1, 380),
            Code::TroubleRestore => (3, 380),
            Code::LowBattery => (1, 384),
            Code::LowBatteryRestore => (3, 384),
            Code::Closing => (3, 401),
            Code::AutomaticClosing => (3, 403),
            Code::PerimeterArmed => (3, 441),
            Code::Opening => (1, 401),
            Code::AutomaticOpening => (1, 403),
            Code::FailToClose => (1, 454),
            Code::CodeTamper => (1, 461),
            Code::Bypass => (1, 570),
            Code::Test => (1, 602),
        }
    }

    /// Alarms go first and are never dropped to make room.
    pub fn is_alarm(self) -> bool {
        matches!(self, Code::Burglary | Code::Duress | Code::Tamper)
    }
}

/// One report: a code, the zone or user it concerns, and the area.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signal {
    pub code: Code,
    /// Zone (sensor) or user number; 0 when the centre was given none.
    pub number: u16,
    pub area: u16,
}

impl Signal {
    pub fn body(&self, format: Format) -> Body {
        match format {
            Format::SiaDcs => Body::Dcs { area: self.area, code: self.code.sia().to_owned(), number: self.number },
            Format::ContactId => {
                let (qualifier, event) = self.code.contact_id();
                let partition = u8::try_from(self.area).unwrap_or(u8::MAX).min(99);
                Body::ContactId { qualifier, event, partition, number: self.number.min(999) }
            }
        }
    }
}

/// The numbers the centre knows the home's sensors, users and areas by.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Numbers {
    /// Sensor id → zone number.
    pub zones: BTreeMap<String, u16>,
    /// User name → user number.
    pub users: BTreeMap<String, u16>,
    /// Area name → area (partition) number; a panel without areas is area 1.
    pub areas: BTreeMap<String, u16>,
}

impl Numbers {
    fn zone(&self, sensor: &str) -> u16 {
        self.zones.get(sensor).copied().unwrap_or(0)
    }

    fn user(&self, user: Option<&str>) -> u16 {
        user.and_then(|u| self.users.get(u)).copied().unwrap_or(0)
    }

    fn area(&self, area: Option<&str>) -> u16 {
        area.map_or(1, |a| self.areas.get(a).copied().unwrap_or(0))
    }

    /// The sensors of an event that have no zone number: said once in the log by the caller.
    pub fn unnumbered<'e>(&self, event: &'e PanelEvent) -> Vec<&'e str> {
        event.sensors.iter().map(String::as_str).filter(|s| !self.zones.contains_key(*s)).collect()
    }
}

/// The signals `event` is reported as; none for what a centre is not told (the exit delay
/// starting, one wrong code, a refused code, chimes).
pub fn signals(event: &PanelEvent, numbers: &Numbers) -> Vec<Signal> {
    let area = numbers.area(event.area.as_deref());
    let user = numbers.user(event.user.as_deref());
    let per_sensor = |code: Code| -> Vec<Signal> {
        if event.sensors.is_empty() {
            return vec![Signal { code, number: 0, area }];
        }
        event.sensors.iter().map(|s| Signal { code, number: numbers.zone(s), area }).collect()
    };
    let once = |code: Code, number: u16| vec![Signal { code, number, area }];
    let tamper = event.cause == Some(Cause::Tamper);
    match event.event {
        PanelEventKind::Triggered if tamper => per_sensor(Code::Tamper),
        PanelEventKind::Triggered => per_sensor(Code::Burglary),
        PanelEventKind::AlarmEnded => per_sensor(Code::BurglaryRestore),
        PanelEventKind::Duress => once(Code::Duress, user),
        PanelEventKind::Trouble if tamper => per_sensor(Code::Tamper),
        PanelEventKind::Trouble => per_sensor(Code::Trouble),
        PanelEventKind::Restored => match event.cause {
            Some(Cause::Tamper) => per_sensor(Code::TamperRestore),
            Some(Cause::BatteryLow) => per_sensor(Code::LowBatteryRestore),
            Some(Cause::WeakRadio) => Vec::new(),
            None => per_sensor(Code::TroubleRestore),
        },
        PanelEventKind::Warning if event.cause == Some(Cause::BatteryLow) => per_sensor(Code::LowBattery),
        PanelEventKind::Armed => match event.mode {
            Some(ArmMode::Home | ArmMode::Night) => once(Code::PerimeterArmed, user),
            _ if automatic(event, numbers) => once(Code::AutomaticClosing, 0),
            _ => once(Code::Closing, user),
        },
        PanelEventKind::Disarmed if automatic(event, numbers) => once(Code::AutomaticOpening, 0),
        PanelEventKind::Disarmed => once(Code::Opening, user),
        PanelEventKind::FailedToArm => once(Code::FailToClose, 0),
        PanelEventKind::Lockout => once(Code::CodeTamper, 0),
        PanelEventKind::Bypassed => per_sensor(Code::Bypass),
        _ => Vec::new(),
    }
}

/// A schedule or presence did it, not a person (the panel names them `schedule` and `presence`;
/// a user the centre knows by that name is a person). Arming without a code is a person's, user 0.
fn automatic(event: &PanelEvent, numbers: &Numbers) -> bool {
    event.user.as_deref().is_some_and(|u| matches!(u, "schedule" | "presence") && !numbers.users.contains_key(u))
}

#[cfg(test)]
mod tests {
    use protocol::Timestamp;

    use super::*;

    fn numbers() -> Numbers {
        Numbers {
            zones: [("front-door".to_owned(), 3), ("kitchen-window".to_owned(), 4)].into(),
            users: [("alice".to_owned(), 1), ("bob".to_owned(), 2)].into(),
            areas: [("house".to_owned(), 1), ("garage".to_owned(), 2)].into(),
        }
    }

    fn event(kind: PanelEventKind, sensors: &[&str]) -> PanelEvent {
        PanelEvent {
            event: kind,
            id: None,
            mode: None,
            user: None,
            sensors: sensors.iter().map(|s| (*s).to_owned()).collect(),
            reason: None,
            cause: None,
            message: String::new(),
            area: None,
            device_id: "security-controller".into(),
            ts: Timestamp(0),
        }
    }

    fn with(mut e: PanelEvent, f: impl FnOnce(&mut PanelEvent)) -> PanelEvent {
        f(&mut e);
        e
    }

    fn sia(signals: &[Signal]) -> Vec<String> {
        signals.iter().map(|s| format!("ri{}/{}{:02}", s.area, s.code.sia(), s.number)).collect()
    }

    #[test]
    fn each_event_is_reported_as_a_monitoring_centre_reads_it() {
        use PanelEventKind as K;
        let tamper = |e| with(e, |e| e.cause = Some(Cause::Tamper));
        let by = |e, user: &str, mode| {
            with(e, |e| {
                e.user = Some(user.into());
                e.mode = mode;
            })
        };
        let table: Vec<(PanelEvent, Vec<&str>)> = vec![
            (event(K::Triggered, &["front-door"]), vec!["ri1/BA03"]),
            (tamper(event(K::Triggered, &["kitchen-window"])), vec!["ri1/TA04"]),
            (event(K::AlarmEnded, &["front-door"]), vec!["ri1/BR03"]),
            (by(event(K::Duress, &[]), "bob", None), vec!["ri1/HA02"]),
            (event(K::Trouble, &["kitchen-window"]), vec!["ri1/BT04"]),
            (tamper(event(K::Trouble, &["kitchen-window"])), vec!["ri1/TA04"]),
            (tamper(event(K::Restored, &["kitchen-window"])), vec!["ri1/TR04"]),
            (event(K::Restored, &["kitchen-window"]), vec!["ri1/BJ04"]),
            (with(event(K::Warning, &["front-door"]), |e| e.cause = Some(Cause::BatteryLow)), vec!["ri1/XT03"]),
            (with(event(K::Restored, &["front-door"]), |e| e.cause = Some(Cause::BatteryLow)), vec!["ri1/XR03"]),
            (with(event(K::Warning, &["front-door"]), |e| e.cause = Some(Cause::WeakRadio)), vec![]),
            (by(event(K::Armed, &[]), "alice", Some(ArmMode::Away)), vec!["ri1/CL01"]),
            (by(event(K::Armed, &[]), "schedule", Some(ArmMode::Away)), vec!["ri1/CA00"]),
            (with(event(K::Armed, &[]), |e| e.mode = Some(ArmMode::Away)), vec!["ri1/CL00"]),
            (by(event(K::Armed, &[]), "alice", Some(ArmMode::Night)), vec!["ri1/NL01"]),
            (by(event(K::Disarmed, &[]), "bob", Some(ArmMode::Away)), vec!["ri1/OP02"]),
            (by(event(K::Disarmed, &[]), "presence", Some(ArmMode::Away)), vec!["ri1/OA00"]),
            (event(K::FailedToArm, &["front-door"]), vec!["ri1/CI00"]),
            (event(K::Lockout, &[]), vec!["ri1/JA00"]),
            (event(K::Bypassed, &["front-door", "kitchen-window"]), vec!["ri1/BB03", "ri1/BB04"]),
            (event(K::Triggered, &["shed-door"]), vec!["ri1/BA00"]),
            (with(event(K::Triggered, &["front-door"]), |e| e.area = Some("garage".into())), vec!["ri2/BA03"]),
            (with(event(K::Triggered, &["front-door"]), |e| e.area = Some("attic".into())), vec!["ri0/BA03"]),
            (event(K::Arming, &[]), vec![]),
            (event(K::EntryStarted, &["front-door"]), vec![]),
            (event(K::WrongCode, &[]), vec![]),
            (event(K::Refused, &[]), vec![]),
        ];
        for (event, expected) in table {
            assert_eq!(sia(&signals(&event, &numbers())), expected, "{:?} {:?}", event.event, event.cause);
        }
    }

    #[test]
    fn contact_id_carries_qualifier_event_partition_and_zone() {
        let burglary = Signal { code: Code::Burglary, number: 3, area: 1 };
        assert_eq!(
            burglary.body(Format::ContactId),
            Body::ContactId { qualifier: 1, event: 130, partition: 1, number: 3 }
        );
        let closing = Signal { code: Code::Closing, number: 1, area: 2 };
        assert_eq!(
            closing.body(Format::ContactId),
            Body::ContactId { qualifier: 3, event: 401, partition: 2, number: 1 }
        );
        assert_eq!(burglary.body(Format::SiaDcs), Body::Dcs { area: 1, code: "BA".into(), number: 3 });
    }

    #[test]
    fn sensors_without_a_zone_number_are_named() {
        let e = event(PanelEventKind::Triggered, &["front-door", "shed-door"]);
        assert_eq!(numbers().unnumbered(&e), vec!["shed-door"]);
    }
}
