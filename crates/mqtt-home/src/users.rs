//! `mqtt-home users`: who may use the panel, what each may do and when, read from the panel's
//! config as the home runs it. Never a hash or a PIN: a name, the rights, the hours, the dates.

use security_controller::config::PanelConfig;
use serde::Serialize;

/// One user as `users --json` prints it.
#[derive(Debug, Serialize)]
pub struct Listed {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub shows_as: Option<String>,
    pub duress: bool,
    /// The rights by name; every right when the config lists none.
    pub may: Vec<String>,
    /// Weekly windows, `mon,thu 08:00–12:00`; empty: at any time.
    pub hours: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_from: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub valid_until: Option<String>,
    /// The areas the code works in (`[[panel.areas]]`); absent, every area.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub areas: Option<Vec<String>>,
}

/// The panel's users, without their hashes.
pub fn list(panel: &PanelConfig) -> Vec<Listed> {
    panel
        .users
        .iter()
        .map(|u| Listed {
            name: u.name.clone(),
            shows_as: u.shows_as.clone(),
            duress: u.duress,
            may: match &u.may {
                Some(may) => may.iter().map(|r| r.as_str().to_owned()).collect(),
                None => security_controller::people::Right::ALL.iter().map(|r| r.as_str().to_owned()).collect(),
            },
            hours: u.hours.iter().map(ToString::to_string).collect(),
            valid_from: u.valid_from.map(|d| d.to_string()),
            valid_until: u.valid_until.map(|d| d.to_string()),
            areas: u.areas.clone(),
        })
        .collect()
}

/// The users as a table for people, under a line saying where they come from and the zone.
pub fn render(panel: &PanelConfig, from: &str) -> String {
    let mut out = format!("{} users of the panel ({from}); hours in {}\n", panel.users.len(), panel.time_zone.name());
    let width = panel.users.iter().map(|u| u.name.chars().count()).max().unwrap_or(0);
    for user in &panel.users {
        let what = if user.duress {
            format!("duress code, shows as {}; silent duress event", user.shown_name())
        } else {
            let shows = user.shows_as.as_deref().map(|s| format!(" (shows as {s})")).unwrap_or_default();
            format!("{}{shows}", user.describe())
        };
        out.push_str(&format!("  {:width$}  {what}\n", user.name));
    }
    if panel.users.is_empty() {
        out.push_str("  nobody can disarm: add a user with `security-controller hash-pin`\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use security_controller::config::User;
    use security_controller::people::{Day, HomeZone, Hours, Right};

    use super::*;

    fn panel() -> PanelConfig {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        PanelConfig {
            users: vec![
                User::new("alice", hash),
                User { duress: true, shows_as: Some("alice".into()), ..User::new("alice-duress", hash) },
                User {
                    may: Some(vec![Right::ArmAway, Right::Disarm]),
                    hours: vec![Hours {
                        days: vec![Day::Mon, Day::Thu],
                        from: "08:00".parse().unwrap(),
                        until: "12:00".parse().unwrap(),
                    }],
                    valid_until: Some(jiff::civil::date(2027, 6, 30)),
                    ..User::new("cleaner", hash)
                },
            ],
            time_zone: HomeZone::named("Europe/Berlin").unwrap(),
            ..PanelConfig::default()
        }
    }

    #[test]
    fn users_are_listed_with_rights_and_hours_and_never_a_hash() {
        let text = render(&panel(), "from /etc/home");
        assert_eq!(
            text,
            "3 users of the panel (from /etc/home); hours in Europe/Berlin\n\
             \x20 alice         every right; at any time\n\
             \x20 alice-duress  duress code, shows as alice; silent duress event\n\
             \x20 cleaner       arm_away, disarm; mon,thu 08:00–12:00, until 2027-06-30\n"
        );
        let json = serde_json::to_string(&list(&panel())).unwrap();
        assert!(json.contains(r#""may":["arm_away","disarm"]"#), "{json}");
        assert!(json.contains(r#""hours":["mon,thu 08:00–12:00"]"#), "{json}");
        for shown in [text, json] {
            assert!(!shown.contains("argon2") && !shown.contains("pin_hash"), "{shown}");
        }
    }

    #[test]
    fn a_panel_without_users_says_what_to_do() {
        let text = render(&PanelConfig::default(), "x");
        assert!(text.contains("nobody can disarm") && text.contains("hash-pin"), "{text}");
    }
}
