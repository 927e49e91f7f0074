//! What the home's integration tests share: daemon configs pointed at a test broker, and a way to
//! run the same test against the embedded broker and against Mosquitto.

#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use device_runtime::{MqttConfig, Shutdown};
use protocol::{LightSource, LightState, Payload, Power};
use tokio::task::JoinHandle;

/// Long enough for a slow CI machine, short enough to fail fast.
pub const WITHIN: Duration = Duration::from_secs(10);

/// Runs `test` against the embedded broker.
pub async fn on_embedded<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let broker = testkit::embedded();
    test(broker.url()).await;
}

/// Runs `test` against a Mosquitto started for it (skipped loudly when Mosquitto is missing outside CI).
pub async fn on_mosquitto<F, Fut>(test: F)
where
    F: FnOnce(String) -> Fut,
    Fut: Future<Output = ()>,
{
    let Some(mosquitto) = testkit::mosquitto_or_skip() else { return };
    test(mosquitto.url()).await;
}

/// Declares `<name>_embedded` and `<name>_mosquitto`, running `body(url)` against each broker.
#[macro_export]
macro_rules! on_both_brokers {
    ($name:ident, $body:path) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn embedded() {
                $crate::common::on_embedded($body).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn mosquitto() {
                $crate::common::on_mosquitto($body).await;
            }
        }
    };
}

pub fn mqtt(url: &str, id: &str) -> MqttConfig {
    MqttConfig { broker: url.to_owned(), ..MqttConfig::with_id(id) }
}

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

    /// Clean stop: the daemon publishes `offline` and disconnects.
    pub async fn stop(self) {
        self.shutdown.trigger();
        let outcome = tokio::time::timeout(WITHIN, self.handle).await.expect("daemon did not stop in time");
        outcome.expect("daemon task panicked").expect("daemon returned an error");
    }

    /// Hard stop: the task is dropped mid-flight, the socket closes without DISCONNECT (like a crash).
    pub fn kill(self) {
        self.handle.abort();
    }
}

pub fn bulb(url: &str, id: &str) -> Running {
    let config = light_bulb::Config { mqtt: mqtt(url, id), ..light_bulb::Config::default() };
    Running::spawn(|s| light_bulb::run(config, s))
}

/// A light controller with the kitchen and hall rooms and a 1 s motion timeout.
pub fn controller(url: &str) -> Running {
    let config = light_controller::Config {
        mqtt: mqtt(url, "light-controller"),
        motion_timeout_s: 1,
        ..light_controller::Config::default()
    };
    Running::spawn(|s| light_controller::run(config, s))
}

/// Matches a light state with this brightness and source.
pub fn light(brightness: u8, source: LightSource) -> impl Fn(&[u8]) -> bool {
    move |payload| {
        LightState::decode(payload).is_ok_and(|s| {
            s.brightness == brightness && s.source == source && (s.state == Power::On) == (brightness > 0)
        })
    }
}

pub fn text(expected: &'static str) -> impl Fn(&[u8]) -> bool {
    move |payload| payload == expected.as_bytes()
}
