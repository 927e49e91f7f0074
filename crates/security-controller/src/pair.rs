//! Two panels, one active: a standby that takes over when the active one is gone.
//!
//! Both run with `standby = true`, each with its own MQTT id. The broker arbitrates: the active
//! panel holds a lease — a retained claim on `<root>/security/leader`, `{holder, term}` — and
//! renews it every third of `lease_s`; it also publishes its whole state, retained, on
//! `<root>/security/snapshot` every time it saves its state file. The other follows both. When
//! the holder's availability goes `offline` (its Last Will: a `kill -9`, a lost host) or no
//! renewal came for `lease_s` (a paused or cut-off process), the standby claims the next term;
//! once the broker delivers that claim back to it, with no other claim of that term or higher
//! before, it writes the snapshot to its own state file and starts as the panel — exactly as a
//! panel restarting from its file, so the retained readings that follow (a window opened during
//! the take-over) are judged at once, and an entry delay keeps its deadline.
//!
//! A deposed panel never acts again: every siren command carries the sender's term and the siren
//! ignores one lower than it has obeyed; an active panel that sees a claim of a higher term (or
//! the same term, delivered after its own) stops and follows; and one that has not seen its own
//! renewal come back within the lease (paused past it, or cut off) holds its publishes back until
//! it does — or drops them, if it turns out deposed.
//!
//! [`Follower`] and [`Holder`] are the decisions, pure; [`run`] is the loop between the two roles.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use device_runtime::{Act, Device, DeviceSpec, Shutdown};
use protocol::{
    Availability, DeviceKind, Message, PanelLeader, PanelSnapshot, Qos, Timestamp, Topic, Topics, Unreadable,
};

use crate::Config;
use crate::house::Saved;

/// What a follower does next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Publish this claim (retained).
    Claim(PanelLeader),
    /// The broker gave the term to this panel: become the active one.
    Promote(u64),
}

/// The standby's view of the lease.
#[derive(Debug, Clone)]
pub struct Follower {
    me: String,
    lease: Duration,
    /// The highest term heard of, and its holder.
    term: u64,
    holder: Option<String>,
    /// When the holder's last claim or renewal arrived (or the follower started).
    heard: Timestamp,
    /// The term this panel claimed and when, until the broker delivers it back.
    claimed: Option<(u64, Timestamp)>,
    /// A panel outside the pair (`standby = false`) that is online and publishes the panel's
    /// status: while there is one, this panel never claims (two panels would both act).
    outsider: Option<String>,
}

impl Follower {
    /// A new follower gives a holder one lease, and `jitter` more, to be heard from before it
    /// claims (two panels started together then rarely claim the same term).
    pub fn new(me: &str, lease: Duration, jitter: Duration, now: Timestamp) -> Follower {
        Follower {
            me: me.to_owned(),
            lease,
            term: 0,
            holder: None,
            heard: now.plus(jitter),
            claimed: None,
            outsider: None,
        }
    }

    /// A panel outside the pair is online (`Some`), or no longer (`None`).
    pub fn set_outsider(&mut self, outsider: Option<String>) {
        self.outsider = outsider;
    }

    pub fn holder(&self) -> Option<&str> {
        self.holder.as_deref()
    }

    /// A claim or renewal on the leader topic (ours coming back too). Of two claims of one term,
    /// the first the broker delivers wins: every client sees them in that order.
    pub fn on_claim(&mut self, claim: &PanelLeader, now: Timestamp) -> Option<Step> {
        let renewal = claim.term == self.term && self.holder.as_deref() == Some(claim.holder.as_str());
        if claim.term > self.term || renewal {
            self.term = claim.term;
            self.holder = Some(claim.holder.clone());
            self.heard = now;
        }
        let (term, _) = self.claimed?;
        if self.term < term {
            return None;
        }
        self.claimed = None;
        // Ours, first of its term: the term is ours. Another's came first: we follow it.
        (self.holder.as_deref() == Some(self.me.as_str()) && self.term == term).then_some(Step::Promote(term))
    }

    /// A daemon's availability went `offline`: the holder's Last Will releases the lease at once.
    pub fn on_offline(&mut self, id: &str, now: Timestamp) -> Option<Step> {
        let holder_gone =
            self.holder.as_deref() == Some(id) && id != self.me && self.claimed.is_none() && self.outsider.is_none();
        holder_gone.then(|| self.claim(now))
    }

