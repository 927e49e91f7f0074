//! What the link tells Home Assistant about its device (see `protocol::discovery`): the configs,
//! published retained on every connect and again when Home Assistant says it is `online`.

use protocol::Topics;
use protocol::discovery::{self, Node};
use rumqttc::{AsyncClient, QoS};

use super::DeviceSpec;
use super::publisher::Progress;
use crate::config::MqttConfig;

/// What the link tells Home Assistant about its device (see `protocol::discovery`).
pub(super) struct HomeAssistant {
    /// `<prefix>/status`, while discovery is on.
    status: Option<String>,
    /// Each entity's config topic and payload: the config while discovery is on, empty (which
    /// removes the entity) while it is off.
    configs: Vec<(String, Vec<u8>)>,
    /// Off: the configs are cleared once per process, not on every connect.
    cleared: bool,
}

impl HomeAssistant {
    pub(super) fn new(config: &MqttConfig, topics: &Topics, spec: &DeviceSpec) -> HomeAssistant {
        let node = Node { topics, device_id: &config.id, kind: spec.kind, version: protocol::VERSION };
        let prefix = &config.ha_discovery_prefix;
        let on = config.ha_discovery && spec.presence;
        let configs = spec
            .discovery
            .iter()
            .map(|entity| {
                let payload = if on { entity.config_for(&node).to_string().into_bytes() } else { Vec::new() };
                (entity.config_topic(prefix, &node), payload)
            })
            .collect();
        let status = (on && !spec.discovery.is_empty()).then(|| discovery::status_topic(prefix));
        HomeAssistant { status, configs, cleared: false }
    }

    pub(super) fn is_status(&self, topic: &str) -> bool {
        self.status.as_deref() == Some(topic)
    }

    /// Home Assistant's `online`, at QoS 0 as it publishes it (and so never owed a manual ack).
    pub(super) fn subscription(&self) -> Option<rumqttc::SubscribeFilter> {
        self.status.as_ref().map(|topic| rumqttc::SubscribeFilter::new(topic.clone(), QoS::AtMostOnce))
    }

    /// Publishes the configs, retained; with discovery off, clears them once.
    pub(super) fn announce(&mut self, client: &AsyncClient, progress: &Progress) {
        if self.status.is_none() {
            if self.cleared {
                return;
            }
            self.cleared = true;
        }
        for (topic, payload) in &self.configs {
            if client.try_publish(topic, QoS::AtLeastOnce, true, payload.clone()).is_ok() {
                progress.queue(1);
            }
        }
    }
}
