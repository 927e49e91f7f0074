//! Rights, hours and dates, table-style on the home's clock; the nights the clocks change in Berlin.

use jiff::civil::date;

use super::*;

fn berlin() -> HomeZone {
    HomeZone::named("Europe/Berlin").unwrap()
}

/// The instant the wall clock in Berlin shows `y-m-d h:min`, as the panel's timestamp.
fn at(y: i16, m: i8, d: i8, h: i8, min: i8) -> Timestamp {
    let zoned = date(y, m, d).at(h, min, 0, 0).in_tz("Europe/Berlin").unwrap();
    Timestamp(zoned.timestamp().as_millisecond() as u64)
}

fn hours(days: &[Day], from: &str, until: &str) -> Hours {
    Hours { days: days.to_vec(), from: from.parse().unwrap(), until: until.parse().unwrap() }
}

/// The cleaner: arm away and disarm only, Mondays and Thursdays 08:00–12:00, in December 2026.
fn cleaner() -> User {
    User {
        may: Some(vec![Right::ArmAway, Right::Disarm]),
        hours: vec![hours(&[Day::Mon, Day::Thu], "08:00", "12:00")],
        valid_from: Some(date(2026, 12, 1)),
        valid_until: Some(date(2026, 12, 31)),
        ..User::new("cleaner", "")
    }
}

#[test]
fn a_cleaner_in_and_out_of_her_hours_and_rights() {
    let zone = berlin();
    let cleaner = cleaner();
    // 2026-12-07 is a Monday, 2026-12-08 a Tuesday.
    let cases = [
        (at(2026, 12, 7, 8, 0), Right::Disarm, Ok(())),
        (at(2026, 12, 7, 11, 59), Right::ArmAway, Ok(())),
        (at(2026, 12, 7, 12, 0), Right::Disarm, Err(Refusal::OutsideHours)),
        (at(2026, 12, 7, 7, 59), Right::Disarm, Err(Refusal::OutsideHours)),
        (at(2026, 12, 8, 9, 0), Right::Disarm, Err(Refusal::OutsideHours)),
        (at(2026, 12, 10, 9, 0), Right::Disarm, Ok(())),
        (at(2026, 12, 7, 9, 0), Right::ArmHome, Err(Refusal::NotPermitted)),
        (at(2026, 12, 7, 9, 0), Right::Bypass, Err(Refusal::NotPermitted)),
        (at(2026, 11, 30, 9, 0), Right::Disarm, Err(Refusal::NotYetValid)),
        (at(2026, 12, 31, 23, 59), Right::ArmHome, Err(Refusal::NotPermitted)),
        // 2027-01-04 is a Monday in her hours, but past her last day: expired comes first.
        (at(2027, 1, 4, 9, 0), Right::Disarm, Err(Refusal::Expired)),
        (at(2027, 1, 4, 9, 0), Right::ArmHome, Err(Refusal::Expired)),
    ];
    for (now, right, want) in cases {
        assert_eq!(cleaner.allow(right, zone.local(now)), want, "{right} at {:?}", zone.local(now));
    }
}

#[test]
fn a_user_without_limits_may_do_everything_at_any_time() {
    let zone = berlin();
    let user = User::new("alice", "");
    for right in Right::ALL {
        for now in [at(2026, 12, 7, 3, 0), at(2030, 6, 1, 23, 59)] {
            assert_eq!(user.allow(right, zone.local(now)), Ok(()));
        }
    }
    let nobody = User { may: Some(vec![]), ..User::new("nobody", "") };
    assert_eq!(nobody.allow(Right::Disarm, zone.local(at(2026, 12, 7, 9, 0))), Err(Refusal::NotPermitted));
}

#[test]
fn a_window_past_midnight_runs_into_the_next_day_and_past_sunday_into_monday() {
    let zone = berlin();
    let night = User { hours: vec![hours(&[Day::Sun], "22:00", "06:00")], ..User::new("night", "") };
    // 2026-12-06 is a Sunday.
    let cases = [
        (at(2026, 12, 6, 21, 59), false),
        (at(2026, 12, 6, 22, 0), true),
        (at(2026, 12, 7, 0, 30), true),
        (at(2026, 12, 7, 5, 59), true),
        (at(2026, 12, 7, 6, 0), false),
        (at(2026, 12, 5, 23, 0), false),
    ];
    for (now, ok) in cases {
        assert_eq!(night.allow(Right::Disarm, zone.local(now)).is_ok(), ok, "{:?}", zone.local(now));
    }
    let day = User { hours: vec![hours(&[Day::Sat], "00:00", "24:00")], ..User::new("day", "") };
    assert!(day.allow(Right::Disarm, zone.local(at(2026, 12, 5, 23, 59))).is_ok());
    assert!(day.allow(Right::Disarm, zone.local(at(2026, 12, 6, 0, 0))).is_err());
}

