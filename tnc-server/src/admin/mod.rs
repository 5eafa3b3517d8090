//! The admin API (docs/admin-api.md): JSON over HTTPS with mutual TLS.
//!
//! The listener presents the PDP's `[tls]` certificate and asks every
//! caller for one from `[admin] ca_certificate`. Who may do what comes from
//! the certificate's subject OU: `tnc-admin-read` reads, `tnc-admin-write`
//! also acts (re-assess, revoke, forget, load a policy). A caller without a
//! certificate gets 401, one with a certificate of the CA that names no
//! admin role (an endpoint's, say) and a read-only caller that tries to act
//! get 403; a certificate of another CA is refused in the TLS handshake.
//! Each refusal is logged with the caller's address and subject; each
//! action is logged and written to the audit log with the admin's name.
//!
//! axum routes the requests; hyper serves them over tokio-rustls here (not
//! `axum::serve`) so that each connection's verified certificate becomes
//! the [`Caller`] its requests see.

use crate::devices::DeviceRecord;
use crate::error::{ConfigError, DaemonError};
use crate::events::EventBus;
use crate::pdp::PdpContext;
use crate::store::{hex, FindDevice, Store, StoreError};
use axum::extract::{Path, Query, Request, State};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tnc_proto::admin::{self as api, AdminRole};
use tnc_proto::attestation::Role;
use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};

/// TLS must be done within this.
const TLS_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections served at once (event streams included); more wait.
const MAX_CONNECTIONS: usize = 256;
/// Connections from one address at once; more are closed at once (a
/// client without a certificate must not hold every slot).
const PER_ADDRESS: usize = 16;
/// Event streams open at once.
const MAX_STREAMS: usize = 64;
/// Attestations in a device's detail.
const RECENT_ATTESTATIONS: i64 = 20;
/// The most entries one page of the audit log or the revocations holds.
const MAX_PAGE: i64 = 1000;
/// The largest request body (a policy's TOML is the largest there is).
const MAX_BODY: usize = 1 << 20;

/// Who is calling, from the certificate of the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Caller {
    /// No certificate.
    Anonymous,
    /// A certificate of the admin CA that names no admin role.
    NotAdmin {
        subject: String,
    },
    Admin {
        name: String,
        role: AdminRole,
    },
}

impl Caller {
    /// The caller a verified client certificate (DER) makes.
    pub fn from_certificate(der: Option<&[u8]>) -> Self {
        let Some(der) = der else {
            return Self::Anonymous;
        };
        // The subject's text only for a refusal's message.
        let subject =
            || pki::certificate_subject(der).unwrap_or_else(|| "(unparsable subject)".into());
        match pki::subject_names(der) {
            Some(names) => Self::from_names(subject, names.common_name, &names.units),
            None => Self::NotAdmin { subject: subject() },
        }
    }

    fn from_names(
        subject: impl FnOnce() -> String,
        common_name: Option<String>,
        units: &[String],
    ) -> Self {
        // One role, stated once: a certificate naming both is refused
        // rather than read as either.
        let roles: Vec<AdminRole> = units.iter().filter_map(|u| AdminRole::from_ou(u)).collect();
        match (roles.as_slice(), common_name) {
            ([role], Some(name)) if !name.is_empty() => Self::Admin { name, role: *role },
            _ => Self::NotAdmin { subject: subject() },
        }
    }
}

pub mod client;
pub mod openapi;

/// The TLS configuration of the admin listener: the PDP's standard
/// identity (`[tls] certificate`, `private_key`), callers' certificates
/// verified against `[admin] ca_certificate`, HTTP/1.1.
pub fn tls_config(
    config: &crate::config::ServerConfig,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    tls_config_from(
        &config.path(&config.tls.certificate),
        &config.path(&config.tls.private_key),
        &config.path(&config.admin.ca_certificate),
    )
}

/// [`tls_config`] from the files themselves.
pub fn tls_config_from(
    certificate: &std::path::Path,
    key: &std::path::Path,
    ca: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, ConfigError> {
    let tls = crate::net::tls_server_config_for(
        pki::tls::Suites::Standard,
        Some((certificate, key)),
        None,
        Some(ca),
    )
    .map_err(|e| ConfigError::new("[admin] with [tls]", e))?;
    let mut tls = Arc::unwrap_or_clone(tls);
    tls.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(tls))
}

