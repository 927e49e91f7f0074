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
//! - only when the inbox is empty and the daemon holds no message it has taken but not stepped
//!   (it holds the one a reflex answered while the broker acknowledges that reflex: see
//!   [`super::Link::reflex_heard`]): every message read before this one has been stepped.
//!
//! Whatever else could change the answer before the daemon steps this message is the daemon's
//! to rule out in its [`Reflex::fire`] (the panel: a deadline due, a code being checked). The
//! daemon is told which message had a reflex ([`super::Link::reflexed`]) and leaves that publish
//! out of what its step sends.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use protocol::{Timestamp, Topics};
use tokio::sync::Notify;

use crate::runner::Outgoing;

/// A daemon's reflex, shared with its link's task.
pub trait Reflex: Send + Sync + std::fmt::Debug {
    /// What to publish at once for the message on `topic`, if anything. Called for every message
    /// read while the daemon is up to date (see the module header): answer from the topic
    /// alone for most, cheaply.
    fn fire(&self, topics: &Topics, topic: &str, payload: &[u8], now: Timestamp) -> Option<Outgoing>;
}

/// Whether the link fired a reflex for the message the daemon takes next, and which of its
/// publishes the broker has yet to acknowledge.
#[derive(Debug, Default)]
pub(crate) struct Fired {
    fired: AtomicBool,
    /// The packet id of the reflex's publish until the broker acknowledges it; 0 when none waits
    /// (QoS 0 has no id, and MQTT never numbers a packet 0).
    unacknowledged: AtomicU32,
    heard: Notify,
    /// The daemon holds the reflexed message, not yet stepped, while it waits in [`Fired::heard`]:
    /// the link's task runs meanwhile, and a reflex asked then would be asked of a stale state.
    holding: AtomicBool,
}

impl Fired {
    /// A reflex was written as packet `pkid` (0: nothing to wait for).
    pub(crate) fn set(&self, pkid: u16) {
        self.unacknowledged.store(u32::from(pkid), Ordering::SeqCst);
        self.fired.store(true, Ordering::SeqCst);
    }

    pub(crate) fn take(&self) -> bool {
        self.fired.swap(false, Ordering::SeqCst)
    }

    /// The broker acknowledged packet `pkid`: if it was the reflex's, its waiter goes on.
    pub(crate) fn acknowledged(&self, pkid: u16) {
        let ours = self.unacknowledged.compare_exchange(u32::from(pkid), 0, Ordering::SeqCst, Ordering::SeqCst);
        if pkid != 0 && ours.is_ok() {
            self.heard.notify_waiters();
        }
    }

    /// The connection is gone: the reflex is sent again after the reconnect, and nobody waits.
    pub(crate) fn forget(&self) {
        self.unacknowledged.store(0, Ordering::SeqCst);
        self.heard.notify_waiters();
    }

    /// Whether a reflex may be asked now: none fired is waiting to be taken or stepped.
    pub(crate) fn ready(&self) -> bool {
        !self.fired.load(Ordering::SeqCst) && !self.holding.load(Ordering::SeqCst)
    }

    /// Waits until the broker has acknowledged the reflex, or `within` has passed; no reflex is
    /// asked meanwhile (the message it answered is not stepped yet).
    pub(crate) async fn heard(&self, within: Duration) {
        self.holding.store(true, Ordering::SeqCst);
        let _stepping_next = Holding(&self.holding);
        let done = async {
            loop {
                let heard = self.heard.notified();
                tokio::pin!(heard);
                heard.as_mut().enable();
                if self.unacknowledged.load(Ordering::SeqCst) == 0 {
                    return;
                }
                heard.await;
            }
        };
        let _ = tokio::time::timeout(within, done).await;
    }
}

/// Lets reflexes be asked again when the wait ends (or is dropped): the daemon steps next, with
/// no await between (a current-thread runtime), so the link's task cannot run before it has.
struct Holding<'a>(&'a AtomicBool);

impl Drop for Holding<'_> {
    fn drop(&mut self) {
        self.0.store(false, Ordering::SeqCst);
    }
}

/// Whether the link writes each message's PUBACK itself (rumqttc's manual acks), so that a reflex
/// goes out ahead of the PUBACK of the message it answers: rumqttc writes that PUBACK before it
/// hands the message over, and the broker, woken by it, competes with the reflex for the core
/// (measured: 10–30 µs on the siren's path). Only for a daemon with a reflex; one that
/// acknowledges by itself (`manual_acks`) keeps doing so.
pub(super) fn link_acks(spec: &super::DeviceSpec) -> bool {
    spec.reflex.is_some() && !spec.manual_acks
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

#[cfg(test)]
mod tests {
    use super::*;

    const WAIT: Duration = Duration::from_millis(20);

    /// How long `heard` waited, on a paused clock.
    async fn waited(fired: &Fired) -> Duration {
        let start = tokio::time::Instant::now();
        fired.heard(WAIT).await;
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn the_step_waits_for_the_reflexs_own_acknowledgement() {
        let fired = Arc::new(Fired::default());
        fired.set(7);
        assert!(fired.take() && !fired.take(), "told once");
        let acks = {
            let fired = fired.clone();
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(2)).await;
                fired.acknowledged(6);
                tokio::time::sleep(Duration::from_millis(3)).await;
                fired.acknowledged(7);
            })
        };
        assert_eq!(waited(&fired).await, Duration::from_millis(5), "another packet's PUBACK is not the reflex's");
        acks.await.unwrap();
        assert_eq!(waited(&fired).await, Duration::ZERO, "nothing waits once it is acknowledged");
    }

    #[tokio::test(start_paused = true)]
    async fn no_reflex_is_asked_until_the_one_fired_is_stepped() {
        let fired = Arc::new(Fired::default());
        assert!(fired.ready());
        fired.set(3);
        assert!(!fired.ready(), "fired, not yet taken");
        assert!(fired.take());
        let waiting = {
            let fired = fired.clone();
            tokio::spawn(async move { fired.heard(WAIT).await })
        };
        tokio::time::sleep(Duration::from_millis(1)).await;
        assert!(!fired.ready(), "taken, waiting for its PUBACK, not yet stepped");
        fired.acknowledged(3);
        waiting.await.unwrap();
        assert!(fired.ready(), "the daemon steps next, with no await between");
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_waits_without_a_packet_id_and_a_lost_one_waits_no_longer() {
        let fired = Fired::default();
        fired.set(0);
        assert_eq!(waited(&fired).await, Duration::ZERO, "QoS 0, or a packet rumqttc holds back");
        fired.set(9);
        assert_eq!(waited(&fired).await, WAIT, "unacknowledged: at most the wait");
        fired.forget();
        assert_eq!(waited(&fired).await, Duration::ZERO, "the connection that owed it is gone");
    }
}
