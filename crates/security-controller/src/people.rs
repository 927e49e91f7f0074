//! Who may do what, and when: each user's rights (which arm modes, disarm, bypass) and the hours
//! and dates their code is valid, on the home's wall clock.
//!
//! Pure: [`User::allow`] takes the local time the panel got from `now` and
//! [`HomeZone`], and answers yes or a [`Refusal`]. A refusal is only ever given for a code that
//! was right: it says why the person may not (`not_permitted`, `outside_hours`, `expired`), never
//! anything about a wrong code.
//!
//! Hours are wall-clock times in the home's zone, so a cleaner's 08:00–12:00 stays 08:00–12:00
//! across the change to and from summer time; on the night the clocks go forward an hour that does
//! not exist is in no window, and on the night they go back the repeated hour is in a window both
//! times (tested with `Europe/Berlin`).

use std::fmt;

use jiff::civil::{DateTime, Weekday};
use protocol::{ArmMode, Refusal, Timestamp};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::config::User;

/// One thing a user may be allowed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Right {
    ArmAway,
    ArmHome,
    ArmNight,
    Disarm,
    /// Arm with sensors open (`force`), bypassing them for that arming.
    Bypass,
}

impl Right {
    /// Every right: what a user without a `may` list has.
    pub const ALL: [Right; 5] = [Right::ArmAway, Right::ArmHome, Right::ArmNight, Right::Disarm, Right::Bypass];

    /// The right to arm in `mode`.
    pub fn arm(mode: ArmMode) -> Right {
        match mode {
            ArmMode::Away => Right::ArmAway,
            ArmMode::Home => Right::ArmHome,
            ArmMode::Night => Right::ArmNight,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Right::ArmAway => "arm_away",
            Right::ArmHome => "arm_home",
            Right::ArmNight => "arm_night",
            Right::Disarm => "disarm",
            Right::Bypass => "bypass",
        }
    }
}

impl fmt::Display for Right {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A day of the week as people write it in the config: `mon` … `sun`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Day {
    Mon,
    Tue,
    Wed,
    Thu,
    Fri,
    Sat,
    Sun,
}

impl Day {
    pub const ALL: [Day; 7] = [Day::Mon, Day::Tue, Day::Wed, Day::Thu, Day::Fri, Day::Sat, Day::Sun];

    /// Days since Monday.
    fn index(self) -> u32 {
        self as u32
    }

    pub fn of(weekday: Weekday) -> Day {
        match weekday {
            Weekday::Monday => Day::Mon,
            Weekday::Tuesday => Day::Tue,
            Weekday::Wednesday => Day::Wed,
            Weekday::Thursday => Day::Thu,
            Weekday::Friday => Day::Fri,
            Weekday::Saturday => Day::Sat,
            Weekday::Sunday => Day::Sun,
        }
    }
}

/// A wall-clock time of day, written `HH:MM` (`00:00` … `24:00`; `24:00` is the end of the day).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClockTime {
    /// Minutes since midnight, 0 ..= 1440.
    minutes: u32,
}

impl ClockTime {
    pub const MINUTES_A_DAY: u32 = 24 * 60;

    pub fn new(hours: u32, minutes: u32) -> Option<ClockTime> {
        let t = hours * 60 + minutes;
        (minutes < 60 && t <= Self::MINUTES_A_DAY).then_some(ClockTime { minutes: t })
    }

    pub fn minutes(self) -> u32 {
        self.minutes
    }

    /// As a civil time of day (`24:00` as 23:59:59.999…, the last instant of the day).
    pub fn to_civil(self) -> jiff::civil::Time {
        if self.minutes >= Self::MINUTES_A_DAY {
            return jiff::civil::Time::MAX;
        }
        let (h, m) = (self.minutes / 60, self.minutes % 60);
        jiff::civil::time(h as i8, m as i8, 0, 0)
    }
}

impl std::str::FromStr for ClockTime {
    type Err = String;

    fn from_str(s: &str) -> Result<ClockTime, String> {
        let bad = || format!("{s:?} is not a time of day: write HH:MM, from 00:00 to 24:00");
        let (h, m) = s.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let (h, m) = (h.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        ClockTime::new(h, m).ok_or_else(bad)
    }
}

impl fmt::Display for ClockTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:02}:{:02}", self.minutes / 60, self.minutes % 60)
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ClockTime, D::Error> {
        String::deserialize(d)?.parse().map_err(serde::de::Error::custom)
    }
}

