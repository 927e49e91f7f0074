//! The web server's accept loop: the router on hyper, with the limits a server that shares a
//! process with the alarm panel must keep (issue 19: 20 800 idle connections took `mqtt-home`'s
//! every file handle, the panel could not save its state, the alarm's messages were 62 s late).
//!
//! - At most `max_connections` at once, and `max_connections_per_client` from one address; a
//!   connection over either is closed as soon as it is accepted, so it never holds a handle.
//! - At `max_connections`, a new connection first makes room by closing the oldest one that has
//!   not yet sent a whole request: connections that say nothing cannot keep a visitor out, even
//!   from many addresses. Only when every open connection has been served (a page, its event
//!   stream) is the new one refused.
//! - A request's head must arrive within `header_read_timeout_s`, counted from when the server
//!   waits for it: a client that connects and sends nothing, or sends a byte now and then (slow
//!   loris), or leaves a kept-alive connection idle, is dropped then. A live event stream is not a
//!   request being read and is not cut.
//! - It runs on a thread of its own, with its own single-threaded runtime, at a lower CPU priority
//!   ([`WEB_NICE`]): a flood of connections costs the web thread's time, not the panel's, which in
//!   `mqtt-home` shares the process (issue 19, `just bench-attack`).
//! - When accepting fails (the process is out of handles), the loop waits a moment rather than
//!   spinning, and says so once.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use device_runtime::Shutdown;
use device_runtime::metrics::{Gauge, Metric};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::{Notify, Semaphore};
use tower::{Layer, ServiceExt};

/// What the server allows; see the module's header.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub per_client: usize,
    pub header_read: Duration,
}

/// Connections open per client address.
#[derive(Default)]
struct PerClient(Mutex<HashMap<IpAddr, usize>>);

impl PerClient {
    /// Counts one more from `ip`, unless it already has `max`.
    fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(ip).or_default();
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot { clients: self.clone(), ip })
    }
}

/// One connection of a client, given back when it closes.
struct ClientSlot {
    clients: Arc<PerClient>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.clients.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// One open connection, as the accept loop sees it.
#[derive(Default)]
struct Connection {
    /// A whole request head has arrived on it (it is a client, not a socket held open).
    served: AtomicBool,
    /// Told to close, to make room for a new one.
    evict: Notify,
}

/// The open connections, oldest first: at most `max` alive, and the ones that have closed since
/// the list was last swept.
struct Open {
    list: Mutex<VecDeque<std::sync::Weak<Connection>>>,
    max: usize,
}

impl Open {
    fn new(max: usize) -> Open {
        Open { list: Mutex::new(VecDeque::new()), max }
    }

    fn add(&self) -> Arc<Connection> {
        let connection = Arc::new(Connection::default());
        let mut open = self.list.lock().unwrap_or_else(|e| e.into_inner());
        // Closed connections leave their entry behind: swept whenever they could outnumber the
        // live ones, so the list stays within twice the cap however long the server runs.
        if open.len() >= 2 * self.max {
            open.retain(|c| c.strong_count() > 0);
        }
        open.push_back(Arc::downgrade(&connection));
        connection
    }

