//! The command line.

use anyhow::{Context, ensure};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per row and load of the latency table.
    pub seconds: u64,
    pub quick: bool,
    /// Only the latency table (phase 1): `--latency-only`.
    pub latency_only: bool,
    /// Arm/disarm cycles before the memory reading.
    pub cycles: u32,
    /// Sensor readings of the memory phase.
    pub events: u64,
    /// Rounds of 200 wrong codes followed by an intrusion.
    pub floods: u32,
    /// Background readings a second in the loaded phase.
    pub rate: u32,
    /// Areas the panel is configured with (`[[panel.areas]]`; 1: none, the panel as shipped).
    pub areas: usize,
    /// Users the panel is configured with (the bench's own is the first).
    pub users: usize,
}

impl Options {
    /// `--seconds N`, `--events N` (readings of the memory phase), `--areas N`, `--users N`,
    /// `--quick`, `--latency-only`; anything else (`--bench`, a filter from `cargo bench`) is ignored.
    pub fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
        let mut options = Options {
            seconds: 4,
            quick: false,
            latency_only: false,
            cycles: 1_000,
            events: 1_000_000,
            floods: 20,
            rate: 1_000,
            areas: 1,
            users: 1,
        };
        let mut seconds = None;
        let mut events = None;
        let count = |name: &str, v: Option<String>| -> anyhow::Result<usize> {
            let v = v.with_context(|| format!("{name} needs a value"))?;
            let n: usize = v.parse().with_context(|| format!("{name} {v:?} is not a whole number"))?;
            ensure!((1..=100).contains(&n), "{name} must be between 1 and 100");
            Ok(n)
        };
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            match arg.split_once('=') {
                Some(("--seconds", v)) => seconds = Some(v.to_owned()),
                _ if arg == "--seconds" => seconds = Some(args.next().context("--seconds needs a value")?),
                Some(("--events", v)) => events = Some(v.to_owned()),
                _ if arg == "--events" => events = Some(args.next().context("--events needs a value")?),
                _ if arg == "--quick" => options.quick = true,
                _ if arg == "--latency-only" => options.latency_only = true,
                _ if arg == "--areas" => options.areas = count("--areas", args.next())?,
                _ if arg == "--users" => options.users = count("--users", args.next())?,
                _ => {}
            }
        }
        if options.quick {
            options = Options { seconds: 1, cycles: 30, events: 20_000, floods: 3, ..options };
        }
        if let Some(s) = seconds {
            options.seconds = s.parse().with_context(|| format!("--seconds {s:?} is not a whole number"))?;
        }
        if let Some(n) = events {
            options.events = n.parse().with_context(|| format!("--events {n:?} is not a whole number"))?;
        }
        ensure!((1..=600).contains(&options.seconds), "--seconds must be between 1 and 600");
        Ok(options)
    }

    /// The command line as typed, for the report.
    pub fn command(&self) -> String {
        let quick = match (self.quick, self.latency_only) {
            (true, true) => " --quick --latency-only",
            (true, false) => " --quick",
            (false, true) => " --latency-only",
            (false, false) => "",
        };
        let mut layout = String::new();
        if self.areas > 1 {
            layout.push_str(&format!(" --areas {}", self.areas));
        }
        if self.users > 1 {
            layout.push_str(&format!(" --users {}", self.users));
        }
        format!(
            "cargo bench -p bench --bench intrusion -- --seconds {} --events {}{layout}{quick}",
            self.seconds, self.events
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(line: &str) -> anyhow::Result<Options> {
        Options::parse(line.split_whitespace().map(str::to_owned))
    }

    #[test]
    fn areas_and_users_are_read_and_said_in_the_command() {
        let o = parse("--bench --seconds 10 --areas 3 --users 20").unwrap();
        assert_eq!((o.seconds, o.areas, o.users), (10, 3, 20));
        assert!(o.command().ends_with("--areas 3 --users 20"), "{}", o.command());
        let plain = parse("--seconds 10").unwrap();
        assert!(!plain.command().contains("--areas"), "the shipped layout says nothing extra");
        assert!(parse("--areas 0").unwrap_err().to_string().contains("between 1 and 100"));
        assert!(parse("--users").unwrap_err().to_string().contains("needs a value"));
    }
}
