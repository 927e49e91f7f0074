//! The command line.

use anyhow::{Context, ensure};

/// What the command line asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Seconds per row and load of the latency table.
    pub seconds: u64,
    pub quick: bool,
    /// Arm/disarm cycles before the memory reading.
    pub cycles: u32,
    /// Sensor readings of the memory phase.
    pub events: u64,
    /// Rounds of 200 wrong codes followed by an intrusion.
    pub floods: u32,
    /// Background readings a second in the loaded phase.
    pub rate: u32,
}

impl Options {
    /// `--seconds N`, `--events N` (readings of the memory phase), `--quick`; anything else (`--bench`, a filter from `cargo bench`) is ignored.
    pub fn parse(args: impl Iterator<Item = String>) -> anyhow::Result<Options> {
        let mut options =
            Options { seconds: 4, quick: false, cycles: 1_000, events: 1_000_000, floods: 20, rate: 1_000 };
        let mut seconds = None;
        let mut events = None;
        let mut args = args.peekable();
        while let Some(arg) = args.next() {
            match arg.split_once('=') {
                Some(("--seconds", v)) => seconds = Some(v.to_owned()),
                _ if arg == "--seconds" => seconds = Some(args.next().context("--seconds needs a value")?),
                Some(("--events", v)) => events = Some(v.to_owned()),
                _ if arg == "--events" => events = Some(args.next().context("--events needs a value")?),
                _ if arg == "--quick" => options.quick = true,
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
        let quick = if self.quick { " --quick" } else { "" };
        format!("cargo bench -p bench --bench intrusion -- --seconds {} --events {}{quick}", self.seconds, self.events)
    }
}
