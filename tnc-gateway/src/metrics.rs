//! The gateway's Prometheus metrics (docs/metrics.md), served over plain
//! HTTP on `[metrics] listen` (off unless set): admissions, refusals by
//! reason, connections open and how they ended (cut on revocation among
//! them), whether it admits anyone now (fail closed), and what it knows of
//! revocations.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use tnc_proto::gateway::Refusal;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Reason {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct How {
    how: &'static str,
}

/// The gateway's metrics.
pub struct GatewayMetrics {
    registry: Registry,
    admitted: Counter,
    refused: Family<Reason, Counter>,
    silent: Counter,
    open: Gauge,
    ended: Family<How, Counter>,
    available: Gauge,
    revoked_tickets: Gauge,
    revocation_seq: Gauge,
}

impl std::fmt::Debug for GatewayMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GatewayMetrics").finish_non_exhaustive()
    }
}

impl Default for GatewayMetrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tnc_gateway");
        let admitted = Counter::default();
        registry.register(
            "admitted",
            "Connections admitted and relayed to their VM",
            admitted.clone(),
        );
        let refused = Family::<Reason, Counter>::default();
        registry.register(
            "refused",
            "Connections refused, by the refusal code's reason",
            refused.clone(),
        );
        let silent = Counter::default();
        registry.register(
            "silent",
            "Connections cut off for sending no admission in time",
            silent.clone(),
        );
        let open = Gauge::default();
        registry.register("connections_open", "Connections relayed now", open.clone());
        let ended = Family::<How, Counter>::default();
        registry.register(
            "connections_ended",
            "Relayed connections ended: closed, idle, stalled, revoked (cut on a revocation), failed",
            ended.clone(),
        );
        let available = Gauge::default();
        registry.register(
            "admitting",
            "1 while the gateway admits connections, 0 while it fails closed (no PDP within the grace period)",
            available.clone(),
        );
        let revoked_tickets = Gauge::default();
        registry.register(
            "revoked_tickets",
            "Unexpired revoked tickets the gateway knows of",
            revoked_tickets.clone(),
        );
        let revocation_seq = Gauge::default();
        registry.register(
            "revocation_seq",
            "The newest revocation number applied",
            revocation_seq.clone(),
        );
        Self {
            registry,
            admitted,
            refused,
            silent,
            open,
            ended,
            available,
            revoked_tickets,
            revocation_seq,
        }
    }
}

/// A refusal's label: stable names, one per code.
pub fn reason(r: Refusal) -> &'static str {
    match r {
        Refusal::BadTicket => "bad_ticket",
        Refusal::Expired => "expired",
        Refusal::NotForVm => "not_for_vm",
        Refusal::UnknownVm => "unknown_vm",
        Refusal::Revoked => "revoked",
        Refusal::Busy => "busy",
        Refusal::Unavailable => "unavailable",
        Refusal::Unreachable => "unreachable",
        Refusal::Malformed => "malformed",
    }
}

/// A relayed connection, counted open until dropped.
#[derive(Debug)]
pub struct Relayed<'m>(&'m GatewayMetrics);

impl Drop for Relayed<'_> {
    fn drop(&mut self) {
        self.0.open.dec();
    }
}

impl GatewayMetrics {
    pub fn refused(&self, r: Refusal) {
        self.refused
            .get_or_create(&Reason { reason: reason(r) })
            .inc();
    }

    pub fn silent(&self) {
        self.silent.inc();
    }

    pub fn admitted(&self) -> Relayed<'_> {
        self.admitted.inc();
        self.open.inc();
        Relayed(self)
    }

    /// A relayed connection ended: closed, idle, stalled, revoked (cut on
    /// a revocation), failed.
    pub fn ended(&self, how: &'static str) {
        self.ended.get_or_create(&How { how }).inc();
    }

    /// The text Prometheus reads; `admitting`, `revoked` and `seq` are read
    /// from the gateway now.
    pub fn render(&self, admitting: bool, revoked: usize, seq: i64) -> String {
        self.available.set(i64::from(admitting));
        self.revoked_tickets
            .set(i64::try_from(revoked).unwrap_or(i64::MAX));
        self.revocation_seq.set(seq);
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `GET /metrics` on `listener` (HTTP/1.1, plain) until `stop`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    gateway: Arc<crate::gate::Gateway>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    use http_body_util::Full;
    use hyper::body::Bytes;
    use hyper::{Response, StatusCode};
    loop {
        let (tcp, peer) = tokio::select! {
            a = listener.accept() => match a {
                Ok(a) => a,
                Err(e) => {
                    tracing::warn!(error = %e, "metrics: accepting a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let gateway = gateway.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let answer = if request.uri().path() == "/metrics" {
                    Response::builder()
                        .header(
                            hyper::header::CONTENT_TYPE,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                        )
                        .body(Full::new(Bytes::from(gateway.render_metrics())))
                } else {
                    Response::builder()
                        .status(StatusCode::NOT_FOUND)
                        .body(Full::new(Bytes::from_static(b"GET /metrics\n")))
                };
                async move { answer }
            });
            let served = tokio::time::timeout(
                std::time::Duration::from_secs(30),
                hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(tcp), service),
            )
            .await;
            if let Ok(Err(e)) = served {
                tracing::debug!(%peer, error = %e, "metrics connection ended");
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_refusal_has_its_own_label_and_the_gauges_follow() {
        let m = GatewayMetrics::default();
        for code in 1..=9u8 {
            m.refused(Refusal::from_code(code));
        }
        m.silent();
        let relayed = m.admitted();
        m.ended("revoked");
        let text = m.render(false, 3, 17);
        for reason in [
            "bad_ticket",
            "expired",
            "not_for_vm",
            "unknown_vm",
            "revoked",
            "busy",
            "unavailable",
            "unreachable",
            "malformed",
        ] {
            let line = format!("tnc_gateway_refused_total{{reason=\"{reason}\"}} 1");
            assert!(text.contains(&line), "{line} not in\n{text}");
        }
        for line in [
            "tnc_gateway_admitted_total 1",
            "tnc_gateway_silent_total 1",
            "tnc_gateway_connections_open 1",
            "tnc_gateway_connections_ended_total{how=\"revoked\"} 1",
            "tnc_gateway_admitting 0",
            "tnc_gateway_revoked_tickets 3",
            "tnc_gateway_revocation_seq 17",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        drop(relayed);
        assert!(m
            .render(true, 0, 17)
            .contains("tnc_gateway_connections_open 0"));
    }
}
