//! The whole home as a library, so the binary and the integration tests start it the same way,
//! plus the control CLI that people use to poke it (`mqtt-home fleet` is the `fleet` crate).

pub mod cli;
pub mod config_source;
pub mod ctl;
pub mod history;
pub mod home;
pub mod open_files;
pub mod scenario;
pub mod users;