    /// Time passed: the lease lapsed without a renewal, or our claim never came back. Never while
    /// a panel outside the pair acts (it is asked again a lease later).
    pub fn on_tick(&mut self, now: Timestamp) -> Option<Step> {
        if now < self.next_deadline() {
            return None;
        }
        if self.outsider.is_some() {
            self.heard = now;
            return None;
        }
        Some(self.claim(now))
    }

    pub fn next_deadline(&self) -> Timestamp {
        match self.claimed {
            Some((_, at)) => at.plus(self.lease),
            None => self.heard.plus(self.lease),
        }
    }

    fn claim(&mut self, now: Timestamp) -> Step {
        let term = self.term + 1;
        self.claimed = Some((term, now));
        Step::Claim(PanelLeader { holder: self.me.clone(), term, ts: now })
    }
}

/// The active panel's view of its lease.
#[derive(Debug, Clone)]
pub struct Holder {
    pub me: String,
    pub term: u64,
    lease: Duration,
    /// When our own claim last came back from the broker.
    confirmed: Timestamp,
    next_renewal: Timestamp,
}

impl Holder {
    pub fn new(me: &str, term: u64, lease: Duration, now: Timestamp) -> Holder {
        Holder { me: me.to_owned(), term, lease, confirmed: now, next_renewal: now }
    }

    /// A claim on the leader topic: true when it deposes this panel (a higher term; one of ours,
    /// claimed after ours, came later and lost).
    pub fn on_claim(&mut self, claim: &PanelLeader, now: Timestamp) -> bool {
        if claim.term > self.term {
            return true;
        }
        if claim.holder == self.me && claim.term == self.term {
            self.confirmed = now;
        }
        false
    }

    /// Whether this panel may act: its lease came back within the lease's length.
    pub fn may_act(&self, now: Timestamp) -> bool {
        now.since(self.confirmed) <= self.lease
    }

    /// The renewal due at `now`, if one is.
    pub fn renewal(&mut self, now: Timestamp) -> Option<PanelLeader> {
        if now < self.next_renewal {
            return None;
        }
        self.next_renewal = now.plus(self.lease / 3);
        Some(PanelLeader { holder: self.me.clone(), term: self.term, ts: now })
    }

    pub fn next_deadline(&self) -> Timestamp {
        self.next_renewal
    }
}

/// The lease's length of `config`.
pub fn lease(config: &Config) -> Duration {
    Duration::from_secs_f64(config.lease_s)
}

/// Runs one panel of a pair until `shutdown`: follows, takes over, is deposed, follows again.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    tracing::info!("one of a pair: following the active panel (lease {} s)", config.lease_s);
    loop {
        let Some(promotion) = follow(&config, &shutdown).await? else { return Ok(()) };
        if let Some(snapshot) = &promotion.snapshot {
            match serde_json::from_value::<Saved>(snapshot.state.clone()) {
                Ok(saved) => crate::state_file::save(&config.state_file, &saved)?,
                Err(e) => {
                    tracing::error!("the active panel's snapshot does not read ({e}): starting from my own state file")
                }
            }
        }
        tracing::warn!(
            "taking over as the active panel, term {} (the last holder: {})",
            promotion.term,
            promotion.from.as_deref().unwrap_or("none")
        );
        let holder = Holder::new(&config.mqtt.id, promotion.term, lease(&config), Timestamp::now());
        let deposed = shutdown.child();
        crate::edge::run_panel(config.clone(), deposed, Some(holder)).await?;
        if shutdown.is_triggered() {
            return Ok(());
        }
        tracing::warn!("deposed: following the active panel again");
    }
}

/// What a standby takes over with.
#[derive(Debug)]
struct Promotion {
    term: u64,
    from: Option<String>,
    snapshot: Option<PanelSnapshot>,
}

/// Follows the leader topic until this panel is given the term (`Some`) or `shutdown` (`None`).
async fn follow(config: &Config, shutdown: &Shutdown) -> anyhow::Result<Option<Promotion>> {
    let promoted = Arc::new(Mutex::new(None));
    let stop = shutdown.child();
    let standby = Standby {
        me: config.mqtt.id.clone(),
        status_from: None,
        claimants: Default::default(),
        online: Default::default(),
        topics: Topics::new(&config.mqtt.topic_root),
        follower: Follower::new(
            &config.mqtt.id,
            lease(config),
            lease(config).mul_f64(fastrand::f64()),
            Timestamp::now(),
        ),
        snapshot: None,
        promoted: promoted.clone(),
        stop: stop.clone(),
    };
    device_runtime::runner::run(standby, &config.mqtt, stop).await?;
    let promotion = promoted.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take();
    Ok(promotion)
}

