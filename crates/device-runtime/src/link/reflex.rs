//! Reflexes: a publish the link makes itself, the moment a message is read, before the daemon
//! takes the message in — the panel's siren command for a door that sounds it at once.
//!
//! Why here: between the link reading a message and the daemon's step lie a task switch, the
//! inbox, the decode and the whole step (the panel's status, events, sounds, save), ~100 µs on
//! a cold two-core machine, where a 30-line controller that owns its event loop answers in a
//! third of that. The link's task owns the event loop, so a publish it makes is written in the
//! very next poll.
//!
//! How it stays right: the daemon's decision is the one the step would make, asked of the same
//! state (the panel's `House::sounds_at_once`, checked against the step by a property test), and
//! the link asks only when that state is current:
//! - only on a current-thread runtime, where the daemon's step and the link's task never run at
//!   once (between taking a message from the inbox and stepping it there is no await);
//! - only when the inbox is empty: every message read before this one has been stepped.
//!
//! Whatever else could change the answer before the daemon steps this message is the daemon's
//! to rule out in its [`Reflex::fire`] (the panel: a deadline due, a code being checked). The
//! daemon is told which message had a reflex ([`super::Link::reflexed`]) and leaves that publish
//! out of what its step sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use protocol::{Timestamp, Topics};

use crate::runner::Outgoing;

/// A daemon's reflex, shared with its link's task.
pub trait Reflex: Send + Sync + std::fmt::Debug {
    /// What to publish at once for the message on `topic`, if anything. Called for every message
    /// read while the daemon is up to date (see the module header): answer from the topic
    /// alone for most, cheaply.
    fn fire(&self, topics: &Topics, topic: &str, payload: &[u8], now: Timestamp) -> Option<Outgoing>;
}

/// Whether the link fired a reflex for the message the daemon takes next.
#[derive(Debug, Default)]
pub(crate) struct Fired(AtomicBool);

impl Fired {
    pub(crate) fn set(&self) {
        self.0.store(true, Ordering::SeqCst);
    }

    pub(crate) fn take(&self) -> bool {
        self.0.swap(false, Ordering::SeqCst)
    }
}

/// A reflex, where the runtime allows one (current-thread); `None` elsewhere, with the reason
/// logged once: the daemon then sends everything from its step, as without one.
pub(super) fn usable(reflex: Option<Arc<dyn Reflex>>) -> Option<Arc<dyn Reflex>> {
    let reflex = reflex?;
    let flavor = tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor());
    if matches!(flavor, Ok(tokio::runtime::RuntimeFlavor::CurrentThread)) {
        return Some(reflex);
    }
    tracing::debug!("no reflexes on a multi-thread runtime: the daemon's step sends everything");
    None
}
