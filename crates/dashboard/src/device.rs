//! The dashboard as a [`Device`] on the shared runner: it subscribes to the home's retained state
//! and the panel's events, keeps the [`Home`] model (shared with the web server behind a mutex,
//! held only for a step), and tells every open page what changed.
//!
//! The web server never touches MQTT. A keypad press or a slider becomes a [`Command`] on a
//! bounded channel that [`Device::wake`] reads, and the runner publishes it in order with
//! everything else: one MQTT connection, one place that publishes.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use device_runtime::{Act, Device, DeviceSpec};
use protocol::{DeviceKind, LightCommand, Message, PanelCommand, Qos, Timestamp, Topic, Topics, Unreadable};
use tokio::sync::{broadcast, mpsc};

use crate::home::{Change, Home, Snapshot};

/// How many changes an open page may fall behind before it is sent the whole home again.
const CHANGES_BUFFER: usize = 1024;
/// How many commands may wait for the device; more are refused (503), not queued without end.
pub const COMMANDS_BUFFER: usize = 64;
/// Topics whose unreadable messages are each warned about once, at most.
const WARNED_TOPICS: usize = 1000;

/// What a page asked to be published.
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// To `area`, or (none) to the whole house. Its `Debug` never shows the code.
    Panel {
        area: Option<String>,
        command: PanelCommand,
    },
    Light {
        id: String,
        command: LightCommand,
    },
}

/// What the device and the web server share.
#[derive(Debug)]
pub struct Shared {
    home: Mutex<Home>,
    changes: broadcast::Sender<Change>,
    connected: AtomicBool,
}

impl Shared {
    pub fn new(max_events: usize) -> Arc<Shared> {
        let (changes, _) = broadcast::channel(CHANGES_BUFFER);
        Arc::new(Shared { home: Mutex::new(Home::new(max_events)), changes, connected: AtomicBool::new(false) })
    }

    /// The whole home and a receiver of every change after it, taken together so that no change
    /// falls between them and none is sent twice.
    pub fn subscribe(&self) -> (Snapshot, broadcast::Receiver<Change>) {
        let home = self.home.lock().unwrap_or_else(|e| e.into_inner());
        (home.snapshot(Timestamp::now()), self.changes.subscribe())
    }

    pub fn snapshot(&self) -> Snapshot {
        self.home.lock().unwrap_or_else(|e| e.into_inner()).snapshot(Timestamp::now())
    }

    /// Whether the device has reached the broker at least once.
    pub fn connected(&self) -> bool {
        self.connected.load(Ordering::Relaxed)
    }
}

/// The dashboard's MQTT side.
pub struct DashboardDevice {
    topics: Topics,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    capabilities: Vec<String>,
    warned: HashSet<String>,
}

impl DashboardDevice {
    pub fn new(
        topics: Topics,
        shared: Arc<Shared>,
        commands: mpsc::Receiver<Command>,
        capabilities: Vec<String>,
    ) -> DashboardDevice {
        DashboardDevice { topics, shared, commands, capabilities, warned: HashSet::new() }
    }

    fn publish(command: Command) -> Vec<Act<()>> {
        match command {
            Command::Panel { area, command } => {
                let to = area.as_deref().map(|a| format!(" to {a}")).unwrap_or_default();
                let note = format!("panel command {}{to} from the dashboard", command.action.as_str());
                vec![Act::publish(area.map_or(Topic::PanelSet, Topic::AreaSet), &command), Act::Note(note)]
            }
            Command::Light { id, command } => vec![
                Act::publish(Topic::LightSet(id.clone()), &command),
                Act::Note(format!("light {id}: {command:?} from the dashboard")),
            ],
        }
    }
}

impl Device for DashboardDevice {
    type Job = ();

    fn spec(&self) -> DeviceSpec {
        let filters = self.topics.state_and_events();
        let mut spec = DeviceSpec::new(DeviceKind::Dashboard);
        spec.capabilities = self.capabilities.clone();
        spec.subscriptions = filters.into_iter().map(|f| (f, Qos::AtLeastOnce)).collect();
        // A page shows the present: a restarted dashboard relearns it from the retained state,
        // and events it missed while down are in the recorder's history, not in a session queue.
        spec.persistent_session = false;
        spec
    }

    fn on_connected(&mut self, _now: Timestamp) -> Vec<Act<()>> {
        self.shared.connected.store(true, Ordering::Relaxed);
        Vec::new()
    }

    fn on_disconnected(&mut self, _now: Timestamp) -> Vec<Act<()>> {
        self.shared.connected.store(false, Ordering::Relaxed);
        Vec::new()
    }

    fn on_message(&mut self, message: Result<Message, Unreadable>, now: Timestamp) -> Vec<Act<()>> {
        let mut home = self.shared.home.lock().unwrap_or_else(|e| e.into_inner());
        if let Err(e) = &message
            && self.warned.len() < WARNED_TOPICS
            && self.warned.insert(e.topic.clone())
        {
            tracing::warn!("cannot show a message on {}: {}", e.topic, e.why);
        }
        for change in home.apply(message, now) {
            // No page open is no error.
            let _ = self.shared.changes.send(change);
        }
        Vec::new()
    }

    async fn wake(&mut self) -> Vec<Act<()>> {
        match self.commands.recv().await {
            Some(command) => DashboardDevice::publish(command),
            // The web server is gone (shutting down): nothing more will come.
            None => std::future::pending().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use protocol::{PanelAction, Payload};

    #[test]
    fn a_panel_command_is_published_and_its_code_never_noted() {
        let command = PanelCommand { action: PanelAction::Disarm, code: Some("8642".into()), force: false };
        let acts = DashboardDevice::publish(Command::Panel { area: None, command: command.clone() });
        let [Act::Publish(out), Act::Note(note)] = acts.as_slice() else { panic!("{acts:?}") };
        assert_eq!(out.topic, Topic::PanelSet);
        assert_eq!(PanelCommand::decode(&out.payload).unwrap().code.as_deref(), Some("8642"));
        assert!(!note.contains("8642"), "{note}");
        let acts = DashboardDevice::publish(Command::Panel { area: Some("garage".into()), command });
        let [Act::Publish(out), _] = acts.as_slice() else { panic!("{acts:?}") };
        assert_eq!(out.topic, Topic::AreaSet("garage".into()), "one area's command goes to its own topic");
    }

    #[test]
    fn it_subscribes_to_no_command_topic() {
        let (_tx, rx) = mpsc::channel(1);
        let device = DashboardDevice::new(Topics::default(), Shared::new(10), rx, Vec::new());
        for (filter, _) in device.spec().subscriptions {
            assert!(
                !filter.ends_with("/set") && !filter.ends_with('#') && !filter.ends_with("control/alarm"),
                "{filter}"
            );
        }
    }
}