/// What the handlers share.
#[derive(Clone)]
struct AppState {
    store: Arc<Store>,
    ctx: Arc<PdpContext>,
    events: Arc<EventBus>,
    streams: Arc<Semaphore>,
}

/// The bound admin listener.
pub struct AdminServer {
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: AppState,
}

impl AdminServer {
    pub async fn bind(
        addr: SocketAddr,
        tls: Arc<rustls::ServerConfig>,
        store: Arc<Store>,
        ctx: Arc<PdpContext>,
        events: Arc<EventBus>,
    ) -> Result<Self, DaemonError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|error| DaemonError::Listen {
                what: format!("{addr} (admin.listen)"),
                error,
            })?;
        Ok(Self {
            listener,
            acceptor: tokio_rustls::TlsAcceptor::from(tls),
            state: AppState {
                store,
                ctx,
                events,
                streams: Arc::new(Semaphore::new(MAX_STREAMS)),
            },
        })
    }

    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves until `shutdown`; then ends every connection (event streams
    /// included).
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let routes = router(self.state);
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let per_address = Arc::new(std::sync::Mutex::new(std::collections::HashMap::<
            std::net::IpAddr,
            usize,
        >::new()));
        let mut connections = tokio::task::JoinSet::new();
        loop {
            // Waiting for a slot, as for a connection, ends on shutdown.
            let slot = tokio::select! {
                slot = slots.clone().acquire_owned() => match slot {
                    Ok(s) => s,
                    Err(_) => break,
                },
                _ = shutdown.changed() => break,
            };
            let (tcp, peer) = tokio::select! {
                accepted = self.listener.accept() => match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        tracing::warn!(error = %e, "admin API: accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
                _ = shutdown.changed() => break,
            };
            // Reap finished connections as we go.
            while connections.try_join_next().is_some() {}
            let Some(counted) = AddressSlot::take(&per_address, peer.ip()) else {
                tracing::warn!(%peer, "admin API: more than {PER_ADDRESS} connections from one address: closed");
                continue;
            };
            let acceptor = self.acceptor.clone();
            let routes = routes.clone();
            connections.spawn(async move {
                let _slots = (slot, counted);
                serve_connection(acceptor, routes, tcp, peer).await;
            });
        }
        connections.shutdown().await;
    }
}

async fn serve_connection(
    acceptor: tokio_rustls::TlsAcceptor,
    routes: Router,
    tcp: tokio::net::TcpStream,
    peer: SocketAddr,
) {
    // Answers are written as they are made: without this, a small answer
    // after the head waits on the client's delayed ACK (40 ms on Linux).
    let _ = tcp.set_nodelay(true);
    let tls = match tokio::time::timeout(TLS_TIMEOUT, acceptor.accept(tcp)).await {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            // A certificate of another CA ends here (unknown CA alert).
            tracing::warn!(%peer, error = %e, "admin API: TLS handshake refused");
            return;
        }
        Err(_) => {
            tracing::warn!(%peer, "admin API: no TLS handshake within {TLS_TIMEOUT:?}");
            return;
        }
    };
    let caller = Caller::from_certificate(
        tls.get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| c.as_ref()),
    );
    let service = hyper_util::service::TowerToHyperService::new(
        routes.layer(Extension(caller)).layer(Extension(Peer(peer))),
    );
    if let Err(e) = hyper::server::conn::http1::Builder::new()
        .timer(hyper_util::rt::TokioTimer::new())
        .header_read_timeout(TLS_TIMEOUT)
        .serve_connection(hyper_util::rt::TokioIo::new(tls), service)
        .await
    {
        tracing::debug!(%peer, error = %e, "admin API connection ended");
    }
}

/// One of an address's connections, given back on drop.
struct AddressSlot {
    counts: Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
    ip: std::net::IpAddr,
}

