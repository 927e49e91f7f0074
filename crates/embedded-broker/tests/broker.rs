//! The embedded broker over a real socket: fallback port, retained messages, Last Will.

use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use embedded_broker::EmbeddedBroker;
use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Packet, QoS};

fn client(broker: &EmbeddedBroker, id: &str, will: Option<LastWill>) -> (AsyncClient, EventLoop) {
    let mut options = MqttOptions::new(id, broker.addr().ip().to_string(), broker.addr().port());
    options.set_keep_alive(Duration::from_secs(5));
    if let Some(will) = will {
        options.set_last_will(will);
    }
    AsyncClient::new(options, 10)
}

/// Polls until a publish on `topic` arrives and returns its payload.
async fn next_publish(eventloop: &mut EventLoop, topic: &str) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Event::Incoming(Packet::Publish(p)) = eventloop.poll().await.expect("connection failed")
                && p.topic == topic
            {
                return p.payload.to_vec();
            }
        }
    })
    .await
    .expect("no message within 5 s")
}

#[test]
fn a_taken_port_falls_back_to_a_free_one() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let broker = EmbeddedBroker::start(addr).unwrap();
    assert_eq!(broker.fell_back_from(), Some(addr));
    assert_ne!(broker.addr().port(), addr.port());
    let other = EmbeddedBroker::start("127.0.0.1:0".parse::<SocketAddr>().unwrap()).unwrap();
    assert_eq!(other.fell_back_from(), None);
    assert_ne!(other.addr(), broker.addr());
    assert!(other.url().starts_with("mqtt://127.0.0.1:"));
}

#[tokio::test]
async fn retained_messages_reach_late_subscribers_and_wills_are_sent() {
    let broker = EmbeddedBroker::start("127.0.0.1:0".parse().unwrap()).unwrap();

    let (publisher, mut publisher_loop) = client(&broker, "publisher", None);
    publisher.publish("t/retained", QoS::AtLeastOnce, true, "kept").await.unwrap();
    loop {
        if let Event::Incoming(Packet::PubAck(_)) = publisher_loop.poll().await.unwrap() {
            break;
        }
    }

    let (subscriber, mut subscriber_loop) = client(&broker, "subscriber", None);
    subscriber.subscribe("t/#", QoS::AtLeastOnce).await.unwrap();
    assert_eq!(next_publish(&mut subscriber_loop, "t/retained").await, b"kept");

    let will = LastWill::new("t/will", "gone", QoS::AtLeastOnce, false);
    let (_doomed, mut doomed_loop) = client(&broker, "doomed", Some(will));
    loop {
        if let Event::Incoming(Packet::ConnAck(_)) = doomed_loop.poll().await.unwrap() {
            break;
        }
    }
    // Dropping the event loop closes the socket without DISCONNECT, as a crash would.
    drop(doomed_loop);
    assert_eq!(next_publish(&mut subscriber_loop, "t/will").await, b"gone");
}
