//! The floor under the minimal controller: the same answer (a door OPEN → the siren ON, QoS 1,
//! TCP_NODELAY, its own process) from one thread blocking in `read` on a `std::net::TcpStream`:
//! no async runtime, no epoll, no request queue. Its row in the table tells what a runtime costs a
//! controller on the siren's path — the part that a panel built on tokio (as every daemon of the
//! home is) cannot get under by changing its own code. The packets are rumqttc's own
//! (`mqttbytes`); the siren's command and the door's PUBACK go out in one write, the command
//! first, as the panel's link writes them.

use std::convert::Infallible;
use std::io::{Read, Write};
use std::net::TcpStream;

use anyhow::{Context, bail, ensure};
use bytes::BytesMut;
use protocol::{AlarmCommand, Payload, Power, SensorReading, SensorState};
use rumqttc::mqttbytes::Error as PacketError;
use rumqttc::{Connect, Packet, PubAck, Publish, QoS, Subscribe};

/// The largest packet it accepts: a door reading is a hundred bytes.
const MAX_PACKET: usize = 64 * 1024;

/// Connects to the broker on `port`, subscribes to `door`, prints `ready` once subscribed, and
/// answers every OPEN on `door` with the siren ON on `siren`, until the connection fails: it
/// returns only with that failure.
pub fn serve(port: u16, door: &str, siren: &str) -> anyhow::Result<Infallible> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).context("cannot connect to the broker")?;
    stream.set_nodelay(true)?;
    let mut out = BytesMut::new();
    let mut connect = Connect::new(format!("bench-blocking-{}", door.replace('/', "-")));
    // No keep-alive: nothing here would answer a PINGREQ's timer, and the broker must not drop
    // a client that only listens.
    connect.keep_alive = 0;
    connect.write(&mut out)?;
    let mut subscribe = Subscribe::new(door, QoS::AtLeastOnce);
    subscribe.pkid = 1;
    subscribe.write(&mut out)?;
    stream.write_all(&out)?;

    let on = AlarmCommand::siren(Power::On, Some("intrusion".into())).encode();
    let mut input = BytesMut::with_capacity(8 * 1024);
    let mut chunk = [0u8; 8 * 1024];
    let mut pkid: u16 = 1;
    loop {
        let n = stream.read(&mut chunk).context("cannot read from the broker")?;
        ensure!(n > 0, "the broker closed the connection");
        input.extend_from_slice(&chunk[..n]);
        out.clear();
        loop {
            match Packet::read(&mut input, MAX_PACKET) {
                Ok(Packet::SubAck(_)) => println!("ready"),
                Ok(Packet::Publish(reading)) => {
                    let opened = SensorReading::decode(&reading.payload).is_ok_and(|r| r.state == SensorState::Open);
                    if opened {
                        pkid = pkid % u16::MAX + 1;
                        let mut command = Publish::new(siren, QoS::AtLeastOnce, on.clone());
                        command.pkid = pkid;
                        command.write(&mut out)?;
                    }
                    if reading.qos != QoS::AtMostOnce {
                        PubAck::new(reading.pkid).write(&mut out)?;
                    }
                }
                Ok(_) => {}
                Err(PacketError::InsufficientBytes(_)) => break,
                Err(e) => bail!("an unreadable packet from the broker: {e}"),
            }
        }
        if !out.is_empty() {
            stream.write_all(&out).context("cannot write to the broker")?;
        }
    }
}
