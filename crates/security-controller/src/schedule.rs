//! Arming by the clock: `[[panel.schedules]]` arms a mode at a time of day on chosen days, with a
//! warning event `warn_min` before it that anyone allowed to disarm can answer with their code to
//! cancel that one arming.
//!
//! Pure: [`next`] finds the next arming after an instant, on the home's wall clock. A time that
//! does not exist on the night the clocks go forward (02:30 in Berlin) arms at the same wall-clock
//! distance after the gap (03:30), one that exists twice when they go back arms at the first; both
//! tested.

use std::time::Duration;

use protocol::{ArmMode, Timestamp};
use serde::{Deserialize, Serialize};

use crate::people::{ClockTime, Day, HomeZone};

/// One automatic arming.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Schedule {
    /// The mode: `away`, `home` or `night`.
    pub arm: ArmMode,
    /// The time of day, `HH:MM`, on the home's clock.
    pub at: ClockTime,
    /// The days it arms on; absent, every day.
    #[serde(default = "every_day")]
    pub days: Vec<Day>,
    /// Minutes before it that a warning event goes out (0: none, and then it cannot be cancelled).
    #[serde(default = "default_warning")]
    pub warn_min: u64,
    /// The areas it arms (`[[panel.areas]]`); absent, every area.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub areas: Vec<String>,
}

fn every_day() -> Vec<Day> {
    Day::ALL.to_vec()
}

fn default_warning() -> u64 {
    5
}

/// The most minutes a warning may come ahead.
pub const MAX_WARNING_MIN: u64 = 60;

/// An arming whose time has passed by more than this (the panel was down) is not made up for.
pub const MISSED_AFTER: Duration = Duration::from_secs(5 * 60);

/// Arming when everybody has left: each tracked person's presence topic (retained, `home` /
/// `not_home`, as Home Assistant's MQTT device tracker or a phone app publishes it).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Presence {
    /// The mode to arm when the last person leaves (`away`); absent, presence arms nothing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub arm: Option<ArmMode>,
    /// Each person's presence topic, by name: `alice = "homeassistant/device_tracker/alice/state"`.
    #[serde(default)]
    pub people: std::collections::BTreeMap<String, String>,
    /// A tracked person seen arriving disarms the panel, if presence armed it (and it is not in
    /// alarm). Off by default: a phone's location is a weaker proof than a code.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disarm_on_arrival: bool,
}

impl Presence {
    /// What is impossible about it, if anything.
    pub fn problem(&self) -> Option<String> {
        if (self.arm.is_some() || self.disarm_on_arrival) && self.people.is_empty() {
            return Some("arm is set but no people are tracked: add people = { name = \"topic\" }".into());
        }
        self.people.iter().find_map(|(name, topic)| {
            (topic.is_empty() || topic.contains(['+', '#']))
                .then(|| format!("people.{name}: {topic:?} is not one topic (no wildcards)"))
        })
    }

    /// The person whose presence `topic` holds.
    pub fn person_of(&self, topic: &str) -> Option<&str> {
        self.people.iter().find(|(_, t)| t.as_str() == topic).map(|(name, _)| name.as_str())
    }
}

/// Reads a presence payload: `home` (and `on`, `true`) is home; `not_home`, `away` (and `off`,
/// `false`) is away, and so is another zone's name from Home Assistant (`work`); empty,
/// `unknown`, `unavailable` (Home Assistant restarting) and anything that is not one word are
/// unknown, never "away".
pub fn is_home(payload: &[u8]) -> Option<bool> {
    let text = std::str::from_utf8(payload).ok()?.trim().trim_matches('"').to_ascii_lowercase();
    let word = !text.is_empty() && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    match text.as_str() {
        _ if !word => None,
        "unknown" | "unavailable" | "none" | "null" => None,
        "home" | "on" | "true" => Some(true),
        _ => Some(false),
    }
}