/// Hours are on the wall clock: 08:00 stays 08:00 across both changes. On 2026-03-29 Berlin's
/// clocks jump from 02:00 to 03:00; on 2026-10-25 they go back from 03:00 to 02:00.
#[test]
fn hours_follow_the_wall_clock_across_the_nights_the_clocks_change() {
    let zone = berlin();
    let early = User { hours: vec![hours(&[Day::Sun], "02:00", "03:00")], ..User::new("early", "") };
    let morning = User { hours: vec![hours(&[Day::Sun], "08:00", "09:00")], ..User::new("morning", "") };
    // Spring: 01:59 CET is followed by 03:00 CEST; no instant is in 02:00–03:00.
    let spring_before = Timestamp(at(2026, 3, 29, 1, 59).0);
    let spring_after = Timestamp(spring_before.0 + 60_000);
    assert_eq!(zone.local(spring_after).hour(), 3);
    assert!(early.allow(Right::Disarm, zone.local(spring_before)).is_err());
    assert!(early.allow(Right::Disarm, zone.local(spring_after)).is_err());
    assert!(morning.allow(Right::Disarm, zone.local(at(2026, 3, 29, 8, 30))).is_ok());
    // From 08:30 on the Sunday before to 08:30 that Sunday is a week less the hour that was skipped.
    assert_eq!(at(2026, 3, 29, 8, 30).0 - at(2026, 3, 22, 8, 30).0, 7 * 86_400_000 - 3_600_000);
    // Autumn: 02:30 happens twice, an hour apart, and both are in the window.
    let first = at(2026, 10, 25, 2, 30);
    let second = Timestamp(first.0 + 3_600_000);
    assert_eq!(zone.local(second).hour(), 2, "the repeated hour");
    assert!(early.allow(Right::Disarm, zone.local(first)).is_ok());
    assert!(early.allow(Right::Disarm, zone.local(second)).is_ok());
    assert!(early.allow(Right::Disarm, zone.local(Timestamp(second.0 + 3_600_000))).is_err());
}

#[test]
fn impossible_and_overlapping_hours_and_dates_are_problems() {
    let cases: Vec<(User, &str)> = vec![
        (User { hours: vec![hours(&[], "08:00", "12:00")], ..User::new("a", "") }, "no days"),
        (User { hours: vec![hours(&[Day::Mon], "08:00", "08:00")], ..User::new("a", "") }, "empty"),
        (User { hours: vec![hours(&[Day::Mon], "24:00", "08:00")], ..User::new("a", "") }, "23:59"),
        (User { hours: vec![hours(&[Day::Mon, Day::Mon], "08:00", "09:00")], ..User::new("a", "") }, "twice"),
        (
            User {
                hours: vec![hours(&[Day::Mon], "08:00", "12:00"), hours(&[Day::Mon, Day::Tue], "11:00", "13:00")],
                ..User::new("a", "")
            },
            "overlap",
        ),
        (
            User {
                hours: vec![hours(&[Day::Sun], "22:00", "06:00"), hours(&[Day::Mon], "05:00", "07:00")],
                ..User::new("a", "")
            },
            "overlap",
        ),
        (
            User { valid_from: Some(date(2027, 1, 1)), valid_until: Some(date(2026, 12, 1)), ..User::new("a", "") },
            "never be valid",
        ),
        (User { may: Some(vec![Right::Disarm, Right::Disarm]), ..User::new("a", "") }, "twice"),
    ];
    for (user, want) in cases {
        let problems = user.problems();
        assert!(problems.iter().any(|p| p.contains(want)), "{want:?} not in {problems:?}");
    }
    let fine = User {
        hours: vec![hours(&[Day::Mon], "08:00", "12:00"), hours(&[Day::Mon], "12:00", "13:00")],
        ..User::new("a", "")
    };
    assert_eq!(fine.problems(), Vec::<String>::new());
}

#[test]
fn clock_times_and_zones_refuse_what_does_not_exist() {
    for bad in ["25:00", "8:00", "08:60", "0800", "24:01", "", "ab:cd"] {
        assert!(bad.parse::<ClockTime>().is_err(), "{bad}");
    }
    assert_eq!("24:00".parse::<ClockTime>().unwrap().minutes(), 1440);
    assert_eq!("07:05".parse::<ClockTime>().unwrap().to_string(), "07:05");
    let e = HomeZone::named("Europe/Atlantis").unwrap_err();
    assert!(e.contains("does not exist") && e.contains("Europe/Berlin"), "{e}");
    assert_eq!(HomeZone::named("UTC").unwrap().name(), "UTC");
}

#[test]
fn users_read_from_toml() {
    let user: User = toml::from_str(
        r#"
        name = "cleaner"
        pin_hash = "x"
        may = ["arm_away", "disarm"]
        hours = [{ days = ["mon", "thu"], from = "08:00", until = "12:00" }]
        valid_until = "2026-12-31"
        areas = ["house"]
        "#,
    )
    .unwrap();
    assert_eq!(user.may, Some(vec![Right::ArmAway, Right::Disarm]));
    assert_eq!(user.hours[0].to_string(), "mon,thu 08:00–12:00");
    assert_eq!(user.describe(), "arm_away, disarm; mon,thu 08:00–12:00, until 2026-12-31; in house");
    for bad in [
        "name = \"a\"\npin_hash = \"x\"\nmay = [\"fly\"]\n",
        "name = \"a\"\npin_hash = \"x\"\nhours = [{ days = [\"monday\"], from = \"08:00\", until = \"12:00\" }]\n",
        "name = \"a\"\npin_hash = \"x\"\nhours = [{ days = [\"mon\"], from = \"25:00\", until = \"12:00\" }]\n",
        "name = \"a\"\npin_hash = \"x\"\nvalid_until = \"2026-02-30\"\n",
    ] {
        assert!(toml::from_str::<User>(bad).is_err(), "{bad}");
    }
}
