//! The PDP as a library: one place that binds the listeners (PT-TLS over
//! TCP + TLS 1.3, and over QUIC), shares the session slots, the pool of
//! unauthenticated connections and the per-address rate between them, and
//! stops them all. `tnc-server run`, testnet's PDP and the demo start the
//! PDP through [`Pdp::builder`]; nothing else constructs listeners.

use crate::config::Limits;
use crate::error::DaemonError;
use crate::net::{quic_server_config, Listener, PeerRate, SessionReport, Transport};
use crate::pdp::PdpContext;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinHandle;

/// What a PDP is started with.
pub struct PdpBuilder {
    ctx: Arc<PdpContext>,
    tls: Arc<rustls::ServerConfig>,
    limits: Limits,
    tcp: SocketAddr,
    quic: Option<SocketAddr>,
    reports: Option<mpsc::UnboundedSender<SessionReport>>,
    revocations: Option<(SocketAddr, crate::config::Revocations)>,
    admin: Option<AdminListen>,
    metrics: Option<(SocketAddr, Arc<crate::store::Store>)>,
}

/// Where and how the admin API is served (`[admin]`).
pub struct AdminListen {
    pub addr: SocketAddr,
    /// [`crate::admin::tls_config`].
    pub tls: Arc<rustls::ServerConfig>,
    /// The store the PDP runs on, with the operator's queries.
    pub store: Arc<crate::store::Store>,
}

impl AdminListen {
    /// As `[admin]` says: None when `listen` is unset.
    pub fn from_config(
        config: &crate::config::ServerConfig,
        store: &Arc<crate::store::Store>,
    ) -> Result<Option<Self>, crate::error::ConfigError> {
        config
            .admin
            .listen
            .map(|addr| {
                Ok(Self {
                    addr,
                    tls: crate::admin::tls_config(config)?,
                    store: store.clone(),
                })
            })
            .transpose()
    }
}

/// A running PDP.
pub struct Pdp {
    /// Where PT-TLS over TCP is served.
    pub tcp_addr: SocketAddr,
    /// Where PT-TLS over QUIC is served, if it is.
    pub quic_addr: Option<SocketAddr>,
    /// Where gateways and VMs subscribe to revocations, if they can.
    pub revocations_addr: Option<SocketAddr>,
    /// Where the admin API is served, if it is.
    pub admin_addr: Option<SocketAddr>,
    /// Where Prometheus scrapes the metrics, if it can.
    pub metrics_addr: Option<SocketAddr>,
    ctx: Arc<PdpContext>,
    shutdown: Shutdown,
    listeners: Vec<JoinHandle<()>>,
    events: Arc<crate::events::EventBus>,
}

/// Stops a PDP from elsewhere (a signal handler): every listener stops
/// accepting, open sessions are ended.
#[derive(Clone)]
pub struct Shutdown(Arc<watch::Sender<bool>>);

impl Shutdown {
    pub fn stop(&self) {
        let _ = self.0.send(true);
    }
}

impl Pdp {
    /// A PDP serving `ctx` with the TLS identity `tls`, within `limits`; by
    /// default on PT-TLS's port over TCP only.
    pub fn builder(
        ctx: Arc<PdpContext>,
        tls: Arc<rustls::ServerConfig>,
        limits: Limits,
    ) -> PdpBuilder {
        PdpBuilder {
            ctx,
            tls,
            limits,
            tcp: SocketAddr::from(([0u16; 8], crate::config::PT_TLS_PORT)),
            quic: None,
            reports: None,
            revocations: None,
            admin: None,
            metrics: None,
        }
    }

    pub fn context(&self) -> &Arc<PdpContext> {
        &self.ctx
    }

    /// Session events from now on (opened, decided, failed, closed).
    pub fn subscribe(&self) -> tokio::sync::broadcast::Receiver<crate::events::SessionEvent> {
        self.events.subscribe()
    }

    pub fn shutdown_handle(&self) -> Shutdown {
        self.shutdown.clone()
    }