impl AddressSlot {
    fn take(
        counts: &Arc<std::sync::Mutex<std::collections::HashMap<std::net::IpAddr, usize>>>,
        ip: std::net::IpAddr,
    ) -> Option<Self> {
        let mut map = counts.lock().unwrap_or_else(|p| p.into_inner());
        let n = map.entry(ip).or_insert(0);
        if *n >= PER_ADDRESS {
            return None;
        }
        *n += 1;
        Some(Self {
            counts: counts.clone(),
            ip,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut map = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                map.remove(&self.ip);
            }
        }
    }
}

/// The caller's address, for log lines.
#[derive(Clone, Copy, Debug)]
struct Peer(SocketAddr);

fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/whoami", get(whoami))
        .route("/v1/devices", get(devices))
        .route("/v1/devices/{device}", get(device))
        .route("/v1/devices/{device}/reassess", post(reassess_one))
        .route("/v1/devices/{device}/revoke", post(revoke))
        .route("/v1/devices/{device}/forget", post(forget))
        .route("/v1/reassess", post(reassess_all))
        .route("/v1/revocations", get(revocations))
        .route("/v1/sessions", get(sessions))
        .route("/v1/credentials", get(credentials))
        .route("/v1/pairings", get(pairings))
        .route("/v1/policies", get(policies))
        .route("/v1/policies/{role}", post(load_policy))
        .route("/v1/audit", get(audit))
        .route("/v1/events", get(events))
        .route("/v1/openapi.json", get(openapi::document))
        .fallback(not_found)
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY))
        .layer(axum::middleware::from_fn(authorize))
        .with_state(state)
}

/// Error answers axum makes itself (405 for a method a path does not take,
/// 413 for a body over the limit) in the API's JSON shape.
async fn json_errors(answer: Response) -> Response {
    let status = answer.status();
    let json = answer
        .headers()
        .get(axum::http::header::CONTENT_TYPE)
        .is_some_and(|t| t.as_bytes().starts_with(b"application/json"));
    if json || !(status.is_client_error() || status.is_server_error()) {
        return answer;
    }
    let why = match status {
        StatusCode::METHOD_NOT_ALLOWED => {
            "this path does not take that method (docs/admin-api.md)".to_string()
        }
        StatusCode::PAYLOAD_TOO_LARGE => format!("the request body is over {MAX_BODY} bytes"),
        other => other.canonical_reason().unwrap_or("error").to_string(),
    };
    let mut json = Failure(status, why).into_response();
    if let Some(allow) = answer.headers().get(axum::http::header::ALLOW) {
        json.headers_mut()
            .insert(axum::http::header::ALLOW, allow.clone());
    }
    json
}

/// An answer other than success: its status and what was wrong.
#[derive(Debug)]
struct Failure(StatusCode, String);

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        (self.0, Json(api::ApiError { error: self.1 })).into_response()
    }
}

impl From<StoreError> for Failure {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "admin API: the store failed");
        Self(
            StatusCode::SERVICE_UNAVAILABLE,
            "the PDP's store failed; see the PDP's log".into(),
        )
    }
}

impl From<FindDevice> for Failure {
    fn from(e: FindDevice) -> Self {
        match e {
            FindDevice::Store(e) => e.into(),
            e @ FindDevice::None(_) => Self(StatusCode::NOT_FOUND, e.to_string()),
            e @ FindDevice::Ambiguous(..) => Self(StatusCode::BAD_REQUEST, e.to_string()),
        }
    }
}

type Answer<T> = Result<Json<T>, Failure>;

/// Lets in admins; reading needs either role, anything else read-write.
async fn authorize(
    Extension(caller): Extension<Caller>,
    Extension(Peer(peer)): Extension<Peer>,
    request: Request,
    next: Next,
) -> Response {
    let (method, path) = (request.method().clone(), request.uri().path().to_string());
    let refuse = |status: StatusCode, why: String| {
        tracing::warn!(%peer, %method, %path, status = status.as_u16(), "admin API refused: {why}");
        let mut answer = Failure(status, why).into_response();
        // A caller who is no admin gets one answer per connection.
        answer.headers_mut().insert(
            axum::http::header::CONNECTION,
            axum::http::HeaderValue::from_static("close"),
        );
        answer
    };
    match &caller {
        Caller::Anonymous => refuse(
            StatusCode::UNAUTHORIZED,
            "no client certificate: present an admin certificate (tnc-server admin issue NAME)"
                .into(),
        ),
        Caller::NotAdmin { subject } => refuse(
            StatusCode::FORBIDDEN,
            format!(
                "{subject} is not an admin certificate (its subject needs CN and one OU, {} or {})",
                api::OU_READ,
                api::OU_WRITE
            ),
        ),
        Caller::Admin { name, role } => {
            let reads = method == Method::GET || method == Method::HEAD;
            if !reads && *role == AdminRole::ReadOnly {
                return refuse(
                    StatusCode::FORBIDDEN,
                    format!(
                        "admin {name} is read-only ({}): {method} {path} needs {}",
                        api::OU_READ,
                        api::OU_WRITE
                    ),
                );
            }
            next.run(request).await
        }
    }
}

