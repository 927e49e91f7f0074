//! What a daemon holds of its link: the [`Publisher`] it sends with, the [`Ack`]s it owes for the
//! messages it acknowledges itself, and the counts of what was queued, written and acknowledged
//! that `Publisher::written` and the goodbye wait on.
//!
//! Acks are written in bulk (see the link's module header): only the first ack of a group goes
//! through rumqttc (the *nudge*); the ones behind it wait in [`WaitingAcks`] and are written
//! straight to the socket once rumqttc has written the nudge ([`write_waiting_acks`]).

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use protocol::{Payload, Qos, Topic, Topics};
use rumqttc::{AsyncClient, EventLoop, Packet, PubAck, PubRec, QoS, Request};

use super::LinkError;
use super::options::to_qos;

/// The longest wait to write a group of acks (rumqttc's own network timeout is 5 s).
const ACK_WRITE_TIMEOUT: Duration = Duration::from_secs(5);

/// The acknowledgement a message is owed, for a daemon that acknowledges messages itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    pkid: u16,
    qos: Qos,
    /// The connection that delivered the message (counted from 1).
    pub(super) connection: u64,
}

impl Ack {
    /// The ack a message is owed by a daemon that acknowledges by itself, on `connection`.
    pub(super) fn owed(publish: &rumqttc::Publish, connection: u64) -> Option<Ack> {
        (publish.qos != QoS::AtMostOnce).then(|| Ack {
            pkid: publish.pkid,
            qos: super::options::from_qos(publish.qos),
            connection,
        })
    }
}

/// Publishes on behalf of one device. Cheap to clone.
#[derive(Clone)]
pub struct Publisher {
    pub(super) client: AsyncClient,
    pub(super) topics: Topics,
    pub(super) device_id: String,
    pub(super) max_payload: usize,
    pub(super) progress: Arc<Progress>,
    pub(super) acks: Arc<Mutex<WaitingAcks>>,
}

/// The acks behind the one rumqttc is about to write (see the module's "Acks are written in bulk").
#[derive(Debug, Default)]
pub(super) struct WaitingAcks {
    /// The packet id of the ack in rumqttc's queue, until it is written.
    nudge: Option<u16>,
    /// Acks that came after the nudge, in order.
    waiting: Vec<(u16, Qos)>,
}

impl WaitingAcks {
    /// Forgets every ack of a connection that has ended: rumqttc drops the acks in its queue too.
    pub(super) fn connection_ended(&mut self) {
        self.nudge = None;
        self.waiting.clear();
    }
}

impl fmt::Debug for Publisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Publisher").field("device_id", &self.device_id).field("topics", &self.topics).finish()
    }
}

impl Publisher {
    pub fn topics(&self) -> &Topics {
        &self.topics
    }

    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// Publishes `payload` on `topic` with the QoS and retain flag the contract gives the topic.
    pub async fn send<P: Payload>(&self, topic: &Topic, payload: &P) -> Result<(), LinkError> {
        self.send_bytes(&self.topics.name(topic), payload.encode(), topic.qos(), topic.retained()).await
    }

    /// Publishes raw bytes. Never waits on the link: its request queue has no bound.
    pub async fn send_bytes(&self, topic: &str, payload: Vec<u8>, qos: Qos, retain: bool) -> Result<(), LinkError> {
        if payload.len() > self.max_payload {
            return Err(LinkError::PayloadTooLarge {
                topic: topic.to_owned(),
                size: payload.len(),
                max: self.max_payload,
            });
        }
        self.client
            .publish(topic, to_qos(qos), retain, payload)
            .await
            .map_err(|_| LinkError::Closed { topic: topic.to_owned() })?;
        self.progress.queued.fetch_add(1, Ordering::SeqCst);
        if qos != Qos::AtMostOnce {
            self.progress.to_acknowledge.fetch_add(1, Ordering::SeqCst);
        }
        Ok(())
    }

    /// Acknowledges a message the daemon has made durable. An ack owed by an earlier connection is
    /// not sent: the broker redelivers that message (flagged DUP) and will be acknowledged then.
    pub fn ack(&self, ack: Ack) {
        let mut acks = lock(&self.acks);
        if ack.connection != self.progress.connection.load(Ordering::SeqCst) {
            tracing::debug!("not acknowledging packet {} of an earlier connection: it is redelivered", ack.pkid);
            return;
        }
        if acks.nudge.is_some() {
            acks.waiting.push((ack.pkid, ack.qos));
            return;
        }
        let mut publish = rumqttc::Publish::new("", to_qos(ack.qos), Vec::new());
        publish.pkid = ack.pkid;
        // The request queue has no bound that matters, so this fails only once the link has stopped.
        if self.client.try_ack(&publish).is_err() {
            tracing::debug!("the link has stopped; packet {} is redelivered on the next connect", ack.pkid);
            return;
        }
        acks.nudge = Some(ack.pkid);
    }

