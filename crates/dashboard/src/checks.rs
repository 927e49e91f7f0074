//! Argon2 login checks on a thread of their own, at the lowest CPU priority, one at a time.
//!
//! Each check of a password login takes a core for tens of milliseconds (Argon2id, ~19 MiB). In
//! `mqtt-home` the dashboard shares its process, and often a two-core machine, with the alarm
//! panel: a storm of wrong logins from many addresses (each one's first tries are checked before
//! its limit applies) ran two checks at a time on tokio's blocking threads, at the panel's own
//! priority, and the siren's p99 tripled (issue 19, `just bench-attack`). Here they run on
//! [`MAX_LOGIN_CHECKS`] thread made for them, at nice 19 (Linux schedules threads, not
//! processes): when the panel has work, it gets the cores; the checks get what is left. One at a
//! time, because Argon2 is built to fill memory bandwidth and caches, which no priority shares out.
//! Priority can be lowered without privileges but not raised again, which is why these threads
//! are not the runtime's shared blocking threads.

use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore, oneshot};

/// Argon2 checks at once: one, so that a core is always left to the panel and only one check's
/// ~19 MiB is in use (two at once cost the siren's p99 under a login storm: `just bench-attack`).
pub const MAX_LOGIN_CHECKS: usize = 1;
/// How long a login waits for its turn before it is answered 503.
pub const QUEUE_WAIT: Duration = Duration::from_secs(10);
/// The least time between the starts of two checks: at most 10 a second for the whole dashboard,
/// whatever the number of addresses a storm comes from (each address has its own, smaller limit
/// in `auth`). A check of the default cost takes ~25 ms: a storm costs the machine a quarter of a
/// core, at the lowest priority, and the logins beyond are answered 503 at once.
pub const SPACING: Duration = Duration::from_millis(100);
/// The nice value of the checking threads (19: the lowest priority).
const NICE: i32 = 19;

type Job = Box<dyn FnOnce() + Send>;

/// Why a check did not run.
#[derive(Debug, thiserror::Error)]
pub enum CheckError {
    #[error("too many logins at once; try again in a few seconds")]
    Busy,
    #[error("the login checker stopped")]
    Stopped,
}

/// The checking threads; they end when this is dropped.
pub struct LoginChecks {
    jobs: Mutex<mpsc::Sender<Job>>,
    turns: Arc<Semaphore>,
    /// When the next check may start.
    next: Mutex<tokio::time::Instant>,
}

impl LoginChecks {
    pub fn start() -> LoginChecks {
        let (jobs, queue) = mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for n in 0..MAX_LOGIN_CHECKS {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new().name(format!("login-check-{n}")).spawn(move || {
                device_runtime::process::lower_this_thread(NICE);
                loop {
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    match job {
                        Ok(job) => job(),
                        Err(_) => return,
                    }
                }
            });
            if let Err(e) = spawned {
                tracing::warn!("cannot start a login-check thread: {e}; logins are checked on fewer");
            }
        }
        LoginChecks {
            jobs: Mutex::new(jobs),
            turns: Arc::new(Semaphore::new(MAX_LOGIN_CHECKS)),
            next: Mutex::new(tokio::time::Instant::now()),
        }
    }

    /// Runs `check` on a checking thread once a turn is free (waiting at most [`QUEUE_WAIT`]).
    pub async fn run<T: Send + 'static>(&self, check: impl FnOnce() -> T + Send + 'static) -> Result<T, CheckError> {
        let now = tokio::time::Instant::now();
        let start = {
            let mut next = self.next.lock().unwrap_or_else(|e| e.into_inner());
            slot(&mut next, now).ok_or(CheckError::Busy)?
        };
        tokio::time::sleep_until(start).await;
        let turn: OwnedSemaphorePermit = tokio::time::timeout(QUEUE_WAIT, self.turns.clone().acquire_owned())
            .await
            .map_err(|_| CheckError::Busy)?
            .map_err(|_| CheckError::Stopped)?;
        let (tx, rx) = oneshot::channel();
        let job: Job = Box::new(move || {
            let _turn = turn;
            let _ = tx.send(check());
        });
        self.jobs.lock().unwrap_or_else(|e| e.into_inner()).send(job).map_err(|_| CheckError::Stopped)?;
        rx.await.map_err(|_| CheckError::Stopped)
    }
}

/// The start of the next check, [`SPACING`] after the one before, and the one after it; `None`
/// when that is more than [`QUEUE_WAIT`] away (the login is answered 503, nothing is reserved).
fn slot(next: &mut tokio::time::Instant, now: tokio::time::Instant) -> Option<tokio::time::Instant> {
    let start = (*next).max(now);
    if start.duration_since(now) > QUEUE_WAIT {
        return None;
    }
    *next = start + SPACING;
    Some(start)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_start_a_spacing_apart_and_a_full_queue_is_refused() {
        let t0 = tokio::time::Instant::now();
        let mut next = t0;
        let starts: Vec<_> = (0..3).map(|_| slot(&mut next, t0).unwrap().duration_since(t0)).collect();
        assert_eq!(starts, [Duration::ZERO, SPACING, 2 * SPACING]);
        // Later, with nothing waiting: at once.
        let later = t0 + Duration::from_secs(5);
        assert_eq!(slot(&mut next, later), Some(later));
        // A storm: the queue fills up to QUEUE_WAIT ahead, then logins are refused at once.
        let mut next = t0;
        let queued = (0..1000).take_while(|_| slot(&mut next, t0).is_some()).count();
        assert_eq!(queued as u32, QUEUE_WAIT.as_millis() as u32 / SPACING.as_millis() as u32 + 1);
        assert_eq!(slot(&mut next, t0), None);
        assert_eq!(slot(&mut next, t0 + SPACING).map(|s| s.duration_since(t0)), Some(QUEUE_WAIT + SPACING));
    }

    #[tokio::test]
    async fn checks_run_on_their_own_low_priority_threads() {
        let checks = LoginChecks::start();
        let (name, nice) = checks
            .run(|| {
                let name = std::thread::current().name().map(str::to_owned);
                (name, device_runtime::process::this_thread_nice())
            })
            .await
            .unwrap();
        assert!(name.is_some_and(|n| n.starts_with("login-check-")));
        assert_eq!(nice, NICE);
        // The test's own thread is left as it was.
        assert_ne!(device_runtime::process::this_thread_nice(), NICE);
    }

    #[tokio::test]
    async fn more_checks_than_threads_take_turns() {
        let checks = Arc::new(LoginChecks::start());
        let running = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let most = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let tasks: Vec<_> = (0..8)
            .map(|_| {
                let (checks, running, most) = (checks.clone(), running.clone(), most.clone());
                tokio::spawn(async move {
                    checks
                        .run(move || {
                            let now = running.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                            most.fetch_max(now, std::sync::atomic::Ordering::SeqCst);
                            std::thread::sleep(Duration::from_millis(20));
                            running.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                        })
                        .await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().unwrap();
        }
        assert_eq!(most.load(std::sync::atomic::Ordering::SeqCst), MAX_LOGIN_CHECKS);
    }
}