    /// Tells the oldest connection that has sent no whole request to close; whether there was one.
    fn evict_oldest_silent(&self) -> bool {
        let mut open = self.list.lock().unwrap_or_else(|e| e.into_inner());
        open.retain(|c| c.strong_count() > 0);
        let silent = open.iter().position(|c| c.upgrade().is_some_and(|c| !c.served.load(Ordering::Relaxed)));
        match silent.and_then(|i| open.remove(i)).and_then(|c| c.upgrade()) {
            Some(connection) => {
                connection.evict.notify_one();
                true
            }
            None => false,
        }
    }
}

/// A connection slot: one at once free, or one made free by closing a silent connection.
async fn make_room(connections: &Arc<Semaphore>, open: &Open) -> Option<tokio::sync::OwnedSemaphorePermit> {
    if let Ok(permit) = connections.clone().try_acquire_owned() {
        return Some(permit);
    }
    if !open.evict_oldest_silent() {
        return None;
    }
    // The evicted connection's task gives its permit back as it ends: at once, unless the
    // runtime is very busy.
    tokio::time::timeout(Duration::from_millis(200), connections.clone().acquire_owned()).await.ok()?.ok()
}

/// Closes with a reset rather than the FIN handshake: a connection refused or evicted under a
/// flood costs one packet, and leaves no TIME_WAIT entry behind (thousands a second otherwise).
fn reset(stream: &tokio::net::TcpStream) {
    reset_fd(raw(stream));
}

#[cfg(unix)]
type Fd = std::os::fd::RawFd;
#[cfg(not(unix))]
type Fd = ();

#[cfg(unix)]
fn raw(stream: &tokio::net::TcpStream) -> Fd {
    std::os::fd::AsRawFd::as_raw_fd(stream)
}

#[cfg(not(unix))]
fn raw(_stream: &tokio::net::TcpStream) -> Fd {}

/// SO_LINGER 0 on `fd`, a socket still open (its connection is dropped right after).
#[cfg(unix)]
#[allow(unsafe_code)]
fn reset_fd(fd: Fd) {
    let linger = libc::linger { l_onoff: 1, l_linger: 0 };
    // SAFETY: `fd` is a socket this process holds open until after this call; setsockopt reads
    // `linger`, which lives through the call.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

#[cfg(not(unix))]
fn reset_fd(_fd: Fd) {}

/// The web thread's nice value: under load, the daemons of the process come first.
pub const WEB_NICE: i32 = 19;

/// Serves `router` on `listener` on the web thread (see the module's header) until `shutdown`;
/// the receiver says when it has stopped.
pub fn spawn(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    connections: Gauge,
    shutdown: Shutdown,
) -> anyhow::Result<tokio::sync::oneshot::Receiver<()>> {
    use anyhow::Context;
    let listener = listener.into_std().context("cannot hand the dashboard's socket to its thread")?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .thread_name("dashboard-web")
        .build()
        .context("cannot build the dashboard's runtime")?;
    let (stopped, done) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("dashboard-web".into())
        .spawn(move || {
            device_runtime::process::lower_this_thread(WEB_NICE);
            runtime.block_on(async move {
                match TcpListener::from_std(listener) {
                    Ok(listener) => serve(listener, router, limits, connections, shutdown).await,
                    Err(e) => tracing::error!("the dashboard cannot serve its socket: {e}"),
                }
            });
            // Whatever a handler left on the runtime's blocking threads is not waited for.
            runtime.shutdown_timeout(std::time::Duration::from_millis(500));
            let _ = stopped.send(());
        })
        .context("cannot start the dashboard's web thread")?;
    Ok(done)
}

/// Open connections, for the metrics endpoint.
pub const CONNECTIONS: Metric = Metric::gauge("mqtt_home_dashboard_connections", "Connections open to the dashboard");

/// Serves `router` on `listener` until `shutdown`, then lets the open requests finish;
/// `connections` follows how many are open.
pub async fn serve(listener: TcpListener, router: Router, limits: Limits, connections_open: Gauge, shutdown: Shutdown) {
    let connections = Arc::new(Semaphore::new(limits.max_connections));
    let clients = Arc::new(PerClient::default());
    let tracked = Open::new(limits.max_connections);
    let mut refused_since_said = 0u64;
    let mut accept_failing = false;
    let mut open = tokio::task::JoinSet::new();
    loop {
        connections_open.set(open.len() as i64);
        let accepted = tokio::select! {
            () = shutdown.wait() => break,
            accepted = listener.accept() => accepted,
            Some(_) = open.join_next(), if !open.is_empty() => continue,
        };
        let (stream, client) = match accepted {
            Ok(accepted) => {
                accept_failing = false;
                accepted
            }
            Err(e) => {
                if !accept_failing {
                    tracing::warn!("cannot accept a connection: {e}; trying again in 100 ms");
                    accept_failing = true;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let slot = clients.enter(client.ip(), limits.per_client);
        let permit = match slot {
            Some(_) => make_room(&connections, &tracked).await,
            None => None,
        };
        let (Some(permit), Some(slot)) = (permit, slot) else {
            reset(&stream);
            drop(stream);
            refused_since_said += 1;
            if refused_since_said == 1 || refused_since_said.is_power_of_two() {
                tracing::warn!(
                    "refused {refused_since_said} connections so far (at most {} at once, {} from one address; {client} \
                     asked)",
                    limits.max_connections,
                    limits.per_client
                );
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let this = tracked.add();
        let fd = raw(&stream);
        let service = axum::Extension(ConnectInfo(client)).layer(router.clone());
        let on_request = this.clone();
        let service = hyper::service::service_fn(move |request| {
            on_request.served.store(true, Ordering::Relaxed);
            service.clone().oneshot(request)
        });
        let shutdown = shutdown.clone();
        open.spawn(async move {
            let _held = (permit, slot);
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read)
                .serve_connection(TokioIo::new(stream), service);
            tokio::pin!(connection);
            tokio::select! {
                _ = connection.as_mut() => {}
                () = this.evict.notified() => reset_fd(fd),
                () = shutdown.wait() => {
                    connection.as_mut().graceful_shutdown();
                    let _ = connection.await;
                }
            }
        });
    }
    while open.join_next().await.is_some() {}
    connections_open.set(0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closed_connections_do_not_pile_up_in_the_list() {
        let open = Open::new(4);
        let held: Vec<_> = (0..4).map(|_| open.add()).collect();
        for _ in 0..10_000 {
            drop(open.add());
        }
        let len = open.list.lock().unwrap().len();
        assert!(len <= 8, "{len} entries for 4 open connections");
        // The live ones are still there, oldest first, and the oldest silent one is evicted.
        assert!(open.evict_oldest_silent());
        let left: Vec<_> = open.list.lock().unwrap().iter().filter_map(std::sync::Weak::upgrade).collect();
        assert_eq!(left.len(), 3);
        assert!(left.iter().zip(&held[1..]).all(|(a, b)| Arc::ptr_eq(a, b)), "the oldest was not the one evicted");
    }
}