/// When in the week a code is valid: on `days`, from `from` until `until` (wall clock). A window
/// whose `until` is earlier than its `from` runs past midnight into the next day (`22:00`–`06:00`
/// on `fri` is Friday night until Saturday morning).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hours {
    pub days: Vec<Day>,
    pub from: ClockTime,
    pub until: ClockTime,
}

/// Minutes in a week.
const WEEK: u32 = 7 * ClockTime::MINUTES_A_DAY;

impl Hours {
    /// The minutes of the week (since Monday 00:00) this window covers, as `[start, end)` spans;
    /// a span past Sunday midnight wraps to Monday.
    fn spans(&self) -> impl Iterator<Item = (u32, u32)> + '_ {
        let length = if self.until > self.from {
            self.until.minutes - self.from.minutes
        } else {
            ClockTime::MINUTES_A_DAY - self.from.minutes + self.until.minutes
        };
        self.days.iter().flat_map(move |day| {
            let start = day.index() * ClockTime::MINUTES_A_DAY + self.from.minutes;
            let end = start + length;
            if end <= WEEK { vec![(start, end)] } else { vec![(start, WEEK), (0, end - WEEK)] }
        })
    }

    /// Whether this window holds `minute` of the week.
    fn holds(&self, minute: u32) -> bool {
        self.spans().any(|(start, end)| (start..end).contains(&minute))
    }

    /// What is impossible about this window alone, if anything.
    pub fn problem(&self) -> Option<String> {
        if self.days.is_empty() {
            return Some("no days: list them, e.g. days = [\"mon\", \"tue\"]".into());
        }
        if self.from == self.until {
            return Some(format!("from and until are both {}: the window is empty", self.from));
        }
        if self.from.minutes == ClockTime::MINUTES_A_DAY {
            return Some("from = \"24:00\": a window starts at 23:59 at the latest".into());
        }
        let mut days = self.days.clone();
        days.sort();
        days.dedup();
        (days.len() != self.days.len()).then(|| "a day is listed twice".into())
    }

    /// Whether this window and `other` share a minute of the week.
    pub fn overlaps(&self, other: &Hours) -> bool {
        self.spans().any(|(a0, a1)| other.spans().any(|(b0, b1)| a0 < b1 && b0 < a1))
    }
}

impl fmt::Display for Hours {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let days: Vec<String> = self.days.iter().map(|d| format!("{d:?}").to_lowercase()).collect();
        write!(f, "{} {}–{}", days.join(","), self.from, self.until)
    }
}

/// The home's time zone, by its IANA name (`Europe/Berlin`); hours and dates are read on its clock.
#[derive(Clone)]
pub struct HomeZone {
    name: String,
    zone: jiff::tz::TimeZone,
}

impl HomeZone {
    /// The zone called `name` in the time zone database.
    pub fn named(name: &str) -> Result<HomeZone, String> {
        let zone = jiff::tz::TimeZone::get(name).map_err(|_| {
            format!("time zone {name:?} does not exist: use an IANA name such as \"Europe/Berlin\" or \"UTC\"")
        })?;
        Ok(HomeZone { name: name.to_owned(), zone })
    }

    /// The machine's own zone (`/etc/localtime`, `TZ`), or UTC where it has none (a container).
    pub fn system() -> HomeZone {
        let zone = jiff::tz::TimeZone::try_system().unwrap_or(jiff::tz::TimeZone::UTC);
        let name = zone.iana_name().unwrap_or("UTC").to_owned();
        HomeZone { name, zone }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// The instant the home's wall clock shows `local`: in a gap (the clocks went forward) as far
    /// after it as `local` is into it, in a fold (they went back) the first of the two.
    pub fn instant(&self, local: DateTime) -> Option<Timestamp> {
        let t = self.zone.to_ambiguous_timestamp(local).compatible().ok()?;
        u64::try_from(t.as_millisecond()).ok().map(Timestamp)
    }

    /// `now` on the home's wall clock.
    pub fn local(&self, now: Timestamp) -> DateTime {
        let ms = i64::try_from(now.0).unwrap_or(i64::MAX);
        let ts = jiff::Timestamp::from_millisecond(ms).unwrap_or(jiff::Timestamp::MAX);
        self.zone.to_datetime(ts)
    }
}

impl Default for HomeZone {
    fn default() -> Self {
        HomeZone::system()
    }
}

impl fmt::Debug for HomeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl PartialEq for HomeZone {
    fn eq(&self, other: &HomeZone) -> bool {
        self.name == other.name
    }
}

impl Eq for HomeZone {}

impl Serialize for HomeZone {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.name)
    }
}

