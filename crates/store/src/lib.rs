//! The home's event log as a library: the recorder daemon writes it, `mqtt-home history` and the
//! dashboard read it, and none of them depends on another for it.
//!
//! - [`classify`]: what one message means for the log (a [`Record`] of a [`Kind`], or an
//!   [`Unreadable`]), and which state messages are changes. Pure, tested without a database.
//! - [`Store`] (in `sqlite.rs`): the SQLite file — schema, commits in groups, pruning, and the
//!   queries ([`Query`] → [`Row`]s, activity per hour, when devices went offline).
//!
//! Synchronous on purpose: a caller on an async runtime runs it on a blocking thread.

pub mod classify;
mod sqlite;

pub use classify::{Entry, Kind, Record, Unreadable};
pub use sqlite::{Committed, Durability, Pruned, Query, Retention, Row, Store, StoreError};

/// Where the log is kept when no path is configured; the recorder writes there and `mqtt-home
/// history` and the dashboard look there.
pub const DEFAULT_DATABASE: &str = "mqtt-home.db";