/// The next automatic arming, as the panel plans it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AutoArm {
    pub mode: ArmMode,
    pub at: Timestamp,
    /// When the warning is due (`None`: no warning for this one).
    pub warn_at: Option<Timestamp>,
    pub warned: bool,
    /// Who cancelled it, by the name events show.
    pub cancelled_by: Option<String>,
}

impl Schedule {
    /// The first instant strictly after `after` at which this schedule arms.
    pub fn next_after(&self, zone: &HomeZone, after: Timestamp) -> Option<Timestamp> {
        let today = zone.local(after).date();
        (0..=7)
            .filter_map(|d| today.checked_add(jiff::Span::new().days(d)).ok())
            .filter(|date| self.days.contains(&Day::of(date.weekday())))
            .filter_map(|date| zone.instant(date.to_datetime(self.at.to_civil())))
            .find(|t| *t > after)
    }

    /// What is impossible about this schedule, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.at.minutes() >= ClockTime::MINUTES_A_DAY {
            return Some("at = \"24:00\": write 00:00 of the next day (23:59 at the latest)".into());
        }
        if self.days.is_empty() {
            return Some("days is empty: leave it out for every day, or list some".into());
        }
        if self.warn_min > MAX_WARNING_MIN {
            return Some(format!("warn_min = {} is above {MAX_WARNING_MIN}", self.warn_min));
        }
        let mut days = self.days.clone();
        days.sort();
        days.dedup();
        (days.len() != self.days.len()).then(|| "a day is listed twice".into())
    }
}

/// The earliest arming of all `schedules` strictly after `after`.
pub fn next(schedules: &[Schedule], zone: &HomeZone, after: Timestamp) -> Option<AutoArm> {
    schedules.iter().filter_map(|s| s.next_after(zone, after).map(|at| (at, s))).min_by_key(|(at, _)| *at).map(
        |(at, s)| AutoArm {
            mode: s.arm,
            at,
            warn_at: (s.warn_min > 0).then(|| Timestamp(at.0.saturating_sub(s.warn_min * 60_000))),
            warned: false,
            cancelled_by: None,
        },
    )
}

#[cfg(test)]
mod tests {
    use jiff::civil::date;

    use super::*;

    fn berlin() -> HomeZone {
        HomeZone::named("Europe/Berlin").unwrap()
    }

    fn at(y: i16, m: i8, d: i8, h: i8, min: i8) -> Timestamp {
        let zoned = date(y, m, d).at(h, min, 0, 0).in_tz("Europe/Berlin").unwrap();
        Timestamp(zoned.timestamp().as_millisecond() as u64)
    }

    fn night(at: &str, days: Vec<Day>) -> Schedule {
        Schedule { arm: ArmMode::Night, at: at.parse().unwrap(), days, warn_min: 5, areas: vec![] }
    }

    #[test]
    fn the_next_arming_is_on_the_next_listed_day_at_its_wall_clock_time() {
        let zone = berlin();
        // 2026-12-07 is a Monday.
        let weekdays = night("23:00", vec![Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri]);
        let cases = [
            (at(2026, 12, 7, 12, 0), at(2026, 12, 7, 23, 0)),
            (at(2026, 12, 7, 23, 0), at(2026, 12, 8, 23, 0)),
            (at(2026, 12, 11, 23, 30), at(2026, 12, 14, 23, 0)),
            (at(2026, 12, 12, 9, 0), at(2026, 12, 14, 23, 0)),
        ];
        for (after, want) in cases {
            assert_eq!(weekdays.next_after(&zone, after), Some(want), "after {:?}", zone.local(after));
        }
        let every = night("07:15", every_day());
        assert_eq!(every.next_after(&zone, at(2026, 12, 12, 9, 0)), Some(at(2026, 12, 13, 7, 15)));
    }