/// The admin a request got past [`authorize`] with.
fn admin_name(caller: &Caller) -> &str {
    match caller {
        Caller::Admin { name, .. } => name,
        _ => "?",
    }
}

async fn not_found(request: Request) -> Failure {
    Failure(
        StatusCode::NOT_FOUND,
        format!(
            "no {} {} in the admin API (docs/admin-api.md)",
            request.method(),
            request.uri().path()
        ),
    )
}

#[utoipa::path(
    get,
    path = "/v1/whoami",
    tag = "read",
    summary = "The caller as the PDP sees it",
    responses(
        (status = 200, body = api::WhoAmI),
        Errors,
    )
)]
async fn whoami(Extension(caller): Extension<Caller>) -> Answer<api::WhoAmI> {
    match caller {
        Caller::Admin { name, role } => Ok(Json(api::WhoAmI { name, role })),
        _ => Err(Failure(StatusCode::UNAUTHORIZED, "not an admin".into())),
    }
}

/// A listed device as the API shows it (its verdict in one word:
/// allow, isolate, no-access).
pub fn summary_view(d: &crate::store::DeviceSummary) -> api::Device {
    api::Device {
        device: hex(&d.device_id),
        role: d.role.name().into(),
        ak_name: hex(&d.ak_name),
        last_verdict: d.last_verdict.map(|v| v.label().to_string()),
        last_seen: d.last_seen,
        enrolled_at: d.enrolled_at,
        ima_entries: d.ima_entries,
        tpm_reset_count: d.tpm_reset_count,
        user: d.user.clone(),
        host: d.host.clone(),
        drift: d.drift,
    }
}

/// A device as the API shows it.
pub fn device_view(d: &DeviceRecord) -> api::Device {
    summary_view(&d.into())
}

/// The error answers every operation may give, for the OpenAPI document
/// (the handlers answer with [`Failure`]).
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum Errors {
    /// What was wrong with the request.
    #[response(status = 400)]
    BadRequest(api::ApiError),
    /// No admin certificate.
    #[response(status = 401)]
    NoCertificate(api::ApiError),
    /// A certificate without an admin role, or a read-only admin acting.
    #[response(status = 403)]
    Forbidden(api::ApiError),
    /// The store failed.
    #[response(status = 503)]
    StoreFailed(api::ApiError),
}

/// The device a path names, for the OpenAPI document.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
#[allow(dead_code)]
struct DevicePath {
    /// A device ID (SHA-256 of its EK certificate, hex) or a unique prefix.
    device: String,
}

/// The answer to a device ID that names none, for the OpenAPI document.
#[derive(utoipa::IntoResponses)]
#[allow(dead_code)]
enum NoSuchDevice {
    /// No such device.
    #[response(status = 404)]
    NotFound(api::ApiError),
}

/// `GET /v1/devices` filters; an unknown one is an error.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DeviceFilter {
    /// terminal or vm.
    role: Option<String>,
    /// allow, isolate or no-access (the last verdict).
    verdict: Option<String>,
}

/// A query string's fields, or 400 with what was wrong.
fn query<T>(q: Result<Query<T>, axum::extract::rejection::QueryRejection>) -> Result<T, Failure> {
    q.map(|Query(q)| q)
        .map_err(|e| Failure(StatusCode::BAD_REQUEST, e.body_text()))
}

