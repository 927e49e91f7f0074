//! What a lost connection left unsent or unacknowledged, kept and given back in order.
//!
//! rumqttc keeps what a lost connection left unacknowledged (and what was still queued) to send
//! again, but forgets it all when the next broker has no session for the client: a reading
//! published during a fail-over to a broker that does not share sessions, or to a restarted one
//! without persistence, would be lost. The link keeps it instead, and on the CONNACK gives it
//! back: as it was on a resumed session (MQTT's retransmission), and on a new session the messages
//! alone, as new ones (subscriptions are made again anyway; acks and releases belong to the old
//! session).

use rumqttc::{EventLoop, Request};

use super::publisher::Progress;

/// What the link holds for the next connection.
#[derive(Debug, Default)]
pub(super) struct Unsent {
    /// What a lost connection left unacknowledged or unsent, kept until the next CONNACK says
    /// whether the broker still has the session.
    unacknowledged: Vec<Request>,
    /// What was given back to rumqttc on the last CONNACK, in order (see `restore_order`).
    given_back: Vec<Request>,
}

impl Unsent {
    /// After a lost connection: what rumqttc kept to send again, in the order it was first sent.
    pub(super) fn keep(&mut self, eventloop: &mut EventLoop, progress: &Progress) {
        let drained: Vec<Request> = eventloop.pending.drain(..).collect();
        // A publish with a packet id was written before (rumqttc numbers QoS 1 publishes as it
        // writes them): it will be written again, so it counts again in what must be written.
        let rewrites = drained.iter().filter(|r| matches!(r, Request::Publish(p) if p.pkid != 0)).count();
        progress.queue(rewrites as u64);
        let given_back = std::mem::take(&mut self.given_back);
        self.unacknowledged.extend(restore_order(&given_back, drained));
    }

    /// On a CONNACK: gives back what was kept, ahead of what the daemon queued meanwhile.
    pub(super) fn give_back(&mut self, eventloop: &mut EventLoop, session_present: bool) {
        let requests = std::mem::take(&mut self.unacknowledged);
        let requests = if session_present { requests } else { as_new(requests) };
        let behind = std::mem::take(&mut eventloop.pending);
        self.given_back = requests.clone();
        eventloop.pending.extend(requests);
        eventloop.pending.extend(behind);
    }
}

/// For a new session: the publishes as new messages (and a pending DISCONNECT), nothing else.
fn as_new(requests: Vec<Request>) -> Vec<Request> {
    let mut again = Vec::with_capacity(requests.len());
    for request in requests {
        match request {
            Request::Publish(mut publish) => {
                publish.pkid = 0;
                publish.dup = false;
                again.push(Request::Publish(publish));
            }
            Request::Disconnect(d) => again.push(Request::Disconnect(d)),
            _ => {}
        }
    }
    if !again.is_empty() {
        tracing::info!("{} messages not acknowledged by the last broker sent again on the new session", again.len());
    }
    again
}

/// Puts what rumqttc kept after a lost connection back in the order it was first sent. Its list
/// puts the requests it had not yet sent again ahead of those it had sent again but not seen
/// acknowledged, so after a second drop soon after a reconnect an older reading could follow a
/// newer one (a window's retained state ending OPEN when it is closed). What was given back on the
/// last reconnect goes first, in that order; the rest keeps rumqttc's order.
fn restore_order(given_back: &[Request], drained: Vec<Request>) -> Vec<Request> {
    if given_back.is_empty() {
        return drained;
    }
    let same = |a: &Request, b: &Request| match (a, b) {
        (Request::Publish(a), Request::Publish(b)) => {
            a.topic == b.topic && a.payload == b.payload && a.qos == b.qos && a.retain == b.retain
        }
        _ => false,
    };
    let mut used = vec![false; given_back.len()];
    let mut keyed: Vec<(usize, Request)> = drained
        .into_iter()
        .enumerate()
        .map(|(i, request)| match (0..given_back.len()).find(|&j| !used[j] && same(&given_back[j], &request)) {
            Some(j) => {
                used[j] = true;
                (j, request)
            }
            None => (given_back.len() + i, request),
        })
        .collect();
    keyed.sort_by_key(|(key, _)| *key);
    keyed.into_iter().map(|(_, request)| request).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rumqttc::QoS;

    #[test]
    fn after_a_second_drop_the_requests_go_in_the_order_first_sent() {
        let publish = |topic: &str, payload: &str, pkid: u16| {
            let mut p = rumqttc::Publish::new(topic, QoS::AtLeastOnce, payload);
            p.pkid = pkid;
            Request::Publish(p)
        };
        let topic = |r: &Request| match r {
            Request::Publish(p) => format!("{}={}", p.topic, String::from_utf8_lossy(&p.payload)),
            _ => "other".into(),
        };
        // Given back on the reconnect: OPEN, then CLOSED. OPEN was sent again (now in rumqttc's
        // state, with a new packet id), CLOSED not; then the connection dropped again. rumqttc's
        // list: CLOSED (its pending), OPEN (its state), then a newer reading from the queue.
        let given_back = vec![publish("w", "OPEN", 0), publish("w", "CLOSED", 0)];
        let drained = vec![publish("w", "CLOSED", 0), publish("w", "OPEN", 7), publish("d", "OPEN", 0)];
        let order: Vec<String> = restore_order(&given_back, drained).iter().map(topic).collect();
        assert_eq!(order, ["w=OPEN", "w=CLOSED", "d=OPEN"]);
        // Nothing given back: rumqttc's order stands.
        let drained = vec![publish("a", "1", 3), publish("b", "2", 0)];
        let order: Vec<String> = restore_order(&[], drained).iter().map(topic).collect();
        assert_eq!(order, ["a=1", "b=2"]);
    }
}