    /// 2026-03-29: Berlin's clocks jump from 02:00 to 03:00; 2026-10-25: from 03:00 back to 02:00.
    #[test]
    fn the_nights_the_clocks_change() {
        let zone = berlin();
        let early = night("02:30", every_day());
        let spring = early.next_after(&zone, at(2026, 3, 29, 1, 0)).unwrap();
        assert_eq!(zone.local(spring).to_string(), "2026-03-29T03:30:00", "02:30 does not exist: an hour later");
        assert_eq!(spring.0 - at(2026, 3, 29, 1, 0).0, 90 * 60_000, "01:00 CET to 03:30 CEST is 90 minutes");
        let autumn = early.next_after(&zone, at(2026, 10, 25, 1, 0)).unwrap();
        assert_eq!(autumn.0 - at(2026, 10, 25, 1, 0).0, 90 * 60_000, "the first 02:30");
        let after_it = early.next_after(&zone, autumn).unwrap();
        assert_eq!(zone.local(after_it).date(), date(2026, 10, 26), "the repeated 02:30 arms no second time");
        // A daily 23:00 is 23:00 on both sides of a change: 24 h apart in winter, 23 h across it.
        let late = night("23:00", every_day());
        let before = late.next_after(&zone, at(2026, 3, 28, 12, 0)).unwrap();
        let after = late.next_after(&zone, before).unwrap();
        assert_eq!(after.0 - before.0, 23 * 3_600_000);
    }

    #[test]
    fn the_earliest_schedule_wins_and_warns_before_it() {
        let zone = berlin();
        let schedules = [
            night("23:00", every_day()),
            Schedule {
                arm: ArmMode::Away,
                at: "08:30".parse().unwrap(),
                days: vec![Day::Mon],
                warn_min: 0,
                areas: vec![],
            },
        ];
        let plan = next(&schedules, &zone, at(2026, 12, 7, 8, 0)).unwrap();
        assert_eq!((plan.mode, plan.at, plan.warn_at), (ArmMode::Away, at(2026, 12, 7, 8, 30), None));
        let plan = next(&schedules, &zone, plan.at).unwrap();
        assert_eq!((plan.mode, plan.at), (ArmMode::Night, at(2026, 12, 7, 23, 0)));
        assert_eq!(plan.warn_at, Some(at(2026, 12, 7, 22, 55)));
        assert_eq!(next(&[], &zone, plan.at), None);
    }

    #[test]
    fn presence_reads_home_assistants_words_and_refuses_wildcards() {
        for (payload, want) in [
            ("home", Some(true)),
            ("\"home\"", Some(true)),
            ("not_home", Some(false)),
            ("work", Some(false)),
            ("", None),
        ] {
            assert_eq!(is_home(payload.as_bytes()), want, "{payload}");
        }
        let people = |t: &str| [("alice".to_owned(), t.to_owned())].into();
        let bad = Presence { arm: Some(ArmMode::Away), people: people("ha/+/state"), disarm_on_arrival: false };
        assert!(bad.problem().is_some_and(|p| p.contains("people.alice")));
        assert!(
            Presence { arm: Some(ArmMode::Away), people: Default::default(), disarm_on_arrival: false }
                .problem()
                .is_some()
        );
        let fine = Presence { arm: Some(ArmMode::Away), people: people("ha/alice/state"), disarm_on_arrival: false };
        assert_eq!((fine.problem(), fine.person_of("ha/alice/state")), (None, Some("alice")));
    }

    #[test]
    fn impossible_schedules_are_problems() {
        let cases = [
            (night("24:00", every_day()), "23:59"),
            (night("23:00", vec![]), "days is empty"),
            (night("23:00", vec![Day::Mon, Day::Mon]), "twice"),
            (Schedule { warn_min: 90, ..night("23:00", every_day()) }, "above 60"),
        ];
        for (schedule, want) in cases {
            let problem = schedule.problem().unwrap_or_default();
            assert!(problem.contains(want), "{want:?} not in {problem:?}");
        }
        assert_eq!(night("23:00", every_day()).problem(), None);
        let toml: Schedule = toml::from_str("arm = \"away\"\nat = \"08:30\"\n").unwrap();
        assert_eq!((toml.days.len(), toml.warn_min), (7, 5));
        assert!(toml::from_str::<Schedule>("arm = \"vacation\"\nat = \"08:30\"\n").is_err());
    }
}
