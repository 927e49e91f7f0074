//! Where the sun is, and what phase of the day that makes.
//!
//! The position uses the low-precision formulas of the Astronomical Almanac (good to about
//! 0.5°, plenty for deciding when to dim the lights), so the sensor needs no ephemeris crate.

use protocol::{CircadianPhase, Timestamp};

/// Below this elevation it is night (civil twilight ends at -6°).
pub const NIGHT_BELOW_DEG: f64 = -6.0;
/// Above this elevation it is full day ("morning" in the home's vocabulary).
pub const DAY_ABOVE_DEG: f64 = 10.0;

/// The sun's elevation in degrees at `t` seen from `latitude`/`longitude` (degrees, east positive),
/// and whether it is before solar noon (rising).
pub fn position(latitude: f64, longitude: f64, t: Timestamp) -> (f64, bool) {
    let days = t.as_millis() as f64 / 86_400_000.0 + 2_440_587.5 - 2_451_545.0;
    let mean_longitude = (280.460 + 0.985_647_4 * days).rem_euclid(360.0);
    let mean_anomaly = (357.528 + 0.985_600_3 * days).rem_euclid(360.0).to_radians();
    let ecliptic_longitude =
        (mean_longitude + 1.915 * mean_anomaly.sin() + 0.020 * (2.0 * mean_anomaly).sin()).to_radians();
    let obliquity = (23.439 - 0.000_000_4 * days).to_radians();
    let right_ascension = (obliquity.cos() * ecliptic_longitude.sin()).atan2(ecliptic_longitude.cos()).to_degrees();
    let declination = (obliquity.sin() * ecliptic_longitude.sin()).asin();
    let sidereal_deg = (18.697_374_558 + 24.065_709_824_419_08 * days).rem_euclid(24.0) * 15.0;
    let hour_angle = (sidereal_deg + longitude - right_ascension + 540.0).rem_euclid(360.0) - 180.0;
    let lat = latitude.to_radians();
    let elevation =
        (lat.sin() * declination.sin() + lat.cos() * declination.cos() * hour_angle.to_radians().cos()).asin();
    (elevation.to_degrees(), hour_angle < 0.0)
}

/// The phase for a sun at `elevation_deg`, rising or setting.
pub fn phase(elevation_deg: f64, rising: bool) -> CircadianPhase {
    if elevation_deg < NIGHT_BELOW_DEG {
        CircadianPhase::Night
    } else if elevation_deg >= DAY_ABOVE_DEG {
        CircadianPhase::Morning
    } else if rising {
        CircadianPhase::Sunrise
    } else {
        CircadianPhase::Sunset
    }
}

/// A clock that runs `scale` times faster than the wall clock from `start` on.
#[derive(Debug, Clone, Copy)]
pub struct ScaledClock {
    pub start: Timestamp,
    pub scale: f64,
}

impl ScaledClock {
    /// The simulated time when the wall clock says `now`.
    pub fn at(&self, now: Timestamp) -> Timestamp {
        let elapsed = now.as_millis().saturating_sub(self.start.as_millis()) as f64;
        Timestamp(self.start.as_millis() + (elapsed * self.scale) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(s: &str) -> Timestamp {
        Timestamp::parse_rfc3339(s).unwrap()
    }

    #[test]
    fn noon_at_the_equator_on_the_equinox_is_overhead() {
        let (elevation, _) = position(0.0, 0.0, utc("2024-03-20T12:07:00Z"));
        assert!(elevation > 88.0, "{elevation}");
    }

    #[test]
    fn berlin_in_midsummer() {
        // Berlin, 52.52 N 13.40 E; solar noon about 11:07 UTC, sunrise ~02:43 UTC, sunset ~19:33 UTC.
        let (lat, lon) = (52.52, 13.40);
        let (noon, _) = position(lat, lon, utc("2024-06-21T11:07:00Z"));
        assert!((noon - 60.9).abs() < 1.0, "{noon}");
        let (dawn, rising) = position(lat, lon, utc("2024-06-21T02:43:00Z"));
        assert!(dawn.abs() < 1.5 && rising, "{dawn} {rising}");
        let (dusk, rising) = position(lat, lon, utc("2024-06-21T19:33:00Z"));
        assert!(dusk.abs() < 1.5 && !rising, "{dusk} {rising}");
        let (midnight, _) = position(lat, lon, utc("2024-06-21T23:10:00Z"));
        assert!(midnight < -10.0, "{midnight}");
    }

    #[test]
    fn phases_follow_elevation_and_direction() {
        let table = [
            (-20.0, true, CircadianPhase::Night),
            (-6.5, false, CircadianPhase::Night),
            (-5.0, true, CircadianPhase::Sunrise),
            (9.9, true, CircadianPhase::Sunrise),
            (10.0, true, CircadianPhase::Morning),
            (45.0, false, CircadianPhase::Morning),
            (9.9, false, CircadianPhase::Sunset),
            (-5.9, false, CircadianPhase::Sunset),
        ];
        for (elevation, rising, expected) in table {
            assert_eq!(phase(elevation, rising), expected, "{elevation} {rising}");
        }
    }

    #[test]
    fn a_whole_day_in_berlin_passes_through_every_phase_in_order() {
        let day = utc("2024-06-21T00:00:00Z");
        let mut seen: Vec<CircadianPhase> = vec![];
        for minute in 0..24 * 60 {
            let (e, rising) = position(52.52, 13.40, day.plus(std::time::Duration::from_secs(minute * 60)));
            let p = phase(e, rising);
            if seen.last() != Some(&p) {
                seen.push(p);
            }
        }
        use CircadianPhase::*;
        assert_eq!(seen, [Night, Sunrise, Morning, Sunset, Night]);
    }

    #[test]
    fn scaled_clock_runs_faster() {
        let clock = ScaledClock { start: Timestamp(1_000_000), scale: 720.0 };
        assert_eq!(clock.at(Timestamp(1_000_000)), Timestamp(1_000_000));
        // Two minutes of wall time are a day at 720x.
        assert_eq!(clock.at(Timestamp(1_000_000 + 120_000)), Timestamp(1_000_000 + 86_400_000));
    }
}
