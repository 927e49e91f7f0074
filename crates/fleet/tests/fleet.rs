//! `mqtt-home fleet` against a real broker (both): every device connects with its own id, says
//! `online`, leaves its retained state, reports at the asked rate with every QoS 1 report
//! acknowledged, bulbs answer commands, each house's own panel and light controller run beside
//! them, and each device says `offline` when the fleet stops.

use std::time::Duration;

use device_runtime::MqttConfig;
use fleet::FleetConfig;
use protocol::{LightState, Payload, SensorReading};
use testkit::{Probe, WITHIN, on_both_brokers};

async fn a_small_fleet_behaves_like_real_devices(url: String) {
    let mqtt = MqttConfig { broker: url.parse().unwrap(), ..MqttConfig::with_id("fleet-test") };
    let config = FleetConfig {
        devices: 40,
        houses: 2,
        rate: 40.0,
        duration: Duration::from_secs(3),
        controllers: true,
        ..FleetConfig::new(&mqtt)
    };
    let mut probe = Probe::connect(&url, "probe-fleet").await.unwrap();
    for filter in ["home-1/#", "home-2/devices/+/availability", "home-2/security/status"] {
        probe.subscribe(filter).await.unwrap();
    }
    let shutdown = device_runtime::Shutdown::new();
    let fleet = tokio::spawn(fleet::run(config, shutdown.clone(), |_| {}));

    // Each house has its own devices, under its own root.
    probe.expect("home-1/devices/fleet-door-0/availability", |p| p == b"online", WITHIN).await.unwrap();
    probe.expect("home-2/devices/fleet-bulb-19/availability", |p| p == b"online", WITHIN).await.unwrap();
    let reading = |p: &[u8]| SensorReading::decode(p).is_ok_and(|r| r.device_id == "fleet-window-1");
    probe.expect("home-1/security/window/fleet-window-1", reading, WITHIN).await.unwrap();
    // Each house has its own panel and light controller, under its root.
    let disarmed = |p: &[u8]| protocol::PanelStatus::decode(p).is_ok_and(|s| s.state.as_str() == "disarmed");
    probe.expect("home-2/security/status", disarmed, WITHIN).await.unwrap();
    probe.expect("home-1/devices/light-controller/availability", |p| p == b"online", WITHIN).await.unwrap();
    // A bulb takes a command and reports its state.
    // Bulbs only report when told (the fleet's rate moves sensors): the light controller's form.
    for (command, brightness) in
        [(r#"{"state":"ON","brightness":40}"#, 100), (r#"{"state":"OFF","source":"manual"}"#, 0)]
    {
        let before = probe.count("home-1/lights/fleet-bulb-3/state");
        probe.publish("home-1/lights/fleet-bulb-3/set", command, false).await.unwrap();
        let reported = move |p: &[u8]| LightState::decode(p).is_ok_and(|s| s.brightness == brightness);
        probe.expect_after(before, "home-1/lights/fleet-bulb-3/state", reported, WITHIN).await.unwrap();
    }

    let report = tokio::time::timeout(Duration::from_secs(30), fleet).await.expect("the fleet did not stop").unwrap();
    let report = report.unwrap();
    println!("{report}");
    assert_eq!((report.connected_after_ramp, report.failures), (40, 0), "{report}");
    // A report or two may be in flight when the counters are read.
    assert!(report.acked + 2 >= report.sent, "QoS 1 reports not acknowledged: {report}");
    // 40 events/s for 3 s, within what random phases allow.
    assert!((60..=180).contains(&report.sent), "{report}");
    assert!(report.commands >= 1, "{report}");
    probe.expect("home-2/devices/fleet-bulb-19/availability", |p| p == b"offline", WITHIN).await.unwrap();
}
on_both_brokers!(small_fleet, super::a_small_fleet_behaves_like_real_devices);
