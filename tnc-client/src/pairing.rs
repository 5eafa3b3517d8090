//! The two ends of a pairing (issue 12, items 2-4), as `tnc-client serve`
//! and `connect` run them and `testnet` drives them:
//!
//! - [`serve`]: a VM attests asking for its channel certificate and saying
//!   where it serves; once allowed, its PT-TLS session to the PDP stays
//!   open (the control session) and each pairing the PDP delivers on it
//!   goes to the channel [`Server`], which accepts only paired terminals.
//! - [`connect`]: a terminal attests asking for a pairing with a VM (and
//!   for credentials when it holds none valid), then opens the channel with
//!   the pairing it got.

use crate::agent::{login_quic_with, login_with, Agent, AgentError, Control, Credential, Outcome};
use crate::channel::ChannelKey;
use crate::tunnel::{ChannelIdentity, Server, TunnelError};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tnc_proto::credential::{Grant, Pairing, PairingRequest, Serving};
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tokio::io::{AsyncRead, AsyncWrite};

/// Where the PDP is and how to reach it.
#[derive(Clone)]
pub struct Pdp {
    pub addr: SocketAddr,
    /// The name its certificate must carry.
    pub server_name: String,
    pub tls: Arc<rustls::ClientConfig>,
    /// Over QUIC (`transport = "quic"`) rather than TCP.
    pub quic: bool,
}

impl std::fmt::Debug for Pdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pdp")
            .field("addr", &self.addr)
            .field("server_name", &self.server_name)
            .field("quic", &self.quic)
            .finish_non_exhaustive()
    }
}

/// Why a pairing flow stopped.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    #[error("no decision: {0}")]
    NoDecision(String),
    #[error("the verdict is {}{}", .0.verdict_name(), .0.reason.as_deref().map(|r| format!(" ({r})")).unwrap_or_default())]
    NotAllowed(Box<Outcome>),
    #[error("no channel certificate: {0}")]
    NoCredentials(String),
    #[error("no pairing with {vm}: {why}")]
    NoPairing { vm: String, why: String },
    #[error("{0}")]
    Channel(#[from] TunnelError),
    #[error("{0}")]
    Local(String),
}

impl Failure {
    /// The CLI's exit status: 3 isolate, 4 no access, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            Failure::NotAllowed(o) if o.verdict_name() == "isolate" => 3,
            Failure::NotAllowed(o) if o.verdict_name() == "no access" => 4,
            _ => 1,
        }
    }
}

/// An integrity session kept open after its first decision: the PDP
/// re-assesses the endpoint on it (SRETRY). With failover, a session whose
/// PDP goes away (or closes it while the endpoint is allowed) goes on with
/// the next PDP in the list: a new integrity handshake there, reported as a
/// re-assessment. Dropped, it ends.
pub struct KeptSession {
    task: tokio::task::JoinHandle<Result<Outcome, AgentError>>,
    decisions: tokio::sync::mpsc::UnboundedReceiver<Outcome>,
}

impl KeptSession {
    /// Runs `agent`'s session with the first of `pdps` in a task, kept open
    /// after an allow; the first decision, within `deadline`, and the
    /// session. With `failover`, the other PDPs are tried in turn for the
    /// first decision and whenever the session is lost.
    pub async fn open(
        pdps: &[Pdp],
        agent: Agent,
        credentials: Option<PlainCredentials>,
        deadline: Duration,
        pairings: Option<tokio::sync::mpsc::UnboundedSender<Pairing>>,
        failover: bool,
    ) -> Result<(Outcome, Self), Failure> {
        if pdps.is_empty() {
            return Err(Failure::Local("no PDP to reach".into()));
        }
        let (decisions_tx, decisions) = tokio::sync::mpsc::unbounded_channel();
        let pairings = pairings.unwrap_or_else(|| tokio::sync::mpsc::unbounded_channel().0);
        // Each PDP gets its share of the deadline for its first decision (a
        // PDP that takes the connection and hangs must not use it all),
        // and as long again whenever the session moves to it later.
        let attempt = (deadline / pdps.len() as u32)
            .max(MIN_ATTEMPT)
            .min(deadline);
        let task = tokio::spawn(keep(
            pdps.to_vec(),
            agent,
            credentials,
            Control {
                decisions: decisions_tx,
                pairings,
            },
            failover,
            attempt,
        ));
        let mut kept = Self { task, decisions };
        let first = tokio::select! {
            o = kept.decisions.recv() => o,
            _ = tokio::time::sleep(deadline) => None,
        };
        match first {
            Some(o) => Ok((o, kept)),
            None => {
                kept.task.abort();
                Err(match (&mut kept.task).await {
                    Ok(Err(e)) => no_decision(e),
                    _ => Failure::NoDecision(format!("none within {} s", deadline.as_secs())),
                })
            }
        }
    }