/// The standby as a [`Device`]: it reads the lease and the active panel's snapshot, and claims.
struct Standby {
    me: String,
    topics: Topics,
    follower: Follower,
    snapshot: Option<PanelSnapshot>,
    promoted: Arc<Mutex<Option<Promotion>>>,
    stop: Shutdown,
    /// Who published the panel's status last, who has ever claimed a term, who is online: a
    /// status publisher that never claimed and is online is a panel outside the pair.
    status_from: Option<String>,
    claimants: std::collections::BTreeSet<String>,
    online: std::collections::BTreeSet<String>,
}

impl Standby {
    /// Tells the follower of a panel outside the pair, and says so once.
    fn judge_outsider(&mut self) {
        let outsider = self
            .status_from
            .clone()
            .filter(|id| *id != self.me && !self.claimants.contains(id) && self.online.contains(id));
        if outsider.is_some() && self.follower.outsider.is_none() {
            tracing::error!(
                "{} publishes the panel's status and is not one of the pair (standby = false?): two panels would \
                 both act, so this one will not take over while it is online; give both panels standby = true",
                outsider.as_deref().unwrap_or_default()
            );
        }
        self.follower.set_outsider(outsider);
    }

    fn carry_out(&mut self, step: Option<Step>) -> Vec<Act<()>> {
        match step {
            None => Vec::new(),
            Some(Step::Claim(claim)) => {
                let note = format!(
                    "claiming term {} (the lease of {} lapsed)",
                    claim.term,
                    self.follower.holder().unwrap_or("nobody")
                );
                vec![Act::publish(Topic::PanelLeader, &claim), Act::Note(note)]
            }
            Some(Step::Promote(term)) => {
                let snapshot = self.snapshot.take();
                let from = snapshot.as_ref().map(|s| s.holder.clone());
                *self.promoted.lock().unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(Promotion { term, from, snapshot });
                self.stop.trigger();
                Vec::new()
            }
        }
    }
}

impl Device for Standby {
    type Job = ();

    fn spec(&self) -> DeviceSpec {
        let mut spec = DeviceSpec::new(DeviceKind::SecurityController);
        spec.capabilities = vec!["standby".into()];
        let t = &self.topics;
        let filters = [t.name(&Topic::PanelLeader), t.name(&Topic::PanelSnapshot), t.name(&Topic::PanelStatus)];
        spec.subscriptions = filters.into_iter().chain([t.all_availability()]).map(|f| (f, Qos::AtLeastOnce)).collect();
        // No session kept: a standby wants the retained state, not what queued for an earlier
        // active run of this panel (its commands are the active panel's to answer).
        spec.persistent_session = false;
        spec
    }

