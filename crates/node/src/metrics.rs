//! Prometheus metrics served at `/metrics`: requests by method (the standard ones, else `other`)
//! and status, their latency, and store commands by outcome with their latency (which includes
//! waiting for the group commit). Every label takes a bounded set of values.

use axum::http::Method;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;
use std::time::Duration;
use store::{Executed, Outcome};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    /// One of a fixed few names (`method_name`): the series are bounded.
    method: &'static str,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CommandLabels {
    outcome: String,
}

pub struct Metrics {
    registry: Registry,
    requests: Family<RequestLabels, Counter>,
    request_seconds: Histogram,
    commands: Family<CommandLabels, Counter>,
    command_seconds: Histogram,
}

impl Default for Metrics {
    fn default() -> Metrics {
        let mut registry = Registry::with_prefix("bankd");
        let requests = Family::<RequestLabels, Counter>::default();
        let request_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        let commands = Family::<CommandLabels, Counter>::default();
        let command_seconds = Histogram::new(exponential_buckets(0.000_25, 2.0, 16));
        registry.register(
            "http_requests",
            "HTTP requests answered, by method and status",
            requests.clone(),
        );
        registry.register(
            "http_request_seconds",
            "Time to answer an HTTP request",
            request_seconds.clone(),
        );
        registry.register(
            "store_commands",
            "Commands the store executed, by outcome",
            commands.clone(),
        );
        registry.register(
            "store_command_seconds",
            "Time from queueing a command to its durable answer",
            command_seconds.clone(),
        );
        Metrics {
            registry,
            requests,
            request_seconds,
            commands,
            command_seconds,
        }
    }
}

impl Metrics {
    pub fn observe_request(&self, method: &Method, status: u16, elapsed: Duration) {
        self.requests
            .get_or_create(&RequestLabels {
                method: method_name(method),
                status,
            })
            .inc();
        self.request_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn observe_command(&self, elapsed: Duration, executed: &Executed) {
        let outcome = match (&executed.outcome, executed.replayed) {
            (_, true) => "replayed".to_string(),
            (Outcome::Refused(refusal), false) => refusal.code().to_string(),
            _ => "done".to_string(),
        };
        self.commands
            .get_or_create(&CommandLabels { outcome })
            .inc();
        self.command_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn render(&self) -> String {
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &self.registry)
            .expect("writing to a String cannot fail");
        text
    }
}

/// The method's label: one of the standard methods, or `other` for any other token a client
/// sends (a label per arbitrary method would make a series per request, without a login).
fn method_name(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        Method::CONNECT => "CONNECT",
        Method::TRACE => "TRACE",
        _ => "other",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_outside_the_standard_ones_share_one_label() {
        let metrics = Metrics::default();
        for name in ["FOO", "BAR", "get", "PROPFIND"] {
            let method = Method::from_bytes(name.as_bytes()).unwrap();
            metrics.observe_request(&method, 405, Duration::ZERO);
        }
        metrics.observe_request(&Method::GET, 200, Duration::ZERO);
        let text = metrics.render();
        assert!(text.contains(r#"method="other",status="405"} 4"#), "{text}");
        assert!(text.contains(r#"method="GET",status="200"} 1"#), "{text}");
        assert!(
            !text.contains("FOO") && !text.contains("PROPFIND"),
            "{text}"
        );
    }
}
