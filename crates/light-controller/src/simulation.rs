//! Presence simulation: while the panel is armed away, the bulbs of the rooms that opt in
//! (`simulate_presence = true`) replay their own light of the same days a week before, from the
//! recorder's history, each bulb shifted by up to ±`jitter_min`; a bulb without history follows
//! a plausible evening instead (on at the sunset phase's level a while after sunset, off a while
//! after the night phase begins). The moment the panel is no longer armed away, the bulbs go back
//! to what the controller would show them anyway.
//!
//! Pure: [`replay`] turns last week's states into this week's plan (the controller takes its
//! changes as they come due, [`crate::decide`]); [`shift`] is the jitter, a
//! hash of the bulb and the day rather than a random draw, so that the decisions stay a function
//! of their inputs (tested) while an observer outside still sees no pattern repeat to the minute.

use std::time::Duration;

use protocol::Timestamp;

/// A week, the distance a day's pattern is replayed across.
pub const WEEK: Duration = Duration::from_secs(7 * 24 * 3600);

/// One bulb's plan: from each time on, this brightness (0: off), oldest first.
pub type Plan = Vec<(Timestamp, u8)>;

/// The jitter of `bulb` on the day of `at`: between `-jitter_min` and `+jitter_min` minutes, in ms.
pub fn shift(bulb: &str, at: Timestamp, jitter_min: u64) -> i64 {
    if jitter_min == 0 {
        return 0;
    }
    // FNV-1a over the bulb's name and the day number.
    let day = at.0 / (24 * 3600 * 1000);
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bulb.bytes().chain(day.to_le_bytes()) {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    let span = 2 * jitter_min * 60_000 + 1;
    (hash % span) as i64 - (jitter_min * 60_000) as i64
}

/// Moves `t` by `ms` (either way).
fn moved(t: Timestamp, ms: i64) -> Timestamp {
    Timestamp(t.0.saturating_add_signed(ms))
}

/// This week's plan for `bulb` from its states of the week before (`(when, brightness)`, oldest
/// first): each change a week later, shifted by the day's jitter, and only those still to come
/// after `now` (the light in force at `now` first, so the bulb takes it at once).
pub fn replay(bulb: &str, history: &[(Timestamp, u8)], now: Timestamp, jitter_min: u64) -> Plan {
    let mut plan: Plan = Vec::new();
    for &(at, brightness) in history {
        let when = at.plus(WEEK);
        let when = moved(when, shift(bulb, when, jitter_min));
        if plan.last().is_some_and(|(_, b)| *b == brightness) {
            continue;
        }
        plan.push((when, brightness));
    }
    plan.sort_by_key(|(t, _)| *t);
    // What holds at `now`: the last change at or before it, then the ones to come.
    let current = plan.iter().rev().find(|(t, _)| *t <= now).map(|(_, b)| (now, *b));
    current.into_iter().chain(plan.into_iter().filter(|(t, _)| *t > now)).collect()
}

/// How long after sunset a bulb without history comes on, before its jitter.
pub const EVENING_ON_AFTER: Duration = Duration::from_secs(20 * 60);
/// How long after the night phase begins a bulb without history goes off, before its jitter.
pub const EVENING_OFF_AFTER: Duration = Duration::from_secs(90 * 60);

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: u64 = 60_000;
    const T0: Timestamp = Timestamp(1_800_000_000_000);

    fn at(minutes: u64) -> Timestamp {
        Timestamp(T0.0 + minutes * MIN)
    }

    #[test]
    fn the_jitter_stays_within_its_bounds_and_differs_by_bulb_and_day() {
        let day = 24 * 60;
        let shifts: Vec<i64> = (0..30).map(|d| shift("kitchen", at(d * day), 15)).collect();
        assert!(shifts.iter().all(|s| s.abs() <= 15 * MIN as i64), "{shifts:?}");
        let distinct: std::collections::BTreeSet<_> = shifts.iter().collect();
        assert!(distinct.len() > 20, "the same shift day after day would be a pattern: {shifts:?}");
        assert_ne!(shift("kitchen", T0, 15), shift("hall", T0, 15));
        assert_eq!(shift("kitchen", T0, 15), shift("kitchen", at(3), 15), "one shift per bulb and day");
        assert_eq!(shift("kitchen", T0, 0), 0);
    }

    #[test]
    fn last_weeks_light_is_replayed_a_week_later_within_the_jitter() {
        let week = WEEK.as_millis() as u64 / MIN;
        // Last week: on at 50 % at minute 100, 100 % at 160, off at 300; a repeated 50 % ignored.
        let history = [(at(100), 50), (at(110), 50), (at(160), 100), (at(300), 0)];
        let now = at(week);
        let plan = replay("kitchen", &history, now, 15);
        let times: Vec<u64> = plan.iter().map(|(t, _)| (t.0 - T0.0) / MIN).collect();
        assert_eq!(plan.iter().map(|(_, b)| *b).collect::<Vec<_>>(), [50, 100, 0]);
        for (t, want) in times.iter().zip([100, 160, 300]) {
            assert!(t.abs_diff(week + want) <= 15, "{t} is not within 15 min of {}", week + want);
        }
        assert!(plan.iter().all(|(t, _)| *t > now), "only changes still to come");
        // Entered mid-evening: the light in force now first, then what is still to come.
        let late = replay("kitchen", &history, at(week + 200), 0);
        assert_eq!(late, [(at(week + 200), 100), (at(week + 300), 0)]);
        assert!(replay("kitchen", &[], now, 15).is_empty());
    }
}