    fn on_message(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Act<()>> {
        let step = match message {
            Ok(Message::PanelLeader(claim)) => {
                self.claimants.insert(claim.holder.clone());
                self.follower.on_claim(&claim, now)
            }
            Ok(Message::PanelSnapshot(snapshot)) => {
                self.snapshot = Some(snapshot);
                None
            }
            Ok(Message::PanelStatus(status)) => {
                self.status_from = Some(status.device_id);
                None
            }
            Ok(Message::Availability { id, availability: Availability::Online }) => {
                self.online.insert(id);
                None
            }
            Ok(Message::Availability { id, availability: Availability::Offline }) => {
                self.online.remove(&id);
                self.judge_outsider();
                self.follower.on_offline(&id, now)
            }
            _ => None,
        };
        self.judge_outsider();
        self.carry_out(step)
    }

    fn next_deadline(&self) -> Option<Timestamp> {
        Some(self.follower.next_deadline())
    }

    fn on_deadline(&mut self, now: Timestamp) -> Vec<Act<()>> {
        let step = self.follower.on_tick(now);
        self.carry_out(step)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LEASE: Duration = Duration::from_millis(1500);

    fn at(ms: u64) -> Timestamp {
        Timestamp(1_000_000 + ms)
    }

    fn claim(holder: &str, term: u64) -> PanelLeader {
        PanelLeader { holder: holder.into(), term, ts: at(0) }
    }

    #[test]
    fn a_follower_claims_when_the_lease_lapses_and_takes_over_when_its_claim_comes_back() {
        let mut f = Follower::new("b", LEASE, Duration::ZERO, at(0));
        assert_eq!(f.on_claim(&claim("a", 3), at(100)), None);
        assert_eq!(f.on_tick(at(1500)), None, "a claim was heard at 100");
        assert_eq!(f.on_claim(&claim("a", 3), at(600)), None, "renewed");
        assert_eq!(f.next_deadline(), at(2100));
        let Some(Step::Claim(mine)) = f.on_tick(at(2100)) else { panic!("the lease lapsed: claim") };
        assert_eq!((mine.holder.as_str(), mine.term), ("b", 4));
        assert_eq!(f.on_tick(at(2200)), None, "waiting for it to come back");
        assert_eq!(f.on_claim(&mine, at(2210)), Some(Step::Promote(4)));
    }

    #[test]
    fn a_new_follower_waits_a_lease_and_its_jitter_for_a_holder() {
        let f = Follower::new("b", LEASE, Duration::from_millis(700), at(0));
        assert_eq!(f.next_deadline(), at(2200));
    }

    #[test]
    fn the_holders_last_will_starts_the_claim_at_once() {
        let mut f = Follower::new("b", LEASE, Duration::ZERO, at(0));
        f.on_claim(&claim("a", 1), at(10));
        assert_eq!(f.on_offline("c", at(20)), None, "not the holder");
        let Some(Step::Claim(mine)) = f.on_offline("a", at(30)) else { panic!("the holder is gone") };
        assert_eq!(mine.term, 2);
        assert_eq!(f.on_offline("a", at(40)), None, "claimed once");
    }

    #[test]
    fn of_two_claims_of_one_term_the_first_delivered_wins() {
        let mut b = Follower::new("b", LEASE, Duration::ZERO, at(0));
        b.on_claim(&claim("a", 1), at(0));
        let Some(Step::Claim(mine)) = b.on_tick(at(1500)) else { panic!() };
        assert_eq!(b.on_claim(&claim("c", 2), at(1510)), None, "c's claim of term 2 came first: b follows c");
        assert_eq!(b.on_claim(&mine, at(1520)), None, "ours came after: no take-over");
        assert_eq!(b.holder(), Some("c"));
        assert_eq!(b.on_claim(&claim("c", 2), at(1900)), None);
        assert_eq!(b.next_deadline(), at(3400), "c's renewal counts");
        // c, which claimed first, holds term 2 and is not deposed by b's later claim of it.
        let mut c = Holder::new("c", 2, LEASE, at(1510));
        assert!(!c.on_claim(&mine, at(1520)));
        assert!(c.on_claim(&claim("b", 3), at(1600)), "a higher term deposes");
    }

    #[test]
    fn no_claim_while_a_panel_outside_the_pair_acts() {
        let mut f = Follower::new("b", LEASE, Duration::ZERO, at(0));
        f.set_outsider(Some("x".into()));
        assert_eq!(f.on_tick(at(1500)), None, "x would act beside us");
        assert_eq!(f.next_deadline(), at(3000), "asked again a lease later");
        f.set_outsider(None);
        assert!(matches!(f.on_tick(at(3000)), Some(Step::Claim(_))));
    }

    #[test]
    fn a_stale_lower_claim_changes_nothing() {
        let mut f = Follower::new("b", LEASE, Duration::ZERO, at(0));
        f.on_claim(&claim("a", 7), at(100));
        assert_eq!(f.on_claim(&claim("b", 3), at(200)), None);
        assert_eq!(f.holder(), Some("a"));
        assert_eq!(f.next_deadline(), at(1600), "the stale claim is no renewal");
    }

    #[test]
    fn a_holder_renews_every_third_of_its_lease_and_acts_only_while_its_renewals_come_back() {
        let mut h = Holder::new("a", 4, LEASE, at(0));
        assert_eq!(h.renewal(at(0)).map(|c| c.term), Some(4));
        assert_eq!(h.renewal(at(100)), None);
        assert!(h.renewal(at(500)).is_some());
        assert!(!h.on_claim(&claim("a", 4), at(510)), "our own renewal");
        assert!(h.may_act(at(2000)));
        assert!(!h.may_act(at(2011)), "paused past the lease: not sure any more");
        assert!(!h.on_claim(&claim("a", 4), at(2100)));
        assert!(h.may_act(at(2100)), "confirmed again");
        assert!(!h.on_claim(&claim("b", 3), at(2150)), "a lower term is stale");
        assert!(h.on_claim(&claim("b", 5), at(2200)), "a higher term deposes");
    }
}