    /// QoS 1 and 2 publishes the broker has not acknowledged yet (a bound: re-sends after a
    /// reconnect count again).
    pub fn unacknowledged(&self) -> u64 {
        let sent = self.progress.to_acknowledge.load(Ordering::SeqCst);
        sent.saturating_sub(self.progress.acked.load(Ordering::SeqCst))
    }

    /// Waits until every publish queued so far has been written to the broker's socket, or
    /// `within` passed (a link without a broker writes nothing). What must not wait for a disk —
    /// the siren — is on the wire before the disk is touched.
    pub async fn written(&self, within: Duration) {
        let target = self.progress.queued.load(Ordering::SeqCst);
        let all_written = async {
            loop {
                let wrote = self.progress.wrote.notified();
                tokio::pin!(wrote);
                wrote.as_mut().enable();
                if self.progress.written.load(Ordering::SeqCst) >= target {
                    return;
                }
                wrote.await;
            }
        };
        let _ = tokio::time::timeout(within, all_written).await;
    }
}

/// How far the link has come with the daemon's publishes.
#[derive(Debug, Default)]
pub(super) struct Progress {
    /// Publish requests queued so far (the daemon's, `online`, announce, `offline`).
    pub(super) queued: AtomicU64,
    /// Publishes written to the socket (re-sends after a reconnect count again).
    pub(super) written: AtomicU64,
    /// The daemon's QoS 1 and 2 publishes, and the PUBACKs and PUBCOMPs received (re-sends after
    /// a reconnect are acknowledged again: a bound, not an exact count).
    pub(super) to_acknowledge: AtomicU64,
    pub(super) acked: AtomicU64,
    /// Woken on every write and every acknowledgement.
    pub(super) wrote: tokio::sync::Notify,
    /// Counts connects and disconnects: acks are sent only for messages of the current connection.
    pub(super) connection: AtomicU64,
    /// Shutdown's `offline` is in the request queue (or there is none to send).
    pub(super) goodbye_queued: std::sync::atomic::AtomicBool,
}

impl Progress {
    pub(super) fn queue(&self, n: u64) {
        self.queued.fetch_add(n, Ordering::SeqCst);
    }

    pub(super) fn all_written(&self) -> bool {
        self.written.load(Ordering::SeqCst) >= self.queued.load(Ordering::SeqCst)
    }

    /// Waits until everything queued is written and acknowledged, or `within` passed.
    pub(super) async fn acknowledged(&self, within: Duration) {
        let done = async {
            loop {
                let wrote = self.wrote.notified();
                tokio::pin!(wrote);
                wrote.as_mut().enable();
                let acked = self.acked.load(Ordering::SeqCst) >= self.to_acknowledge.load(Ordering::SeqCst);
                if self.all_written() && acked {
                    return;
                }
                wrote.await;
            }
        };
        let _ = tokio::time::timeout(within, done).await;
    }
}

pub(super) fn lock(acks: &Mutex<WaitingAcks>) -> MutexGuard<'_, WaitingAcks> {
    acks.lock().unwrap_or_else(PoisonError::into_inner)
}

/// rumqttc has written the ack `pkid`: if it was the nudge, writes the acks waiting behind it
/// straight to the socket, in order, with one flush. A failed write loses only acks: the
/// broker redelivers those messages, and the next poll finds the broken connection.
pub(super) async fn write_waiting_acks(acks: &Mutex<WaitingAcks>, pkid: u16, eventloop: &mut EventLoop) {
    let waiting = {
        let mut acks = lock(acks);
        if acks.nudge != Some(pkid) {
            return;
        }
        acks.nudge = None;
        std::mem::take(&mut acks.waiting)
    };
    let Some(network) = eventloop.network.as_mut() else { return };
    let written = async {
        for (pkid, qos) in waiting {
            let packet = match qos {
                // The state keeps QoS 2's packet ids until the release; a PUBACK needs nothing.
                Qos::ExactlyOnce => eventloop.state.handle_outgoing_packet(Request::PubRec(PubRec::new(pkid)))?,
                _ => Some(Packet::PubAck(PubAck::new(pkid))),
            };
            if let Some(packet) = packet {
                network.write(packet).await?;
            }
        }
        network.flush().await
    };
    match tokio::time::timeout(ACK_WRITE_TIMEOUT, written).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::debug!("could not write acks ({e}); their messages are redelivered"),
        Err(_) => tracing::debug!("writing acks took over {ACK_WRITE_TIMEOUT:?}; their messages are redelivered"),
    }
}