impl<'de> Deserialize<'de> for HomeZone {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<HomeZone, D::Error> {
        HomeZone::named(&String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// What a user may do and when.
impl User {
    /// Whether `right` may be used at `local` (the home's wall clock): dates first, then the right,
    /// then the hours, so that an expired code says "expired" whatever it was used for.
    pub fn allow(&self, right: Right, local: DateTime) -> Result<(), Refusal> {
        let today = local.date();
        if self.valid_until.is_some_and(|last| today > last) {
            return Err(Refusal::Expired);
        }
        if self.valid_from.is_some_and(|first| today < first) {
            return Err(Refusal::NotYetValid);
        }
        if !self.has(right) {
            return Err(Refusal::NotPermitted);
        }
        if self.hours.is_empty() {
            return Ok(());
        }
        let day = Day::of(local.weekday());
        // jiff's hour is 0..=23 and its minute 0..=59: never negative.
        let of_day = local.hour().unsigned_abs() as u32 * 60 + local.minute().unsigned_abs() as u32;
        let minute = day.index() * ClockTime::MINUTES_A_DAY + of_day;
        if self.hours.iter().any(|h| h.holds(minute)) { Ok(()) } else { Err(Refusal::OutsideHours) }
    }

    pub fn has(&self, right: Right) -> bool {
        self.may.as_ref().is_none_or(|may| may.contains(&right))
    }

    /// What is wrong with these limits, for the config's error: impossible or overlapping hours,
    /// dates the wrong way round, a right listed twice.
    pub fn problems(&self) -> Vec<String> {
        let mut problems = Vec::new();
        for (i, h) in self.hours.iter().enumerate() {
            if let Some(p) = h.problem() {
                problems.push(format!("hours[{i}] ({h}): {p}"));
            }
            for (j, other) in self.hours.iter().enumerate().skip(i + 1) {
                if h.overlaps(other) {
                    problems
                        .push(format!("hours[{i}] ({h}) and hours[{j}] ({other}) overlap: merge them into one window"));
                }
            }
        }
        if let (Some(from), Some(until)) = (self.valid_from, self.valid_until)
            && until < from
        {
            problems.push(format!("valid_until {until} is before valid_from {from}: the code would never be valid"));
        }
        if let Some(may) = &self.may {
            let mut sorted = may.clone();
            sorted.sort();
            sorted.dedup();
            if sorted.len() != may.len() {
                problems.push("may lists a right twice".into());
            }
        }
        problems
    }

    /// For `mqtt-home users` and the like: the rights, hours and dates in a line.
    pub fn describe(&self) -> String {
        let may = match &self.may {
            None => "every right".to_owned(),
            Some(may) if may.is_empty() => "no right".to_owned(),
            Some(may) => may.iter().map(|r| r.as_str()).collect::<Vec<_>>().join(", "),
        };
        let hours = if self.hours.is_empty() {
            "at any time".to_owned()
        } else {
            self.hours.iter().map(|h| h.to_string()).collect::<Vec<_>>().join("; ")
        };
        let dates = match (self.valid_from, self.valid_until) {
            (None, None) => String::new(),
            (Some(f), None) => format!(", from {f}"),
            (None, Some(u)) => format!(", until {u}"),
            (Some(f), Some(u)) => format!(", from {f} until {u}"),
        };
        let areas = match &self.areas {
            None => String::new(),
            Some(areas) => format!("; in {}", areas.join(", ")),
        };
        format!("{may}; {hours}{dates}{areas}")
    }
}

#[cfg(test)]
mod tests;