/// A JSON body, or 400 with what was wrong (serde's words: the unknown
/// field, the line and column).
fn body<T: serde::de::DeserializeOwned>(bytes: &[u8]) -> Result<T, Failure> {
    serde_json::from_slice(bytes).map_err(|e| {
        Failure(
            StatusCode::BAD_REQUEST,
            format!("the request body is not what this action takes: {e}"),
        )
    })
}

#[utoipa::path(
    get,
    path = "/v1/devices",
    tag = "read",
    summary = "Enrolled devices",
    params(DeviceFilter),
    responses(
        (status = 200, body = Vec<api::Device>),
        Errors,
    )
)]
async fn devices(
    State(s): State<AppState>,
    filter: Result<Query<DeviceFilter>, axum::extract::rejection::QueryRejection>,
) -> Answer<Vec<api::Device>> {
    let filter = query(filter)?;
    let role = match &filter.role {
        None => None,
        Some(role) => Some(Role::from_name(role).ok_or_else(|| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("role {role:?}: use terminal or vm"),
            )
        })?),
    };
    // Only a verdict there is: a misspelt one is an error, not an empty list.
    let verdict = match &filter.verdict {
        None => None,
        Some(v) => Some(policy::Verdict::from_name(v).ok_or_else(|| {
            Failure(
                StatusCode::BAD_REQUEST,
                format!("verdict {v:?}: use allow, isolate or no-access"),
            )
        })?),
    };
    let list = s
        .store
        .device_summaries(role, verdict)
        .await?
        .iter()
        .map(summary_view)
        .collect();
    Ok(Json(list))
}

#[utoipa::path(
    get,
    path = "/v1/devices/{device}",
    tag = "read",
    summary = "A device, its newest attestations with their findings and its revoked tickets",
    params(DevicePath),
    responses(
        (status = 200, body = api::DeviceDetail),
        NoSuchDevice,
        Errors,
    )
)]
async fn device(State(s): State<AppState>, Path(id): Path<String>) -> Answer<api::DeviceDetail> {
    Ok(Json(device_detail(&s.store, &id).await?))
}

/// A device (by ID or unique prefix), its newest attestations and its
/// revoked tickets, as the API and `device show` give them.
pub async fn device_detail(store: &Store, id: &str) -> Result<api::DeviceDetail, FindDevice> {
    let d = store.find_device(id).await?;
    let attestations = store
        .attestations(&d.device_id, RECENT_ATTESTATIONS)
        .await?;
    let revocations = store.revocations_of(&d.device_id).await?;
    Ok(api::DeviceDetail {
        device: device_view(&d),
        attestations,
        revocations,
    })
}

#[utoipa::path(
    post,
    path = "/v1/devices/{device}/reassess",
    tag = "actions",
    summary = "Asks every PDP on the store to re-assess the device's open session",
    params(DevicePath),
    responses(
        (status = 200, body = api::ActionResult),
        NoSuchDevice,
        Errors,
    )
)]
async fn reassess_one(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Answer<api::ActionResult> {
    let d = s.store.find_device(&id).await?;
    let by = format!("by admin {}", admin_name(&caller));
    s.store
        .request_reassessment_audited(Some(&d.device_id), s.ctx.now(), &by)
        .await?;
    let device = hex(&d.device_id);
    tracing::info!(admin = admin_name(&caller), %device, "admin API: re-assessment requested");
    Ok(Json(api::ActionResult::ReassessRequested {
        device: Some(device),
    }))
}

#[utoipa::path(
    post,
    path = "/v1/reassess",
    tag = "actions",
    summary = "Asks every PDP on the store to re-assess every open session",
    responses(
        (status = 200, body = api::ActionResult),
        Errors,
    )
)]
async fn reassess_all(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
) -> Answer<api::ActionResult> {
    let by = format!("by admin {}: every open session", admin_name(&caller));
    s.store
        .request_reassessment_audited(None, s.ctx.now(), &by)
        .await?;
    tracing::info!(
        admin = admin_name(&caller),
        "admin API: re-assessment of every open session requested"
    );
    Ok(Json(api::ActionResult::ReassessRequested { device: None }))
}