    /// Waits until the listeners have stopped (after [`Shutdown::stop`]),
    /// then writes what must outlive the sessions: the failed logins counted
    /// since their address's last audit entry.
    pub async fn join(self) -> Result<(), DaemonError> {
        for l in self.listeners {
            l.await.map_err(|e| DaemonError::Panicked(e.to_string()))?;
        }
        for (subject, detail) in self.ctx.guesses.drain_audit() {
            self.ctx
                .store
                .audit(self.ctx.now(), "sasl-failed", &subject, &detail)
                .await?;
        }
        Ok(())
    }

    /// Stops the PDP and waits for it.
    pub async fn stop(self) -> Result<(), DaemonError> {
        self.shutdown.stop();
        self.join().await
    }
}

impl PdpBuilder {
    /// PT-TLS over TCP here (port 0: any free port).
    pub fn tcp(mut self, addr: SocketAddr) -> Self {
        self.tcp = addr;
        self
    }

    /// PT-TLS over QUIC here too.
    pub fn quic(mut self, addr: Option<SocketAddr>) -> Self {
        self.quic = addr;
        self
    }

    /// The revocation stream and gateway enrolment here (needs `[ca]`).
    pub fn revocations(mut self, at: Option<(SocketAddr, crate::config::Revocations)>) -> Self {
        self.revocations = at;
        self
    }

    /// The admin API here.
    pub fn admin(mut self, at: Option<AdminListen>) -> Self {
        self.admin = at;
        self
    }

    /// Prometheus metrics here (plain HTTP, `GET /metrics`), read from
    /// the PDP and from `store`.
    pub fn metrics(mut self, at: Option<(SocketAddr, Arc<crate::store::Store>)>) -> Self {
        self.metrics = at;
        self
    }

    /// Every finished session is reported here besides the log.
    pub fn reports(mut self, tx: mpsc::UnboundedSender<SessionReport>) -> Self {
        self.reports = Some(tx);
        self
    }

    /// Binds the listeners and starts serving.
    pub async fn start(self) -> Result<Pdp, DaemonError> {
        let tcp_what = || format!("{} (listen.tcp or --listen)", self.tcp);
        let tcp = tokio::net::TcpListener::bind(self.tcp)
            .await
            .map_err(|error| DaemonError::Listen {
                what: tcp_what(),
                error,
            })?;
        let tcp_addr = tcp.local_addr().map_err(|error| DaemonError::Listen {
            what: tcp_what(),
            error,
        })?;
        let (sender, shutdown) = watch::channel(false);
        // One bound on sessions, one pool and one rate over both transports.
        let sessions = Arc::new(Semaphore::new(self.limits.max_sessions));
        let pending = crate::pending::PendingPool::from_limits(&self.limits);
        let rate = Arc::new(PeerRate::from_limits(&self.limits));
        let events = Arc::new(crate::events::EventBus::default());
        let listener = |transport| Listener {
            events: events.clone(),
            transport,
            ctx: self.ctx.clone(),
            sessions: sessions.clone(),
            limits: self.limits.clone(),
            shutdown: shutdown.clone(),
            rate: rate.clone(),
            pending: pending.clone(),
            reports: self.reports.clone(),
        };
        let mut listeners = Vec::new();
        let mut quic_addr = None;
        if let Some(addr) = self.quic {
            let quic_what = || format!("UDP {addr} (listen.quic or --quic-listen)");
            let endpoint =
                quic_endpoint(quic_server_config(&self.tls)?, addr).map_err(|error| {
                    DaemonError::Listen {
                        what: quic_what(),
                        error,
                    }
                })?;
            quic_addr = Some(endpoint.local_addr().map_err(|error| DaemonError::Listen {
                what: quic_what(),
                error,
            })?);
            listeners.push(tokio::spawn(listener(Transport::Quic(endpoint)).run()));
        }
        let mut revocations_addr = None;
        if let Some((addr, settings)) = &self.revocations {
            let publisher =
                crate::revocation::Publisher::bind(*addr, self.ctx.clone(), settings).await?;
            revocations_addr =
                Some(
                    publisher
                        .local_addr()
                        .map_err(|error| DaemonError::Listen {
                            what: format!("{addr} (revocations.listen)"),
                            error,
                        })?,
                );
            listeners.push(tokio::spawn(publisher.run(shutdown.clone())));
        }
        let mut admin_addr = None;
        if let Some(admin) = self.admin {
            let what = format!("{} (admin.listen)", admin.addr);
            let server = crate::admin::AdminServer::bind(
                admin.addr,
                admin.tls,
                admin.store,
                self.ctx.clone(),
                events.clone(),
            )
            .await?;
            admin_addr = Some(
                server
                    .local_addr()
                    .map_err(|error| DaemonError::Listen { what, error })?,
            );
            listeners.push(tokio::spawn(server.run(shutdown.clone())));
        }
        let mut metrics_addr = None;
        if let Some((addr, store)) = self.metrics {
            let what = format!("{addr} (metrics.listen)");
            let server = crate::metrics::MetricsServer::bind(addr, self.ctx.clone(), store).await?;
            metrics_addr = Some(
                server
                    .local_addr()
                    .map_err(|error| DaemonError::Listen { what, error })?,
            );
            listeners.push(tokio::spawn(server.run(shutdown.clone())));
        }
        // Continuous trust: policy changes, the operator's requests, stale
        // devices.
        listeners.push(tokio::spawn(crate::continuous::watch(
            self.ctx.clone(),
            shutdown.clone(),
        )));
        listeners.push(tokio::spawn(
            listener(Transport::Tcp {
                listener: tcp,
                acceptor: tokio_rustls::TlsAcceptor::from(self.tls.clone()),
            })
            .run(),
        ));
        Ok(Pdp {
            tcp_addr,
            quic_addr,
            revocations_addr,
            admin_addr,
            metrics_addr,
            ctx: self.ctx,
            shutdown: Shutdown(Arc::new(sender)),
            listeners,
            events,
        })
    }
}

