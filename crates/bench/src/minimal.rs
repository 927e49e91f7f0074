//! The least a controller can do: on a door OPEN, command the siren ON. Its own connection,
//! QoS 1, TCP_NODELAY; the same four hops as the panel (sensor → broker → it → broker → watcher).

use anyhow::Context;
use protocol::{AlarmCommand, Payload, Power, SensorReading, SensorState};
use rumqttc::{AsyncClient, Event, EventLoop, Packet, QoS};
use tokio::task::JoinHandle;

use crate::mqtt::{self, Names, WITHIN};

/// Connects, subscribes to the minimal door topic, and answers every OPEN until aborted.
pub async fn start(port: u16, names: &Names) -> anyhow::Result<JoinHandle<()>> {
    let (client, mut eventloop) = mqtt::client(port, "bench-minimal");
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
            let on = AlarmCommand { state: Power::On, reason: Some("intrusion".into()) };
            let _ = client.try_publish(&siren, QoS::AtLeastOnce, false, on.encode());
        }
    }
}
