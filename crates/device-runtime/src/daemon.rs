//! The `main` of every daemon: parse flags, log, load the layered config, run until a signal.
//!
//! A daemon's binary is three lines: parse its clap struct, turn its own flags into config
//! overrides, and call [`main`] with its `run(config, shutdown)` function.

use std::future::Future;
use std::process::ExitCode;

use serde::Serialize;
use serde::de::DeserializeOwned;
use toml::Table;

use crate::config::{ConfigError, MqttConfig, find_file, layer, merge, to_toml};
use crate::{CommonArgs, Shutdown, logging};

/// The two accessors of [`DaemonConfig`] for a config whose `[mqtt]` section is the field named:
/// `device_runtime::mqtt_section!(mqtt);` inside the `impl`.
#[macro_export]
macro_rules! mqtt_section {
    ($($field:tt).+) => {
        fn mqtt(&self) -> &$crate::MqttConfig {
            &self.$($field).+
        }

        fn mqtt_mut(&mut self) -> &mut $crate::MqttConfig {
            &mut self.$($field).+
        }
    };
}

/// What a daemon's configuration offers the runtime.
pub trait DaemonConfig: Serialize + DeserializeOwned + Default {
    /// The daemon's name: its binary, and its file `config/<NAME>.toml`.
    const NAME: &'static str;

    fn mqtt(&self) -> &MqttConfig;

    fn mqtt_mut(&mut self) -> &mut MqttConfig;

    /// Checks what serde cannot; the default checks the `[mqtt]` section.
    fn validate(&self) -> Result<(), ConfigError> {
        self.mqtt().validate()
    }
}

/// Loads `C`: defaults < config file < environment and flags (`common` and the daemon's own `overrides`).
pub fn load<C: DaemonConfig>(common: &CommonArgs, overrides: Table) -> Result<C, ConfigError> {
    let file = find_file(common.config.as_deref(), C::NAME)?;
    let mut top = common.overrides();
    merge(&mut top, overrides);
    let config: C = layer(&C::default(), file.as_deref(), top)?;
    config.validate()?;
    match &file {
        Some(path) => tracing::debug!("{}: configuration from {}", C::NAME, path.display()),
        None => tracing::debug!("{}: no config file, built-in defaults", C::NAME),
    }
    Ok(config)
}

/// The exit code of a run that failed: 2 when a configuration was refused (the error chain holds a
/// [`ConfigError`]), 1 for anything else. Every binary exits with these.
pub fn exit_code(error: &anyhow::Error) -> ExitCode {
    if error.chain().any(|cause| cause.is::<ConfigError>()) { ExitCode::from(2) } else { ExitCode::FAILURE }
}

/// How long a finished daemon waits for blocking tasks it no longer needs (see [`block_on`]).
pub const LEFTOVER_WAIT: std::time::Duration = std::time::Duration::from_millis(500);

/// Runs `work` to completion on a runtime of its own (`threads` workers; 1 is a current-thread
/// runtime) and turns the outcome into an exit code, printing a failure as `<name>: error: …`.
pub fn block_on<F>(name: &str, threads: usize, work: F) -> ExitCode
where
    F: Future<Output = anyhow::Result<()>>,
{
    let runtime = if threads <= 1 {
        tokio::runtime::Builder::new_current_thread().enable_all().build()
    } else {
        tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()
    };
    let outcome = match runtime {
        Ok(runtime) => {
            let outcome = runtime.block_on(work);
            // Dropping a runtime waits for every blocking task, and one may be a DNS lookup of a
            // broker that is gone (tokio resolves host names on its blocking pool; a lookup whose
            // DNS server went with the broker's container waits out the resolver's timeouts,
            // 10 s and more). The work is done: whatever blocking task is left is abandoned.
            runtime.shutdown_timeout(LEFTOVER_WAIT);
            outcome
        }
        Err(e) => Err(anyhow::Error::new(e).context("cannot start the async runtime")),
    };
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: error: {e:#}");
            exit_code(&e)
        }
    }
}

/// Runs a daemon to completion and turns the outcome into an exit code (2: bad configuration, 1: failure).
pub fn main<C, F, Fut>(common: CommonArgs, overrides: Table, run: F) -> ExitCode
where
    C: DaemonConfig,
    F: FnOnce(C, Shutdown) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    logging::init(common.verbose, common.log_format);
    let config = match load::<C>(&common, overrides) {
        Ok(config) => config,
        Err(e) => {
            eprintln!("{}: error: {e:#}", C::NAME);
            return ExitCode::from(2);
        }
    };
    if common.print_config {
        print!("{}", to_toml(&config));
        return ExitCode::SUCCESS;
    }
    let endpoint = match common.metrics.map(crate::metrics::bind).transpose() {
        Ok(endpoint) => endpoint,
        Err(e) => {
            eprintln!("{}: error: {e}", C::NAME);
            return ExitCode::from(2);
        }
    };
    block_on(C::NAME, 1, async {
        let shutdown = Shutdown::new();
        shutdown.trigger_on_signals();
        if let Some(listener) = endpoint {
            tokio::spawn(crate::metrics::serve(listener, shutdown.clone()));
        }
        run(config, shutdown).await
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_configuration_exits_2_anything_else_1() {
        let bad = anyhow::Error::new(ConfigError::Invalid("x".into())).context("loading light-bulb");
        assert_eq!(exit_code(&bad), ExitCode::from(2));
        assert_eq!(exit_code(&anyhow::anyhow!("broker gone")), ExitCode::FAILURE);
        assert_eq!(block_on("test", 1, async { Err(ConfigError::Invalid("y".into()).into()) }), ExitCode::from(2));
        assert_eq!(block_on("test", 2, async { Ok(()) }), ExitCode::SUCCESS);
    }

    #[test]
    fn a_finished_daemon_exits_though_a_blocking_task_never_returns() {
        // As a DNS lookup of a broker that went away: a blocking task nobody awaits any more.
        for threads in [1, 2] {
            let (never, waits) = std::sync::mpsc::channel::<()>();
            let (exited, exit) = std::sync::mpsc::channel();
            std::thread::spawn(move || {
                let code = block_on("test", threads, async move {
                    tokio::task::spawn_blocking(move || waits.recv());
                    tokio::task::yield_now().await;
                    Ok(())
                });
                let _ = exited.send(code);
            });
            let code = exit.recv_timeout(std::time::Duration::from_secs(10));
            assert_eq!(code, Ok(ExitCode::SUCCESS), "block_on({threads} threads) waited for the blocking task");
            drop(never);
        }
    }
}
