//! The whole home as a library, so the binary and the integration tests start it the same way,
//! plus the control CLI that people use to poke it.

pub mod ctl;
pub mod home;
pub mod scenario;