#[utoipa::path(
    post,
    path = "/v1/devices/{device}/revoke",
    tag = "actions",
    summary = "Revokes the device's unexpired tickets (pushed to gateways and VMs)",
    params(DevicePath),
    request_body = api::RevokeRequest,
    responses(
        (status = 200, body = api::ActionResult),
        NoSuchDevice,
        Errors,
    )
)]
async fn revoke(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
    bytes: axum::body::Bytes,
) -> Answer<api::ActionResult> {
    let request: api::RevokeRequest = body(&bytes)?;
    if request.reason.trim().is_empty() {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            "reason is empty: say why, for the audit log and the subscribers".into(),
        ));
    }
    let d = s.store.find_device(&id).await?;
    let reason = format!("{} (admin {})", request.reason, admin_name(&caller));
    let tickets = s
        .store
        .revoke_device(&d.device_id, s.ctx.now(), &reason)
        .await?;
    // This PDP's subscribers hear of it now, not at the next poll.
    s.ctx.revoked.notify_one();
    let device = hex(&d.device_id);
    tracing::info!(admin = admin_name(&caller), %device, tickets, reason = %request.reason, "admin API: device revoked");
    Ok(Json(api::ActionResult::Revoked { device, tickets }))
}

#[utoipa::path(
    post,
    path = "/v1/devices/{device}/forget",
    tag = "actions",
    summary = "Forgets the device: its next login enrolls its AK again",
    params(DevicePath),
    responses(
        (status = 200, body = api::ActionResult),
        NoSuchDevice,
        Errors,
    )
)]
async fn forget(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(id): Path<String>,
) -> Answer<api::ActionResult> {
    let d = s.store.find_device(&id).await?;
    let by = format!("by admin {}", admin_name(&caller));
    let device = hex(&d.device_id);
    if !s
        .store
        .forget_device_audited(&d.device_id, s.ctx.now(), &by)
        .await?
    {
        return Err(Failure(
            StatusCode::NOT_FOUND,
            format!("device {device} was forgotten meanwhile"),
        ));
    }
    tracing::info!(admin = admin_name(&caller), %device, "admin API: device forgotten");
    Ok(Json(api::ActionResult::Forgotten { device }))
}

/// `GET /v1/revocations` pages.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct Page {
    /// Entries numbered after this one (default 0: from the first).
    #[serde(default)]
    after: i64,
    /// At most this many (default and most: 1000).
    limit: Option<i64>,
}

/// `GET /v1/audit` pages: a [`Page`] and a subject.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct AuditPage {
    /// Entries numbered after this one (default 0: from the first).
    #[serde(default)]
    after: i64,
    /// At most this many (default and most: 1000).
    limit: Option<i64>,
    /// Only entries about this subject (a device ID, a user name).
    subject: Option<String>,
}

/// A page's `limit`: default and most [`MAX_PAGE`], or 400.
fn page_limit(limit: Option<i64>) -> Result<i64, Failure> {
    match limit {
        None => Ok(MAX_PAGE),
        Some(n) if (1..=MAX_PAGE).contains(&n) => Ok(n),
        Some(n) => Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("limit {n}: from 1 to {MAX_PAGE}"),
        )),
    }
}

/// `GET /v1/credentials` filters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct CredentialFilter {
    /// One device's (ID or unique prefix).
    device: Option<String>,
    /// Only those neither expired nor revoked.
    #[serde(default)]
    active: bool,
    /// At most this many, newest first (default and most: 1000).
    limit: Option<i64>,
}

#[utoipa::path(
    get,
    path = "/v1/sessions",
    tag = "read",
    summary = "The PB-TNC sessions open on this PDP, oldest first",
    responses(
        (status = 200, body = Vec<api::Session>),
        Errors,
    )
)]
async fn sessions(State(s): State<AppState>) -> Answer<Vec<api::Session>> {
    Ok(Json(s.events.open_sessions()))
}

#[utoipa::path(
    get,
    path = "/v1/credentials",
    tag = "read",
    summary = "Credentials issued on allow, newest first, with their revocation",
    params(CredentialFilter),
    responses(
        (status = 200, body = Vec<api::Credential>),
        NoSuchDevice,
        Errors,
    )
)]
async fn credentials(
    State(s): State<AppState>,
    filter: Result<Query<CredentialFilter>, axum::extract::rejection::QueryRejection>,
) -> Answer<Vec<api::Credential>> {
    let f = query(filter)?;
    let limit = page_limit(f.limit)?;
    let device = match &f.device {
        Some(prefix) => Some(s.store.find_device(prefix).await?.device_id),
        None => None,
    };
    let list = s
        .store
        .credential_list(device.as_ref(), f.active.then(|| s.ctx.now()), limit)
        .await?;
    Ok(Json(list))
}

