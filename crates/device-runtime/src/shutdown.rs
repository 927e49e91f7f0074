//! Shutdown as a parameter: a cancellation token that every task selects on.
//!
//! As in tokio's mini-redis, nothing stops by being dropped half-way: `main` (or the `mqtt-home`
//! supervisor, or a test) owns the token, cancels it, and each task notices at its next `select!`,
//! publishes what it must (the link publishes `offline`) and returns.

use tokio_util::sync::CancellationToken;

/// A cloneable shutdown signal.
#[derive(Debug, Clone, Default)]
pub struct Shutdown {
    token: CancellationToken,
}

impl Shutdown {
    pub fn new() -> Shutdown {
        Shutdown::default()
    }

    /// Asks every holder of this signal (and of its children) to stop.
    pub fn trigger(&self) {
        self.token.cancel();
    }

    pub fn is_triggered(&self) -> bool {
        self.token.is_cancelled()
    }

    /// Completes once shutdown has been asked for.
    pub async fn wait(&self) {
        self.token.cancelled().await;
    }

    /// A signal that fires with this one but can also be fired alone (to stop one daemon of many).
    pub fn child(&self) -> Shutdown {
        Shutdown { token: self.token.child_token() }
    }

    /// Fires this signal on Ctrl-C (SIGINT) or SIGTERM (what `docker stop` sends).
    pub fn trigger_on_signals(&self) {
        let this = self.clone();
        tokio::spawn(async move {
            let reason = wait_for_signal().await;
            tracing::info!("{reason}: shutting down");
            this.trigger();
        });
    }
}

#[cfg(unix)]
async fn wait_for_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => tokio::select! {
            _ = tokio::signal::ctrl_c() => "interrupted (SIGINT)",
            _ = term.recv() => "terminated (SIGTERM)",
        },
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops this daemon cleanly");
            let _ = tokio::signal::ctrl_c().await;
            "interrupted (SIGINT)"
        }
    }
}

#[cfg(not(unix))]
async fn wait_for_signal() -> &'static str {
    let _ = tokio::signal::ctrl_c().await;
    "interrupted"
}