/// SIGTERM or SIGINT (Ctrl-C), whichever comes first: how daemons here stop.
pub async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// The UDP receive buffer a QUIC listener asks for. A burst of clients'
/// Initial flights (1,200 bytes and more each, about 2.3 KB of kernel
/// memory per datagram) overflows Linux's default of 208 KiB; a dropped
/// Initial costs its client a probe timeout (about 1 s at QUIC's initial
/// RTT of 333 ms), which was the p99 of `bench handshake`'s QUIC row at
/// 100 clients.
pub const QUIC_RECEIVE_BUFFER: usize = 4 << 20;

/// A QUIC server endpoint on `addr` whose socket has
/// [`QUIC_RECEIVE_BUFFER`] (as much as the kernel grants: a warning says
/// what to raise when it grants less).
pub fn quic_endpoint(
    config: quinn::ServerConfig,
    addr: SocketAddr,
) -> std::io::Result<quinn::Endpoint> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    if let Err(e) = socket.set_recv_buffer_size(QUIC_RECEIVE_BUFFER) {
        tracing::debug!(error = %e, "QUIC listener: receive buffer size not set");
    }
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    // Linux grants at most net.core.rmem_max, and reports twice what it
    // granted (its bookkeeping share).
    let granted = socket.recv_buffer_size().unwrap_or(0) / 2;
    if granted < QUIC_RECEIVE_BUFFER {
        tracing::warn!(
            %addr,
            granted,
            asked = QUIC_RECEIVE_BUFFER,
            "QUIC listener: the kernel granted a smaller UDP receive buffer than asked for; \
             bursts of handshakes may be dropped and retried after ~1 s: raise \
             net.core.rmem_max (sysctl -w net.core.rmem_max={QUIC_RECEIVE_BUFFER})"
        );
    }
    let runtime = quinn::default_runtime()
        .ok_or_else(|| std::io::Error::other("no async runtime for the QUIC listener"))?;
    quinn::Endpoint::new(
        quinn::EndpointConfig::default(),
        Some(config),
        socket.into(),
        runtime,
    )
}
