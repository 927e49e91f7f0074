//! The MQTT edge of the panel: messages in, [`Panel::step`], actions out.

use device_runtime::{DeviceSpec, Inbound, Link, Publisher, Shutdown};
use protocol::{
    AlarmCommand, Availability, DeviceKind, PanelCommand, Payload, Power, Qos, SensorKind, SensorReading, Timestamp,
    Topic, Topics,
};

use crate::Config;
use crate::panel::{Action, Arm, Input, Panel};
use crate::state_file;

/// Runs the panel until `shutdown`.
pub async fn run(config: Config, shutdown: Shutdown) -> anyhow::Result<()> {
    let now = Timestamp::now();
    let mut panel = match state_file::load(&config.state_file)? {
        Some(saved) => {
            let status = saved.status(&config.panel, now, &config.mqtt.id);
            tracing::info!("resumed from {}: {}", config.state_file.display(), status.state);
            saved.resumed(now)
        }
        None => {
            tracing::info!("no state file at {}: starting disarmed", config.state_file.display());
            Panel::new()
        }
    };
    // Fail now, not at the first arming, if the state cannot be written.
    state_file::save(&config.state_file, &panel)?;
    if config.panel.users.is_empty() {
        tracing::warn!("no users in [panel.users]: nobody can disarm; add one with `security-controller hash-pin`");
    }

    let topics = Topics::new(&config.mqtt.topic_root);
    let mut spec = DeviceSpec::new(DeviceKind::SecurityController);
    spec.capabilities =
        ["arm_away", "arm_home", "arm_night", "disarm", "trigger", "duress", "supervision"].map(String::from).to_vec();
    let mut subscriptions: Vec<String> = SensorKind::ALL.iter().map(|k| topics.all_sensors(*k)).collect();
    subscriptions.push(topics.all_availability());
    subscriptions.push(topics.name(&Topic::PanelSet));
    spec.subscriptions = subscriptions.into_iter().map(|s| (s, Qos::AtLeastOnce)).collect();
    spec.command_topics = vec![topics.name(&Topic::PanelSet)];
    spec.state_topics = vec![topics.name(&Topic::PanelStatus), topics.name(&Topic::PanelEvents)];
    let mut link = Link::start(&config.mqtt, spec, shutdown.clone())?;
    let publisher = link.publisher.clone();

    loop {
        let wake = panel.next_deadline(&config.panel).map(|t| tokio::time::Instant::now() + t.since(Timestamp::now()));
        let input = tokio::select! {
            () = shutdown.wait() => break,
            () = sleep_until(wake) => Some(Input::Tick),
            inbound = link.inbox.recv() => match inbound {
                None => break,
                Some(Inbound::Connected { .. }) => {
                    // Retained status on every connect, and the siren again if the alarm is on
                    // (the controller may have restarted mid-alarm).
                    let status = panel.status(&config.panel, Timestamp::now(), &config.mqtt.id);
                    send(&publisher, &Topic::PanelStatus, &status).await;
                    if let Arm::Triggered { sensor, .. } = &panel.arm {
                        let command = AlarmCommand { state: Power::On, reason: Some(format!("alarm triggered by {sensor}")) };
                        send(&publisher, &Topic::AlarmControl, &command).await;
                    }
                    None
                }
                Some(Inbound::Message { topic, payload }) => to_input(&topics, &topic, &payload),
            },
        };
        let Some(input) = input else { continue };
        let actions;
        (panel, actions) = panel.step(&config.panel, input, Timestamp::now(), &config.mqtt.id);
        for action in actions {
            match action {
                // Persist comes first among the actions: nothing is announced that a crash could undo.
                Action::Persist => {
                    // fsync takes milliseconds on a disk: off the runtime's thread, so the MQTT
                    // link keeps reading and acknowledging meanwhile.
                    let (path, snapshot) = (config.state_file.clone(), panel.clone());
                    match tokio::task::spawn_blocking(move || state_file::save(&path, &snapshot)).await {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => tracing::error!("{e:#}"),
                        Err(e) => tracing::error!("saving the panel state failed: {e}"),
                    }
                }
                Action::Event(event) => {
                    tracing::info!("{}: {}", event.event.as_str(), event.message);
                    send(&publisher, &Topic::PanelEvents, &event).await;
                }
                Action::PublishStatus(status) => send(&publisher, &Topic::PanelStatus, &status).await,
                Action::Siren { on, reason } => {
                    tracing::info!("siren {}: {reason}", if on { "ON" } else { "OFF" });
                    let command = AlarmCommand { state: if on { Power::On } else { Power::Off }, reason: Some(reason) };
                    send(&publisher, &Topic::AlarmControl, &command).await;
                }
            }
        }
    }
    link.finish().await;
    Ok(())
}

async fn send<P: Payload>(publisher: &Publisher, topic: &Topic, payload: &P) {
    if let Err(e) = publisher.send(topic, payload).await {
        tracing::error!("{e}");
    }
}

async fn sleep_until(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// Reads one message as an input; anything unusable is logged once (never with a code) and ignored.
fn to_input(topics: &Topics, topic: &str, payload: &[u8]) -> Option<Input> {
    let parsed = match topics.parse(topic) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!("ignored a message: {e}");
            return None;
        }
    };
    match parsed {
        Topic::Sensor { kind, id } => match SensorReading::decode_for(kind, payload) {
            Ok(reading) => Some(Input::Sensor { kind, id, state: reading.state }),
            Err(e) => {
                tracing::warn!("ignored a message on {topic}: {e}; see docs/protocol.md");
                None
            }
        },
        Topic::Availability(id) => match Availability::decode(payload) {
            Ok(a) => Some(Input::Availability { id, online: a == Availability::Online }),
            Err(e) => {
                tracing::warn!("ignored a message on {topic}: {e}");
                None
            }
        },
        Topic::PanelSet => match PanelCommand::decode(payload) {
            Ok(command) => {
                let code = if command.code.is_some() { "with a code" } else { "without a code" };
                tracing::info!(
                    "command {} {code}{}",
                    command.action.as_str(),
                    if command.force { ", forced" } else { "" }
                );
                Some(Input::Command(command))
            }
            // Decode errors of panel commands never quote the payload: it may hold a PIN.
            Err(e) => {
                tracing::warn!(
                    "ignored a message on {topic}: {e}; send {{\"action\":\"DISARM\",\"code\":\"…\"}} or a bare ARM_AWAY"
                );
                None
            }
        },
        _ => None,
    }
}
