//! The least a controller can do: on a door OPEN, command the siren ON. Its own connection,
//! QoS 1, TCP_NODELAY; the same four hops as the panel (sensor → broker → it → broker → watcher).
//!
//! Two ways: a task in the bench's own process ([`start`]), whose runtime is already awake with
//! the watcher's and the sensor's; and a process of its own ([`Process`]: the bench binary run
//! again with `--minimal-controller`, on a current-thread runtime as the panel's), which like the
//! panel must be woken by the kernel when its reading arrives. The panel is held to the second.

use std::process::{ExitCode, Stdio};

use anyhow::Context;
use protocol::{AlarmCommand, Payload, Power, SensorReading, SensorState};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::task::JoinHandle;

use crate::mqtt::{self, Names, WITHIN};

/// Connects, subscribes to the minimal door topic, and answers every OPEN until aborted.
pub async fn start(port: u16, names: &Names) -> anyhow::Result<JoinHandle<()>> {
    start_as(port, names, "bench-minimal").await
}

async fn start_as(port: u16, names: &Names, client_id: &str) -> anyhow::Result<JoinHandle<()>> {
    let (client, mut eventloop) = mqtt::client(port, client_id);
    client.subscribe(&names.minimal_door, QoS::AtLeastOnce).await?;
    let subscribed = async { while !matches!(eventloop.poll().await, Ok(Event::Incoming(Packet::SubAck(_)))) {} };
    tokio::time::timeout(WITHIN, subscribed).await.context("the minimal controller got no SubAck")?;
    Ok(tokio::spawn(answer(client, eventloop, names.minimal_siren.clone())))
}

async fn answer(client: AsyncClient, mut eventloop: EventLoop, siren: String) {
    loop {
        let Ok(Event::Incoming(Packet::Publish(p))) = eventloop.poll().await else { continue };
        let opened = SensorReading::decode(&p.payload).is_ok_and(|r| r.state == SensorState::Open);
        if opened {
            let on = AlarmCommand::siren(Power::On, Some("intrusion".into()));
            let _ = client.try_publish(&siren, QoS::AtLeastOnce, false, on.encode());
        }
    }
}

/// How a minimal controller's process answers: on a tokio runtime with rumqttc, as every daemon
/// of the home does, or with one thread blocking in `read` ([`crate::blocking`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Runtime,
    Blocking,
}

impl Kind {
    /// The flag that makes the bench binary this controller: `FLAG PORT DOOR SIREN`.
    fn flag(self) -> &'static str {
        match self {
            Kind::Runtime => "--minimal-controller",
            Kind::Blocking => "--blocking-controller",
        }
    }
}

/// When the bench binary was started as a minimal controller: runs it (until killed) and
/// returns its exit code; `None` otherwise, for the bench to go on.
pub fn serve_if_asked() -> Option<ExitCode> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [flag, port, door, siren] = args.as_slice() else { return None };
    let kind = [Kind::Runtime, Kind::Blocking].into_iter().find(|k| k.flag() == flag)?;
    let port: u16 = port.parse().ok()?;
    // The bench holds this process's stdin: when the bench is gone, so is this process.
    std::thread::spawn(|| {
        let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
        std::process::exit(0);
    });
    if kind == Kind::Blocking {
        let Err(e) = crate::blocking::serve(port, door, siren);
        eprintln!("blocking-controller: {e:#}");
        return Some(ExitCode::FAILURE);
    }
    let names = Names { minimal_door: door.clone(), minimal_siren: siren.clone(), ..Names::new() };
    Some(device_runtime::daemon::block_on("minimal-controller", 1, async move {
        // One client id per door: two of these processes run at once (with and without a siren).
        let id = format!("bench-minimal-process-{}", door.replace('/', "-"));
        let answering = start_as(port, &names, &id).await?;
        // The parent reads this line: subscribed, ready for its first door.
        println!("ready");
        answering.await.context("the minimal controller stopped")
    }))
}

/// The minimal controller in a process of its own; killed when dropped (and gone when the bench
/// is: it exits when its stdin closes).
pub struct Process {
    /// Held for its `kill_on_drop`, and its stdin with it.
    _child: tokio::process::Child,
}

impl Process {
    pub async fn spawn(kind: Kind, port: u16, door: &str, siren: &str) -> anyhow::Result<Process> {
        let exe = std::env::current_exe().context("cannot find the bench binary")?;
        let mut child = tokio::process::Command::new(exe)
            .args([kind.flag(), &port.to_string(), door, siren])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .context("cannot start the minimal controller's process")?;
        let stdout = child.stdout.take().context("no stdout")?;
        let mut line = String::new();
        let mut stdout = BufReader::new(stdout);
        let ready = stdout.read_line(&mut line);
        tokio::time::timeout(WITHIN, ready).await.context("the minimal controller's process never said ready")??;
        anyhow::ensure!(line.trim() == "ready", "the minimal controller's process said {line:?}");
        Ok(Process { _child: child })
    }
}