    /// The next re-assessment's decision; None once the session ended.
    pub async fn reassessed(&mut self) -> Option<Outcome> {
        self.decisions.recv().await
    }

    /// Waits for the session to end; why it did.
    pub async fn ended(&mut self) -> String {
        match (&mut self.task).await {
            Ok(Ok(_)) => "the PDP closed it".to_string(),
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        }
    }

    /// Whether the session has ended.
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Ends the session now.
    pub fn abort(&self) {
        self.task.abort();
    }
}

/// The kept session's task: sessions with the PDPs in turn (see
/// [`KeptSession`]) until one ends with a decision that is not allow, or
/// one ends and there is no failover, or none of them decides at first.
async fn keep(
    pdps: Vec<Pdp>,
    mut agent: Agent,
    credentials: Option<PlainCredentials>,
    control: Control,
    failover: bool,
    attempt: Duration,
) -> Result<Outcome, AgentError> {
    agent.stay = true;
    let mut at = 0usize;
    let mut ever_decided = false;
    let mut backoff = Duration::from_millis(500);
    let mut barren_turns = 0u32;
    loop {
        let pdp = &pdps[at % pdps.len()];
        let before = agent.decisions();
        let result = {
            // Decisions pass through here on their way out, so that an
            // attempt without one within `attempt` is given up.
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let kept = Some(Control {
                decisions: tx,
                pairings: control.pairings.clone(),
            });
            let (addr, name, tls) = (pdp.addr, &pdp.server_name, pdp.tls.clone());
            let (this, credentials) = (&mut agent, credentials.clone());
            let login = async move {
                if pdp.quic {
                    login_quic_with(addr, name, tls, this, credentials, kept).await
                } else {
                    login_with(addr, name, tls, this, credentials, kept).await
                }
            };
            tokio::pin!(login);
            let first_by = tokio::time::Instant::now() + attempt;
            let mut decided_here = false;
            let result = loop {
                tokio::select! {
                    r = &mut login => break r,
                    Some(o) = rx.recv() => {
                        decided_here = true;
                        let _ = control.decisions.send(o);
                    }
                    () = tokio::time::sleep_until(first_by), if !decided_here => {
                        break Err(AgentError::NoDecisionWithin(attempt.as_secs()));
                    }
                }
            };
            while let Ok(o) = rx.try_recv() {
                let _ = control.decisions.send(o);
            }
            result
        };
        let decided = agent.decisions() > before;
        ever_decided |= decided;
        if let Ok(o) = &result {
            if !o.allowed() {
                return result;
            }
        }
        let tried_all = at + 1 >= pdps.len();
        if !failover || (!ever_decided && tried_all) {
            return result;
        }
        let why = match &result {
            Ok(_) => "the PDP closed it".to_string(),
            Err(e) => e.to_string(),
        };
        at += 1;
        let next = &pdps[at % pdps.len()];
        tracing::warn!(
            lost = %pdp.addr,
            %why,
            next = %next.addr,
            "integrity session lost: going on with the next PDP"
        );
        if decided {
            backoff = Duration::from_millis(500);
            barren_turns = 0;
        } else if at.is_multiple_of(pdps.len()) {
            // A whole turn without a decision: wait longer each turn, and
            // give up after MAX_BARREN_TURNS of them.
            barren_turns += 1;
            if barren_turns >= MAX_BARREN_TURNS {
                return result;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
        // A new session. Once a PDP decided, what the first one asked
        // (credentials, a pairing) is not asked again; before that, it is.
        let asked = (
            agent.key_request.clone(),
            agent.pairing_request.clone(),
            agent.serving.clone(),
        );
        let os = agent.os.clone();
        agent = Agent::with_collector(os, agent.into_collector());
        agent.stay = true;
        if !ever_decided {
            (agent.key_request, agent.pairing_request, agent.serving) = asked;
        }
    }
}

/// Whole turns through its PDPs without a decision after which a kept
/// session gives up (with the backoff, about a minute).
const MAX_BARREN_TURNS: u32 = 12;

/// The least time a PDP is given for its first decision on a kept session.
const MIN_ATTEMPT: Duration = Duration::from_secs(5);

impl Drop for KeptSession {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn no_decision(e: AgentError) -> Failure {
    Failure::NoDecision(e.to_string())
}

fn granted(outcome: &Outcome) -> Result<Grant, Failure> {
    match &outcome.credential {
        Some(Credential::Granted(g)) => Ok(g.clone()),
        Some(Credential::Refused(r)) => Err(Failure::NoCredentials(r.clone())),
        None => Err(Failure::NoCredentials("the PDP sent none".into())),
    }
}

/// A VM serving channels.
pub struct Serve {
    /// The decision that let it serve.
    pub outcome: Outcome,
    /// Its channel certificate, the session CA and its ticket.
    pub grant: Grant,
    /// The channel server; run it on a listener.
    pub server: Arc<Server>,
    /// The control session: re-assessed by the PDP; ends when the PDP or
    /// the transport ends it.
    pub control: KeptSession,
    /// The name the VM serves under: its certificate's DNS name.
    pub name: String,
    /// What the VM knows of revocations, when it subscribes.
    pub revoked: Option<Arc<tnc_gateway::revocation::Revoked>>,
    /// The subscription's news, for the log.
    pub notices: Option<tokio::sync::mpsc::UnboundedReceiver<tnc_gateway::revocation::Notice>>,
}

/// Where a VM serves channels: the addresses terminals reach.
#[derive(Clone, Debug)]
pub struct Advertise {
    pub tcp: String,
    pub quic: Option<String>,
}

/// How a VM serves.
#[derive(Clone, Debug)]
pub struct ServeOptions {
    /// Its name; None: the one the PDP puts in its certificate. Given, it
    /// must be that one.
    pub name: Option<String>,
    /// Where terminals reach it.
    pub advertise: Advertise,
    /// The user, when the PDP authenticates users.
    pub credentials: Option<PlainCredentials>,
    /// For the first decision.
    pub deadline: Duration,
    /// Where it subscribes to revocations, if it does.
    pub revocations: Option<RevocationsAt>,
}

impl ServeOptions {
    /// At `advertise`, named by the PDP, no user, a 60 s deadline, no
    /// revocations.
    pub fn new(advertise: Advertise) -> Self {
        Self {
            name: None,
            advertise,
            credentials: None,
            deadline: Duration::from_secs(60),
            revocations: None,
        }
    }
}

/// Where a serving VM subscribes to revocations.
#[derive(Clone, Debug)]
pub struct RevocationsAt {
    pub addr: SocketAddr,
    /// The name on the PDP's revocation listener certificate.
    pub server_name: String,
}

/// Attests `agent` as a VM serving at `advertise`, with `key` as its
/// channel key; once allowed and certified, the channel server with the
/// control session feeding it pairings. The VM's name is the DNS name the
/// PDP put in its certificate (`[ca] vm_names`); `name`, if given, must be
/// that one. Waits `deadline` for the decision.
pub async fn serve(
    pdp: &Pdp,
    mut agent: Agent,
    key: ChannelKey,
    options: ServeOptions,
) -> Result<Serve, Failure> {
    let ServeOptions {
        name,
        advertise,
        credentials,
        deadline,
        revocations,
    } = options;
    let name = name.as_deref();
    agent.key_request = Some(
        key.request("tnc channel key")
            .map_err(|e| Failure::Local(e.to_string()))?,
    );
    agent.serving = Some(Serving {
        address: advertise.tcp.clone(),
        quic_address: advertise.quic.clone(),
    });
    let (pairings_tx, mut pairings) = tokio::sync::mpsc::unbounded_channel();
    // No failover for a VM: its registration for pairings (and the
    // certificate terminals are told to expect) belongs to this session.
    let (outcome, control) = KeptSession::open(
        std::slice::from_ref(pdp),
        agent,
        credentials,
        deadline,
        Some(pairings_tx),
        false,
    )
    .await?;
    if !outcome.allowed() {
        return Err(Failure::NotAllowed(Box::new(outcome)));
    }
    let grant = granted(&outcome)?;
    let named = pki::ca::describe(&grant.certificate)
        .map(|i| i.dns_names)
        .unwrap_or_default();
    let name =
        match (name, named.first()) {
            (Some(n), _) if named.iter().any(|d| d == n) => n.to_string(),
            (Some(n), _) => {
                return Err(Failure::NoCredentials(format!(
            "the certificate names this VM {named:?}, not {n:?} (--name; the PDP's [ca] vm_names)"
        )))
            }
            (None, Some(d)) => d.clone(),
            (None, None) => return Err(Failure::NoCredentials(
                "the certificate names no VM: the PDP's [ca] vm_names has no name for this device"
                    .into(),
            )),
        };
    let me = ChannelIdentity {
        grant: grant.clone(),
        key: key.into_signer(),
    };
    let mut server = Server::new(&me, &name)?;
    let mut notices = None;
    let revoked = match revocations {
        None => None,
        Some(at) => {
            let set = tnc_gateway::revocation::Revoked::new();
            let sub = tnc_gateway::revocation::Subscription::new(
                at.addr,
                &at.server_name,
                &grant.ca,
                me.tls_key()?,
            )
            .map_err(Failure::Local)?;
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
            notices = Some(rx);
            tokio::spawn(tnc_gateway::revocation::subscribe(
                sub,
                set.clone(),
                Some(tx),
            ));
            server = server.with_revocations(set.clone());
            Some(set)
        }
    };
    let server = Arc::new(server);
    let feeder = server.clone();
    tokio::spawn(async move {
        while let Some(p) = pairings.recv().await {
            if !feeder.add_pairing(p, unix_now()) {
                eprintln!("tnc-client serve: too many pairings waiting: one dropped");
            }
        }
    });
    Ok(Serve {
        outcome,
        grant,
        server,
        control,
        name,
        revoked,
        notices,
    })
}

/// A channel a terminal opened.
pub struct Opened<S> {
    pub stream: S,
    /// The decision on the terminal in this handshake.
    pub outcome: Outcome,
    /// Credentials granted in this handshake (to keep), if it asked.
    pub fresh: Option<Grant>,
    pub pairing: Pairing,
    /// Where the channel went.
    pub address: SocketAddr,
    /// The integrity handshake with the PDP (TPM time included).
    pub handshake: Duration,
    /// The channel: TCP, ShangMi TLS, ticket and pairing proofs.
    pub channel: Duration,
    /// The integrity session, open for re-assessments while the channel
    /// lives.
    pub session: KeptSession,
}

/// How a terminal reaches the VM.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Transport {
    #[default]
    Tcp,
    Quic,
}

/// The channel over either transport (and through the gateway over QUIC).
pub enum Channel {
    Tcp(Box<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>),
    Quic(Box<crate::tunnel::QuicChannel>),
    ViaQuic(Box<crate::tunnel::ViaQuic>),
}

impl AsyncRead for Channel {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Channel::Tcp(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            Channel::Quic(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
            Channel::ViaQuic(s) => std::pin::Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Channel {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        match self.get_mut() {
            Channel::Tcp(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
            Channel::Quic(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
            Channel::ViaQuic(s) => std::pin::Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Channel::Tcp(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            Channel::Quic(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
            Channel::ViaQuic(s) => std::pin::Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        match self.get_mut() {
            Channel::Tcp(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            Channel::Quic(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
            Channel::ViaQuic(s) => std::pin::Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

/// What a terminal asks for and how it reaches the VM.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// The VM's name.
    pub vm: String,
    /// Credentials still valid (their ticket is presented); None: ask for
    /// new ones.
    pub held: Option<Grant>,
    /// Where the VM is, instead of the address the pairing names.
    pub to: Option<SocketAddr>,
    /// Through the network access gateway here: the gateway admits the
    /// connection on the ticket and relays it to the address it knows for
    /// the VM. Over TCP, or over QUIC (then `via_name` is the name on the
    /// gateway's certificate).
    pub via: Option<SocketAddr>,
    pub via_name: Option<String>,
    pub transport: Transport,
    /// The user, when the PDP authenticates users.
    pub credentials: Option<PlainCredentials>,
    /// For the integrity handshake.
    pub deadline: Duration,
    /// Further PDPs for the kept integrity session (failover).
    pub failover: Vec<Pdp>,
    /// To open the channel once paired (the VM's TLS, through the gateway
    /// if any): [`crate::tunnel::CHANNEL_TIMEOUT`] by default.
    pub channel_timeout: Duration,
}

impl ConnectOptions {
    /// `vm` over TCP at the address the pairing names, asking for new
    /// credentials, no user, a 60 s handshake deadline.
    pub fn new(vm: &str) -> Self {
        Self {
            vm: vm.to_string(),
            held: None,
            to: None,
            via: None,
            via_name: None,
            transport: Transport::Tcp,
            credentials: None,
            deadline: Duration::from_secs(60),
            failover: Vec::new(),
            channel_timeout: crate::tunnel::CHANNEL_TIMEOUT,
        }
    }
}

/// Attests `agent` asking for a pairing with `options.vm` (presenting the
/// held credentials' ticket, else asking for new ones for `key`), then
/// opens the channel over `options.transport` to `options.to`, or to the
/// address the pairing names.
pub async fn connect(
    pdp: &Pdp,
    mut agent: Agent,
    key: ChannelKey,
    options: ConnectOptions,
) -> Result<Opened<Channel>, Failure> {
    let ConnectOptions {
        vm,
        held,
        to,
        via,
        via_name,
        transport,
        credentials,
        deadline,
        failover,
        channel_timeout,
    } = options;
    if via.is_some() && transport == Transport::Quic && via_name.is_none() {
        return Err(Failure::Local(
            "through a gateway over QUIC, give the gateway's name (--via-name, as it enrolled)"
                .into(),
        ));
    }
    let vm = vm.as_str();
    // Credentials for another key (the key moved into the TPM, say) are
    // not used: new ones are asked for.
    let held = held.filter(|g| key.matches(g));
    if held.is_none() {
        agent.key_request = Some(
            key.request("tnc channel key")
                .map_err(|e| Failure::Local(e.to_string()))?,
        );
    }
    agent.pairing_request = Some(PairingRequest {
        vm: vm.to_string(),
        ticket: held.as_ref().map(|g| g.ticket.clone()),
    });
    let started = Instant::now();
    // The session stays open while the channel lives: the PDP re-assesses
    // the terminal on it.
    let mut pdps = vec![pdp.clone()];
    pdps.extend(failover);
    let (outcome, session) =
        KeptSession::open(&pdps, agent, credentials, deadline, None, true).await?;
    let handshake = started.elapsed();
    if !outcome.allowed() {
        return Err(Failure::NotAllowed(Box::new(outcome)));
    }
    let fresh = match held {
        Some(_) => None,
        None => Some(granted(&outcome)?),
    };
    let grant = match (&fresh, held) {
        (Some(g), _) => g.clone(),
        (None, Some(g)) => g,
        (None, None) => return Err(Failure::NoCredentials("none held or granted".into())),
    };
    let pairing = match outcome.pairing.clone() {
        Some(Ok(p)) => p,
        Some(Err(why)) => return Err(Failure::NoPairing { vm: vm.into(), why }),
        None => {
            return Err(Failure::NoPairing {
                vm: vm.into(),
                why: "the PDP did not answer the request".into(),
            })
        }
    };
    let named = match transport {
        Transport::Tcp => pairing.address.as_deref(),
        Transport::Quic => pairing.quic_address.as_deref(),
    };
    let address = match (via, to) {
        (Some(gateway), _) => gateway,
        (None, Some(a)) => a,
        (None, None) => named
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| Failure::NoPairing {
                vm: vm.into(),
                why: match transport {
                    Transport::Tcp => "the PDP gave no address for it: give --to".into(),
                    Transport::Quic => {
                        "it serves no QUIC address (serve --quic-listen), or give --to".into()
                    }
                },
            })?,
    };
    let me = ChannelIdentity {
        grant,
        key: key.into_signer(),
    };
    let opened = Instant::now();
    let channel = async {
        Ok::<_, Failure>(match (transport, via) {
            (Transport::Tcp, Some(gateway)) => {
                let mut tcp = tokio::net::TcpStream::connect(gateway)
                    .await
                    .map_err(|e| Failure::Channel(e.into()))?;
                let _ = tcp.set_nodelay(true);
                crate::tunnel::through_gateway(&mut tcp, vm, &me.grant.ticket).await?;
                Channel::Tcp(Box::new(
                    crate::tunnel::connect_on(&me, tcp, vm, &pairing).await?,
                ))
            }
            (Transport::Tcp, None) => Channel::Tcp(Box::new(
                crate::tunnel::connect(&me, address, vm, &pairing).await?,
            )),
            (Transport::Quic, Some(gateway)) => Channel::ViaQuic(Box::new(
                crate::tunnel::connect_quic_via(
                    &me,
                    gateway,
                    via_name.as_deref().unwrap_or_default(),
                    vm,
                    &pairing,
                )
                .await?,
            )),
            (Transport::Quic, None) => Channel::Quic(Box::new(
                crate::tunnel::connect_quic(&me, address, vm, &pairing).await?,
            )),
        })
    };
    // A VM or gateway that takes the connection and then says nothing
    // would hold the terminal forever.
    let stream = tokio::time::timeout(channel_timeout, channel)
        .await
        .map_err(|_| {
            Failure::Channel(crate::tunnel::TunnelError::Timeout(
                channel_timeout.as_secs(),
            ))
        })??;
    Ok(Opened {
        stream,
        outcome,
        fresh,
        pairing,
        address,
        handshake,
        channel: opened.elapsed(),
        session,
    })
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}
