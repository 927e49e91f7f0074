//! The sounds of a panel's day, short of the alarm: beeps through the exit and entry delays, a
//! chime when a door opens while disarmed, chirps on arming and disarming.
//!
//! Pure: [`of_step`] reads what one step of the panel did (its arm state before and after, its
//! events, the sensors that chimed) and says what the siren plays, as [`Action::Sound`]s the
//! edge publishes on the siren's command topic with a `tone`. Beeps carry their delay's length,
//! so a siren that misses the stop still falls silent; a delay that ends early (disarmed,
//! triggered, armed) stops them.

use protocol::{PanelEvent, PanelEventKind, Timestamp, Tone};
use serde::{Deserialize, Serialize};

use crate::panel::{Action, Arm};

/// `[panel.sounds]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Sounds {
    /// Beeps through the exit delay.
    pub exit_beeps: bool,
    /// Beeps through the entry delay.
    pub entry_beeps: bool,
    /// A chirp on arming, two on disarming.
    pub chirps: bool,
}

impl Default for Sounds {
    fn default() -> Self {
        Sounds { exit_beeps: true, entry_beeps: true, chirps: false }
    }
}

/// What the siren plays after a step from `before` to `after` with `events`, and `chimed`: the
/// sensors with `chime = true` that opened while disarmed.
pub fn of_step(
    sounds: &Sounds,
    before: &Arm,
    after: &Arm,
    events: &[PanelEvent],
    chimed: &[String],
    now: Timestamp,
) -> Vec<Action> {
    let mut out = Vec::new();
    let stop = |tone| Action::Sound { tone, on: false, duration_s: None };
    if sounds.exit_beeps && matches!(before, Arm::Arming { .. }) && !matches!(after, Arm::Arming { .. }) {
        out.push(stop(Tone::ExitBeeps));
    }
    if sounds.entry_beeps && matches!(before, Arm::Pending { .. }) && !matches!(after, Arm::Pending { .. }) {
        out.push(stop(Tone::EntryBeeps));
    }
    let left = |until: Timestamp| Some(until.since(now).as_millis().div_ceil(1000) as u64);
    for event in events {
        let sound = match (event.event, after) {
            (PanelEventKind::Arming, Arm::Arming { until, .. }) if sounds.exit_beeps => (Tone::ExitBeeps, left(*until)),
            (PanelEventKind::EntryStarted, Arm::Pending { until, .. }) if sounds.entry_beeps => {
                (Tone::EntryBeeps, left(*until))
            }
            (PanelEventKind::Armed, _) if sounds.chirps => (Tone::ArmChirp, None),
            (PanelEventKind::Disarmed, _) if sounds.chirps => (Tone::DisarmChirp, None),
            _ => continue,
        };
        out.push(Action::Sound { tone: sound.0, on: true, duration_s: sound.1 });
    }
    if !chimed.is_empty() && matches!(after, Arm::Disarmed) {
        out.push(Action::Sound { tone: Tone::Chime, on: true, duration_s: None });
    }
    out
}