#[utoipa::path(
    get,
    path = "/v1/pairings",
    tag = "read",
    summary = "The VMs serving channels through this PDP and the latest pairings (never their keys)",
    responses(
        (status = 200, body = api::Pairings),
        Errors,
    )
)]
async fn pairings(State(s): State<AppState>) -> Answer<api::Pairings> {
    Ok(Json(s.ctx.pairings.listing()))
}

#[utoipa::path(
    get,
    path = "/v1/revocations",
    tag = "read",
    summary = "Revoked tickets in the order of the revocation log",
    params(Page),
    responses(
        (status = 200, body = Vec<api::Revocation>),
        Errors,
    )
)]
async fn revocations(
    State(s): State<AppState>,
    page: Result<Query<Page>, axum::extract::rejection::QueryRejection>,
) -> Answer<Vec<api::Revocation>> {
    let page = query(page)?;
    let list = s
        .store
        .revocations_after(page.after, page_limit(page.limit)?)
        .await?;
    Ok(Json(list))
}

#[utoipa::path(
    get,
    path = "/v1/audit",
    tag = "read",
    summary = "Audit log entries in order",
    params(AuditPage),
    responses(
        (status = 200, body = Vec<api::AuditEntry>),
        Errors,
    )
)]
async fn audit(
    State(s): State<AppState>,
    page: Result<Query<AuditPage>, axum::extract::rejection::QueryRejection>,
) -> Answer<Vec<api::AuditEntry>> {
    let page = query(page)?;
    let list = s
        .store
        .audit_after(page.after, page_limit(page.limit)?, page.subject.as_deref())
        .await?;
    Ok(Json(list))
}

#[utoipa::path(
    get,
    path = "/v1/policies",
    tag = "read",
    summary = "Each role's current reference values",
    responses(
        (status = 200, body = Vec<api::PolicyVersion>),
        Errors,
    )
)]
async fn policies(State(s): State<AppState>) -> Answer<Vec<api::PolicyVersion>> {
    Ok(Json(policy_versions(&s.store).await?))
}

/// Each role's current policy version, as the API and `policy list` give
/// them.
pub async fn policy_versions(store: &Store) -> Result<Vec<api::PolicyVersion>, StoreError> {
    Ok(store
        .policy_list()
        .await?
        .into_iter()
        .map(|(role, version, sha256, loaded_at)| api::PolicyVersion {
            role: role.name().into(),
            version,
            sha256,
            loaded_at,
        })
        .collect())
}

#[utoipa::path(
    post,
    path = "/v1/policies/{role}",
    tag = "actions",
    summary = "Records reference values (TOML) as the role's new version",
    params(("role" = String, Path, description = "terminal or vm")),
    request_body = api::PolicyLoad,
    responses(
        (status = 200, body = api::ActionResult),
        Errors,
    )
)]
async fn load_policy(
    State(s): State<AppState>,
    Extension(caller): Extension<Caller>,
    Path(role): Path<String>,
    bytes: axum::body::Bytes,
) -> Answer<api::ActionResult> {
    let Some(r) = Role::from_name(&role) else {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("role {role:?}: use terminal or vm"),
        ));
    };
    let request: api::PolicyLoad = body(&bytes)?;
    // Checked as the PDP will use it before it is recorded.
    if let Err(e) = policy::reference::ReferenceValues::from_toml(&request.reference_values)
        .and_then(|v| v.compile())
    {
        return Err(Failure(
            StatusCode::BAD_REQUEST,
            format!("reference_values: {e}"),
        ));
    }
    let by = format!("admin {}", admin_name(&caller));
    let version = s
        .store
        .load_policy_by(r, &request.reference_values, s.ctx.now(), Some(&by))
        .await?;
    let detail = match version {
        Some(v) => format!("version {v} recorded"),
        None => "the current version already: nothing recorded".into(),
    };
    tracing::info!(admin = admin_name(&caller), role = r.name(), %detail, "admin API: policy load");
    Ok(Json(api::ActionResult::PolicyLoaded {
        role: r.name().into(),
        version,
    }))
}

