//! The SUBSCRIBEs the link has sent, so that each SUBACK is read against its own filters.

use std::sync::{Mutex, MutexGuard, PoisonError};

use rumqttc::{AsyncClient, SubAck, SubscribeFilter, SubscribeReasonCode};

/// The SUBSCRIBEs in flight: queued (in the order of the request queue) until rumqttc writes
/// them, then by packet id until their SUBACK.
#[derive(Default)]
pub(super) struct Subscribes {
    pub(super) queued: std::collections::VecDeque<Vec<SubscribeFilter>>,
    pub(super) written: std::collections::HashMap<u16, Vec<SubscribeFilter>>,
}

pub(super) fn lock(subscribes: &Mutex<Subscribes>) -> MutexGuard<'_, Subscribes> {
    subscribes.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Queues one SUBSCRIBE and notes its filters, under one lock so that notes and requests keep
/// one order.
pub(super) fn subscribe(client: &AsyncClient, subscribes: &Mutex<Subscribes>, filters: Vec<SubscribeFilter>) {
    let mut subscribes = lock(subscribes);
    match client.try_subscribe_many(filters.clone()) {
        Ok(()) => subscribes.queued.push_back(filters),
        Err(e) => tracing::error!("could not queue subscriptions: {e}"),
    }
}

/// The filters a SUBACK refused, read against its own SUBSCRIBE (found by packet id).
pub(super) fn refused(subscribes: &Mutex<Subscribes>, ack: &SubAck) -> Vec<SubscribeFilter> {
    let filters = lock(subscribes).written.remove(&ack.pkid).unwrap_or_default();
    filters
        .into_iter()
        .zip(&ack.return_codes)
        .filter(|(_, code)| matches!(code, SubscribeReasonCode::Failure))
        .map(|(filter, _)| filter)
        .collect()
}
