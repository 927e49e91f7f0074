//! Daemons run by tests: as tasks with their own shutdown, on either broker, or as processes.

use std::future::Future;
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use device_runtime::Shutdown;
use tokio::task::JoinHandle;

/// Long enough for a slow CI machine, short enough to fail fast.
pub const WITHIN: Duration = Duration::from_secs(10);

/// A daemon running as a task, stopped by its own shutdown signal.
pub struct Running {
    pub shutdown: Shutdown,
    handle: JoinHandle<anyhow::Result<()>>,
}

impl Running {
    pub fn spawn<Fut>(run: impl FnOnce(Shutdown) -> Fut) -> Running
    where
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let shutdown = Shutdown::new();
        let handle = tokio::spawn(run(shutdown.clone()));
        Running { shutdown, handle }
    }

    /// Clean stop: the daemon publishes `offline` and disconnects; it must stop within [`WITHIN`]
    /// and without an error.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let outcome = tokio::time::timeout(WITHIN, self.handle).await.expect("daemon did not stop in time");
        outcome.expect("daemon task panicked").expect("daemon returned an error");
    }

    /// Hard stop: the task is dropped mid-flight (its own tasks, such as the MQTT link, run on).
    pub fn kill(self) {
        self.handle.abort();
    }
}

/// Runs `test` against a fresh embedded broker.
pub async fn on_embedded<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let broker = crate::embedded();
    test(broker.url()).await;
}

/// Runs `test` against a Mosquitto started for it (skipped loudly when Mosquitto is missing outside CI).
pub async fn on_mosquitto<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(mosquitto) = crate::mosquitto_or_skip() else { return };
    test(mosquitto.url()).await;
}

/// Declares `<name>::embedded` and `<name>::mosquitto`, running `body(url)` against each broker.
#[macro_export]
macro_rules! on_both_brokers {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                $crate::on_embedded($body).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mosquitto() {
                $crate::on_mosquitto($body).await;
            }
        }
    };
}

/// A daemon's process that a test started: killed when dropped, so that a failing test (a
/// panic before its own stop) leaves no daemon behind retrying a broker that is gone. Used as
/// the `Child` it holds.
pub struct Spawned(pub Child);

impl std::ops::Deref for Spawned {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Spawned {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Spawned {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Stops a process as `docker stop` does: SIGTERM, then SIGKILL if it has not exited within
/// `grace`. Whether it exited by itself in time.
pub fn terminate(child: &mut Child, grace: Duration) -> bool {
    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    false
}