/// Server-sent events: each session event as one `data:` line of JSON (the
/// object's `event` field names it); `lagged` when this stream fell behind
/// and missed some; a comment every 15 s keeps proxies from closing it.
#[utoipa::path(
    get,
    path = "/v1/events",
    tag = "read",
    summary = "Session events as server-sent events: one JSON object per data line, tagged by its event field (opened, decided, failed, closed, reassessed); event: lagged with the number missed",
    responses(
        (status = 200, content_type = "text/event-stream", body = String),
        Errors,
    )
)]
async fn events(
    State(s): State<AppState>,
) -> Result<Sse<impl futures_util::Stream<Item = Result<Event, std::convert::Infallible>>>, Failure>
{
    use tokio::sync::broadcast::error::RecvError;
    let Ok(slot) = s.streams.clone().try_acquire_owned() else {
        return Err(Failure(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("{MAX_STREAMS} event streams are open already"),
        ));
    };
    let rx = s.events.subscribe();
    // The slot lives as long as the stream.
    let stream = futures_util::stream::unfold((rx, slot), |(mut rx, slot)| async move {
        let event = match rx.recv().await {
            Ok(e) => match Event::default().json_data(&e) {
                Ok(ev) => ev,
                Err(_) => Event::default().event("error").data("unserializable event"),
            },
            Err(RecvError::Lagged(n)) => Event::default().event("lagged").data(n.to_string()),
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), (rx, slot)))
    });
    Ok(Sse::new(stream).keep_alive(KeepAlive::new().interval(Duration::from_secs(15))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(ous: &[&str], cn: Option<&str>) -> Vec<u8> {
        let ca = crate::certs::new_ca("test CA").unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        if let Some(cn) = cn {
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
        }
        for ou in ous {
            params
                .distinguished_name
                .push(rcgen::DnType::OrganizationalUnitName, *ou);
        }
        params.signed_by(&key, &ca.0, &ca.1).unwrap().der().to_vec()
    }

    #[test]
    fn the_role_comes_from_exactly_one_admin_ou_and_a_name() {
        assert_eq!(Caller::from_certificate(None), Caller::Anonymous);
        assert_eq!(
            Caller::from_certificate(Some(&certificate(&[api::OU_WRITE], Some("alice")))),
            Caller::Admin {
                name: "alice".into(),
                role: AdminRole::ReadWrite
            }
        );
        assert_eq!(
            Caller::from_certificate(Some(&certificate(&[api::OU_READ], Some("bob")))),
            Caller::Admin {
                name: "bob".into(),
                role: AdminRole::ReadOnly
            }
        );
        // rcgen keeps one OU per subject and always a CN: two OUs, as
        // another CA's tools may write them, and no CN straight to the rule.
        assert!(matches!(
            Caller::from_names(|| "OU=x".into(), None, &[api::OU_WRITE.into()]),
            Caller::NotAdmin { .. }
        ));
        assert_eq!(
            Caller::from_names(
                || "CN=both".into(),
                Some("both".into()),
                &[api::OU_READ.into(), api::OU_WRITE.into()]
            ),
            Caller::NotAdmin {
                subject: "CN=both".into()
            }
        );
        assert_eq!(
            Caller::from_names(
                || "CN=carol".into(),
                Some("carol".into()),
                &["ops".into(), api::OU_READ.into()]
            ),
            Caller::Admin {
                name: "carol".into(),
                role: AdminRole::ReadOnly
            }
        );
        for (ous, cn) in [
            (&["gateway"][..], Some("gw-1")),
            (&[][..], Some("device-1")),
            (&[api::OU_WRITE][..], Some("")),
        ] {
            assert!(
                matches!(
                    Caller::from_certificate(Some(&certificate(ous, cn))),
                    Caller::NotAdmin { .. }
                ),
                "{ous:?} {cn:?}"
            );
        }
        assert!(matches!(
            Caller::from_certificate(Some(b"not a certificate")),
            Caller::NotAdmin { .. }
        ));
    }
}
