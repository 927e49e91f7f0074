//! What every mqtt-home daemon shares, so that no daemon re-implements any of it:
//!
//! - [`broker`]: the broker's URL, parsed once.
//! - [`config`]: layered configuration (built-in defaults < `config/<daemon>.toml` < environment < CLI flags),
//!   strict about unknown keys, printable with `--print-config`.
//! - [`cli`]: the flags every binary takes (`--broker`, `--id`, `--config`, `--topic-root`, credentials, logging).
//! - [`link`]: the MQTT connection as production devices run it: one task owns the event loop, reconnects with
//!   backoff and jitter, re-subscribes, announces itself, keeps a retained availability set by Last Will, and
//!   refuses oversized payloads before they can wedge a persistent session.
//! - [`runner`]: the one edge loop every daemon runs on: a [`Device`] decides, the runner connects,
//!   parses, publishes and keeps the clock.
//! - [`shutdown`]: a cancellation token every task selects on, fired by Ctrl-C or SIGTERM.
//! - [`duration`]: `1s`, `500ms`, `2m` in flags and config files, or bare numbers in the key's unit.
//! - [`daemon`]: the `main` of every binary in three lines.

pub mod broker;
pub mod cli;
pub mod config;
pub mod daemon;
pub mod duration;
pub mod link;
pub mod logging;
pub mod metrics;
pub mod process;
pub mod runner;
pub mod shutdown;

pub use broker::{BrokerUrl, Brokers};
pub use cli::CommonArgs;
pub use config::{ConfigError, MqttConfig, Secret};
pub use link::{Ack, DeviceSpec, Inbound, Link, LinkError, Publisher};
pub use runner::{Act, Device, Outgoing, Received};
pub use shutdown::Shutdown;
