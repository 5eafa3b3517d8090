//! Prometheus metrics of the PDP (docs/metrics.md), served on their own
//! listener (`[metrics] listen`, off unless set) as the OpenMetrics text
//! that Prometheus scrapes.
//!
//! What happens is counted where it happens (decisions, appraisals,
//! sessions, revocation acknowledgements); what the store holds (devices by
//! role and last verdict, stale devices, the newest revocation) is read at
//! each scrape.

use prometheus_client::encoding::{EncodeLabelSet, EncodeLabelValue};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::time::Duration;

/// A decision's labels.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DecisionLabels {
    /// allow, isolate, no-access.
    pub verdict: &'static str,
    /// terminal, vm, or none (no attested device).
    pub role: &'static str,
    /// first (the login) or reassessment.
    pub kind: Kind,
}

#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq, EncodeLabelValue)]
#[allow(non_camel_case_types)]
pub enum Kind {
    first,
    reassessment,
}

/// A gauge read from the store at each scrape.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DeviceLabels {
    pub role: String,
    /// allow, isolate, no-access, none (never decided).
    pub verdict: String,
}

/// The PDP's metrics.
pub struct Metrics {
    registry: Registry,
    decisions: Family<DecisionLabels, Counter>,
    decisions_unrecorded: Counter,
    handshake: Histogram,
    appraisal: Histogram,
    sessions_open: Gauge,
    sessions: Counter,
    revocation_acks: Histogram,
    devices: Family<DeviceLabels, Gauge>,
    devices_stale: Gauge,
    revocations_newest: Gauge,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("tnc");
        let decisions = Family::<DecisionLabels, Counter>::default();
        registry.register(
            "decisions",
            "Verdicts recorded and sent, by verdict, role and whether first or a re-assessment",
            decisions.clone(),
        );
        let decisions_unrecorded = Counter::default();
        registry.register(
            "decisions_unrecorded",
            "Decisions the store could not commit (answered no access)",
            decisions_unrecorded.clone(),
        );
        // 0.5 ms to about 4 s.
        let handshake = Histogram::new(exponential_buckets(0.0005, 2.0, 14));
        registry.register(
            "handshake_seconds",
            "From the session's start after TLS to its first verdict (PT-TLS negotiation, authentication, PB-TNC, appraisal, store commit)",
            handshake.clone(),
        );
        // 50 us to about 0.4 s.
        let appraisal = Histogram::new(exponential_buckets(0.00005, 2.0, 14));
        registry.register(
            "appraisal_seconds",
            "The validators' work on the deciding batch: quote, event log and IMA appraisal",
            appraisal.clone(),
        );
        let sessions_open = Gauge::default();
        registry.register(
            "sessions_open",
            "PT-TLS sessions open now (kept sessions of continuous trust included)",
            sessions_open.clone(),
        );
        let sessions = Counter::default();
        registry.register(
            "sessions",
            "PT-TLS sessions let in since the PDP started",
            sessions.clone(),
        );
        // 1 ms to about 16 s.
        let revocation_acks = Histogram::new(exponential_buckets(0.001, 2.0, 15));
        registry.register(
            "revocation_ack_seconds",
            "From a revocation's push to a subscriber to its acknowledgement",
            revocation_acks.clone(),
        );
        let devices = Family::<DeviceLabels, Gauge>::default();
        registry.register(
            "devices",
            "Enrolled devices by role and last verdict (read from the store at the scrape)",
            devices.clone(),
        );
        let devices_stale = Gauge::default();
        registry.register(
            "devices_stale",
            "Devices not attested within their role's stale limit (store, at the scrape)",
            devices_stale.clone(),
        );
        let revocations_newest = Gauge::default();
        registry.register(
            "revocations_newest",
            "The newest revocation's sequence number (store, at the scrape)",
            revocations_newest.clone(),
        );
        Self {
            registry,
            decisions,
            decisions_unrecorded,
            handshake,
            appraisal,
            sessions_open,
            sessions,
            revocation_acks,
            devices,
            devices_stale,
            revocations_newest,
        }
    }
}

/// Open sessions counted while this lives.
#[derive(Debug)]
pub struct OpenSession<'m>(&'m Metrics);

impl Drop for OpenSession<'_> {
    fn drop(&mut self) {
        self.0.sessions_open.dec();
    }
}

impl Metrics {
    /// A verdict sent; `committed` false: the store refused it.
    /// A verdict sent; `committed` false: the store refused it. The labels
    /// are static: counting allocates nothing.
    pub fn decision(
        &self,
        verdict: &'static str,
        role: Option<&'static str>,
        kind: Kind,
        committed: bool,
    ) {
        if !committed {
            self.decisions_unrecorded.inc();
        }
        self.decisions
            .get_or_create(&DecisionLabels {
                verdict,
                role: role.unwrap_or("none"),
                kind,
            })
            .inc();
    }

    pub fn handshake(&self, took: Duration) {
        self.handshake.observe(took.as_secs_f64());
    }

    pub fn appraisal(&self, took: Duration) {
        self.appraisal.observe(took.as_secs_f64());
    }

