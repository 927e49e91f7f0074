//! Logging for people (`text`, the default) or for log shippers (`json`), on standard error:
//! standard output is for what a command prints (`status --json`, `history --csv`), and a log
//! line there would break a pipe's reader.

use tracing_subscriber::EnvFilter;

/// The two log formats `--log-format` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Installs the global subscriber. `verbosity` counts `-v` flags; `RUST_LOG` overrides both.
///
/// rumqttc logs through the `log` crate; its lines are bridged in, at `warn` unless asked for.
pub fn init(verbosity: u8, format: LogFormat) {
    let level = match verbosity {
        // rumqttd reports every client that disconnects abruptly as an ERROR; that is noise in a demo.
        0 => "info,rumqttc=warn,rumqttd=off",
        1 => "debug,rumqttc=info,rumqttd=warn",
        _ => "trace",
    };
    init_filter(level, verbosity, format);
}

/// Like [`init`] without `-v`, but only warnings and errors: for a tool whose own output is the
/// point (a scenario timeline) while daemons run beside it in the same process.
pub fn init_quiet(format: LogFormat) {
    init_filter("warn,rumqttd=off", 0, format);
}

fn init_filter(level: &str, verbosity: u8, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(level));
    let builder =
        tracing_subscriber::fmt().with_env_filter(filter).with_target(verbosity > 0).with_writer(std::io::stderr);
    // A second init (several daemons in one process, or tests) keeps the first subscriber.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
    };
}
