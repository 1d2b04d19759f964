//! Prometheus metrics of the runtime: `rbtx_<thing>_<unit>_total`, with bounded label values.
//! Webhooks received and events handled by outcome, webhook arrival to event handled, queue
//! depth, and pack reloads by outcome; the intake serves them on `/metrics`.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The runtime's metrics and their registry.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Webhooks by what became of them: `queued`, `ignored` or `refused`.
    pub webhooks: Family<Vec<(String, String)>, Counter>,
    /// Handled events by outcome: `completed`, `retried`, `dead_lettered`, `lease_lost`.
    pub events: Family<Vec<(String, String)>, Counter>,
    /// Seconds from a webhook's arrival to its event being handled.
    pub latency: Histogram,
    pub queue_depth: Gauge,
    /// Mapping pack reloads by outcome: `applied` or `refused` (invalid; the running pack stays).
    pub pack_reloads: Family<Vec<(String, String)>, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("rbtx");
        let webhooks = Family::<Vec<(String, String)>, Counter>::default();
        let events = Family::<Vec<(String, String)>, Counter>::default();
        // 1 ms to about 65 s.
        let latency = Histogram::new(exponential_buckets(0.001, 2.0, 17));
        let queue_depth = Gauge::default();
        let pack_reloads = Family::<Vec<(String, String)>, Counter>::default();
        registry.register(
            "webhooks_received",
            "Webhooks received, by outcome",
            webhooks.clone(),
        );
        registry.register(
            "events_handled",
            "Events handled, by outcome",
            events.clone(),
        );
        registry.register(
            "apply_latency_seconds",
            "Webhook arrival to event handled",
            latency.clone(),
        );
        registry.register(
            "queue_depth",
            "Events waiting or in progress",
            queue_depth.clone(),
        );
        registry.register(
            "pack_reloads",
            "Mapping pack reloads, by outcome",
            pack_reloads.clone(),
        );
        Metrics {
            registry,
            webhooks,
            events,
            latency,
            queue_depth,
            pack_reloads,
        }
    }
}

impl Metrics {
    pub fn webhook(&self, outcome: &str) {
        self.webhooks
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    pub fn event(&self, outcome: &str, latency_seconds: f64) {
        self.events
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
        self.latency.observe(latency_seconds.max(0.0));
    }

    pub fn pack_reload(&self, outcome: &str) {
        self.pack_reloads
            .get_or_create(&vec![("outcome".into(), outcome.into())])
            .inc();
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn counters_are_rendered() {
        let m = super::Metrics::default();
        m.webhook("queued");
        m.event("completed", 0.01);
        m.pack_reload("refused");
        let text = m.render();
        assert!(
            text.contains(r#"rbtx_webhooks_received_total{outcome="queued"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rbtx_events_handled_total{outcome="completed"} 1"#),
            "{text}"
        );
        assert!(
            text.contains(r#"rbtx_pack_reloads_total{outcome="refused"} 1"#),
            "{text}"
        );
    }
}