    /// A session let in; open until the guard drops.
    pub fn session(&self) -> OpenSession<'_> {
        self.sessions.inc();
        self.sessions_open.inc();
        OpenSession(self)
    }

    pub fn revocation_acknowledged(&self, took: Duration) {
        self.revocation_acks.observe(took.as_secs_f64());
    }

    /// The text Prometheus reads, with the store's gauges as given.
    pub fn render(&self, store: &StoreGauges) -> String {
        self.devices.clear();
        for ((role, verdict), n) in &store.devices {
            self.devices
                .get_or_create(&DeviceLabels {
                    role: role.clone(),
                    verdict: verdict.clone(),
                })
                .set(*n);
        }
        self.devices_stale.set(store.stale);
        self.revocations_newest.set(store.newest_revocation);
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// What a scrape reads: the store's counts, and the newest revocation as
/// the watcher last saw it.
#[derive(Clone, Debug, Default)]
pub struct StoreGauges {
    /// (role, last verdict) -> devices.
    pub devices: Vec<((String, String), i64)>,
    pub stale: i64,
    pub newest_revocation: i64,
}

/// The bound metrics listener: plain HTTP, `GET /metrics` (keep it on
/// loopback or a monitoring network: it tells how many devices are in
/// which state, nothing secret).
pub struct MetricsServer {
    listener: tokio::net::TcpListener,
    ctx: std::sync::Arc<crate::pdp::PdpContext>,
    store: std::sync::Arc<crate::store::Store>,
}

impl MetricsServer {
    pub async fn bind(
        addr: std::net::SocketAddr,
        ctx: std::sync::Arc<crate::pdp::PdpContext>,
        store: std::sync::Arc<crate::store::Store>,
    ) -> Result<Self, crate::error::DaemonError> {
        let listener = tokio::net::TcpListener::bind(addr).await.map_err(|error| {
            crate::error::DaemonError::Listen {
                what: format!("{addr} (metrics.listen)"),
                error,
            }
        })?;
        Ok(Self {
            listener,
            ctx,
            store,
        })
    }

    pub fn local_addr(&self) -> std::io::Result<std::net::SocketAddr> {
        self.listener.local_addr()
    }

    pub async fn run(self, mut shutdown: tokio::sync::watch::Receiver<bool>) {
        use axum::routing::get;
        let (ctx, store) = (self.ctx, self.store);
        let routes = axum::Router::new().route(
            "/metrics",
            get(move || {
                let (ctx, store) = (ctx.clone(), store.clone());
                async move { scrape(&ctx, &store).await }
            }),
        );
        let stop = async move {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        if let Err(e) = axum::serve(self.listener, routes)
            .with_graceful_shutdown(stop)
            .await
        {
            tracing::warn!(error = %e, "metrics listener ended");
        }
    }
}

async fn scrape(
    ctx: &crate::pdp::PdpContext,
    store: &crate::store::Store,
) -> axum::response::Response {
    use axum::http::{header, StatusCode};
    use axum::response::IntoResponse;
    let stale_after: std::collections::BTreeMap<_, _> = [
        tnc_proto::attestation::Role::Terminal,
        tnc_proto::attestation::Role::Vm,
    ]
    .into_iter()
    .filter_map(|r| Some((r, ctx.reassessment.stale_after(r)?)))
    .collect();
    match store.metrics_gauges(ctx.now(), &stale_after).await {
        Ok(mut gauges) => {
            // The watcher keeps the newest number current (the revocation
            // stream follows it): no query for it.
            gauges.newest_revocation = *ctx.newest_revocation.borrow();
            (
                [(
                    header::CONTENT_TYPE,
                    "application/openmetrics-text; version=1.0.0; charset=utf-8",
                )],
                ctx.metrics.render(&gauges),
            )
                .into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "metrics: the store could not be read");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "the PDP's store could not be read\n",
            )
                .into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_carries_each_family_with_its_labels() {
        let m = Metrics::default();
        m.decision("allow", Some("terminal"), Kind::first, true);
        m.decision("isolate", Some("terminal"), Kind::reassessment, true);
        m.decision("no-access", None, Kind::first, false);
        m.handshake(Duration::from_millis(3));
        m.appraisal(Duration::from_micros(300));
        let open = m.session();
        m.revocation_acknowledged(Duration::from_millis(12));
        let text = m.render(&StoreGauges {
            devices: vec![(("terminal".into(), "allow".into()), 7)],
            stale: 2,
            newest_revocation: 41,
        });
        for line in [
            "tnc_decisions_total{verdict=\"allow\",role=\"terminal\",kind=\"first\"} 1",
            "tnc_decisions_total{verdict=\"isolate\",role=\"terminal\",kind=\"reassessment\"} 1",
            "tnc_decisions_total{verdict=\"no-access\",role=\"none\",kind=\"first\"} 1",
            "tnc_decisions_unrecorded_total 1",
            "tnc_handshake_seconds_count 1",
            "tnc_appraisal_seconds_count 1",
            "tnc_sessions_open 1",
            "tnc_sessions_total 1",
            "tnc_revocation_ack_seconds_count 1",
            "tnc_devices{role=\"terminal\",verdict=\"allow\"} 7",
            "tnc_devices_stale 2",
            "tnc_revocations_newest 41",
        ] {
            assert!(text.contains(line), "{line} not in\n{text}");
        }
        drop(open);
        assert!(m
            .render(&StoreGauges::default())
            .contains("tnc_sessions_open 0"));
        // A role's devices that are gone are not reported as before.
        assert!(!m
            .render(&StoreGauges::default())
            .contains("tnc_devices{role=\"terminal\""));
    }
}
