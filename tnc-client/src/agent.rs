//! The login agent's session: PT-TLS over an established TLS stream, then
//! PB-TNC as the Posture Broker Client with two collectors: the OS collector
//! (IETF attributes, RFC 5792 §4.2) and the attestation collector.
//!
//! RFC 5793 §3.2 from the client's side: the first CDATA volunteers what the
//! collectors have; every SDATA is answered with a CDATA (empty if nobody has
//! anything to say); RESULT carries the decision, which the client acknowledges
//! with CLOSE.

use crate::attest::AttestationCollector;
use crate::os::OsFacts;
use tnc_proto::attestation::{self, AttestationAttribute, AttestationResult};
use tnc_proto::common::{AssessmentResult, Remediation};
use tnc_proto::credential::{self, CredentialAttribute};
use tnc_proto::pa_tnc::{ietf_attr, Attribute, AttributeId, PaMessage, PaMessageWriter, PaSubtype};
use tnc_proto::pb_tnc::{
    AccessRecommendation, BatchType, PbMessage, PbPa, PbSession, Side, ID_ANY,
};
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tnc_proto::pt_tls::{self, ClientConnection, Event};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Our collector IDs (RFC 5793 §4.5).
pub const OS_IMC_ID: u16 = 1;
pub const ATTESTATION_IMC_ID: u16 = 2;
pub const CREDENTIAL_IMC_ID: u16 = 3;

/// What the PDP answered to the key request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Credential {
    /// The certificate for the channel key, its CA and the access ticket.
    Granted(tnc_proto::credential::Grant),
    /// None, and why.
    Refused(String),
}

/// What the PDP decided.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    pub recommendation: Option<AccessRecommendation>,
    pub assessment: Option<AssessmentResult>,
    pub reason: Option<String>,
    pub remediation: Option<String>,
    pub attestation: Option<AttestationResult>,
    /// When the RESULT batch arrived (the handshake's latency ends here; the
    /// transport's close comes after).
    pub decided_at: Option<std::time::Instant>,
    /// The TLS 1.3 cipher suite the session ran over, when the transport
    /// says (TCP; quinn does not report it for QUIC).
    pub tls_suite: Option<String>,
    /// The answer to the key request, if one was sent.
    pub credential: Option<Credential>,
    /// The answer to the pairing request (a terminal's), if one was sent:
    /// the pairing, or why there is none.
    pub pairing: Option<Result<tnc_proto::credential::Pairing, String>>,
    /// The device the PDP appraised (SHA-256 of its EK certificate, hex),
    /// when the collector sent its identity.
    pub device: Option<String>,
    /// A re-assessment: when its SRETRY arrived (the round's latency is
    /// from here to `decided_at`).
    pub round_started: Option<std::time::Instant>,
}

impl Outcome {
    pub fn allowed(&self) -> bool {
        self.recommendation == Some(AccessRecommendation::Allowed)
    }

    /// The PDP's recommendation in the project's words: "allow", "isolate",
    /// "no access", or "none" without a decision.
    pub fn verdict_name(&self) -> &'static str {
        match self.recommendation {
            Some(AccessRecommendation::Allowed) => "allow",
            Some(AccessRecommendation::Quarantined) => "isolate",
            Some(AccessRecommendation::Denied) => "no access",
            None => "none",
        }
    }
}

/// What the login prints: verdict, reason, the attestation validator's
/// findings, remediation.
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "verdict: {}", self.verdict_name())?;
        if let Some(r) = &self.reason {
            writeln!(f, "reason: {r}")?;
        }
        if let Some(a) = &self.attestation {
            writeln!(f, "attestation: {}", a.verdict)?;
            for finding in &a.findings {
                writeln!(f, "  - {finding}")?;
            }
        }
        if let Some(r) = &self.remediation {
            writeln!(f, "remediation: {r}")?;
        }
        if let Some(s) = &self.tls_suite {
            writeln!(f, "channel: TLS 1.3, {s}")?;
        }
        match &self.credential {
            Some(Credential::Granted(g)) => writeln!(
                f,
                "credentials: an SM2 certificate and an access ticket, valid until {} (Unix time)",
                g.expires
            )?,
            Some(Credential::Refused(why)) => writeln!(f, "credentials: none ({why})")?,
            None => {}
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("connection: {0}")]
    Io(#[from] std::io::Error),
    #[error("the PDP's certificate {0}")]
    Certificate(String),
    #[error("PT-TLS: {0}")]
    PtTls(String),
    #[error("PB-TNC: {0}")]
    PbTnc(String),
    #[error("SASL authentication failed ({0})")]
    Authentication(String),
    #[error("the PDP closed the session without a decision")]
    NoDecision,
    #[error("the PDP gave no decision within {0} s")]
    NoDecisionWithin(u64),
}

/// What answers the PDP's attestation validator: [`AttestationCollector`]
/// with the TPM; benchmarks plug in a software stand-in.
pub trait Collector: Send {
    /// The attributes that open an assessment: the Hello (what the
    /// endpoint is) and, from an endpoint with a TPM, its Identity, so the
    /// PDP need not ask for it (or a Failure saying why there is none).
    fn opening(&mut self) -> Vec<AttestationAttribute>;
    /// The PDP's attributes in, the answers out.
    fn receive(&mut self, attrs: Vec<AttestationAttribute>) -> Vec<AttestationAttribute>;
    /// The last verdict the PDP's validator sent.
    fn result(&self) -> Option<AttestationResult>;
    /// The device ID the PDP knows this endpoint by (SHA-256 of its EK
    /// certificate, hex), once the collector sent its identity.
    fn device_id(&self) -> Option<String> {
        None
    }
    /// The decision is in: let go of the TPM (a software TPM serves one
    /// connection at a time, and the channel key signs through it). The
    /// next round opens it again.
    fn release(&mut self) {}
}

impl Collector for AttestationCollector {
    fn opening(&mut self) -> Vec<AttestationAttribute> {
        AttestationCollector::opening(self)
    }
    fn receive(&mut self, attrs: Vec<AttestationAttribute>) -> Vec<AttestationAttribute> {
        AttestationCollector::receive(self, attrs)
    }
    fn result(&self) -> Option<AttestationResult> {
        self.result.clone()
    }
    fn device_id(&self) -> Option<String> {
        self.device_id.clone()
    }
    fn release(&mut self) {
        AttestationCollector::release(self)
    }
}

/// The two collectors and the PB-TNC client state.
pub struct Agent {
    pub os: OsFacts,
    pub attestation: Box<dyn Collector>,
    /// Sent with the first batch: a request for the channel key's certificate.
    pub key_request: Option<tnc_proto::credential::KeyRequest>,
    /// Sent with the first batch: a terminal's request for a pairing.
    pub pairing_request: Option<tnc_proto::credential::PairingRequest>,
    /// Sent with the first batch: a VM serves channels here. The session
    /// then stays open after RESULT, for the pairings the PDP delivers.
    pub serving: Option<tnc_proto::credential::Serving>,
    /// Pairings delivered to this VM and not yet taken by [`Agent::take_pairings`].
    delivered: Vec<tnc_proto::credential::Pairing>,
    /// Pairing ids to acknowledge in the next CDATA.
    to_accept: Vec<Vec<u8>>,
    /// Keep the session open after an allow, for the PDP's re-assessments
    /// (`login --stay`, `connect`); a serving VM always does.
    pub stay: bool,
    /// RESULTs received in this session (the first decision and each
    /// re-assessment's).
    decisions: u32,
    /// When the last SRETRY arrived.
    round_started: Option<std::time::Instant>,
    pb: PbSession,
    next_pa_id: u32,
    outcome: Outcome,
}

impl Agent {
    pub fn new(os: OsFacts, attestation: impl Collector + 'static) -> Self {
        Self::with_collector(os, Box::new(attestation))
    }

    pub fn with_collector(os: OsFacts, attestation: Box<dyn Collector>) -> Self {
        Self {
            os,
            attestation,
            key_request: None,
            pairing_request: None,
            serving: None,
            delivered: Vec::new(),
            to_accept: Vec::new(),
            stay: false,
            decisions: 0,
            round_started: None,
            pb: PbSession::new(Side::Client),
            next_pa_id: 1,
            outcome: Outcome::default(),
        }
    }

    /// The attestation collector back, for the next session.
    pub fn into_collector(self) -> Box<dyn Collector> {
        self.attestation
    }

    fn pa_id(&mut self) -> u32 {
        let id = self.next_pa_id;
        self.next_pa_id += 1;
        id
    }

    /// What the PDP decided so far (complete once RESULT has come).
    pub fn outcome(&self) -> &Outcome {
        &self.outcome
    }

    /// The session stays open after an allow (a serving VM's control
    /// session, or asked for with [`Agent::stay`]).
    pub fn keeps_open(&self) -> bool {
        self.stay || self.serving.is_some()
    }

    /// RESULTs received so far: 1 after the first decision, one more per
    /// re-assessment.
    pub fn decisions(&self) -> u32 {
        self.decisions
    }

    /// The pairings the PDP delivered since the last call.
    pub fn take_pairings(&mut self) -> Vec<tnc_proto::credential::Pairing> {
        std::mem::take(&mut self.delivered)
    }

    /// A credential-pair message with `attrs`.
    fn credential_message(&mut self, attrs: &[CredentialAttribute]) -> Vec<u8> {
        let id = self.pa_id();
        tnc_proto::vendor_message(id, attrs)
    }

    /// The first CDATA: language, OS posture, attestation hello. With
    /// [`Agent::receive`], the PB-TNC client without I/O: `run_session`
    /// drives it over PT-TLS, the PDP's unit tests batch to batch.
    pub fn first_batch(&mut self) -> Result<Vec<u8>, AgentError> {
        self.initial_batch(true, true)
    }

    /// The collectors' opening messages in a CDATA batch; the language
    /// preference only in the session's first batch (RFC 5793 §4.10); the
    /// credential pair's requests (`asks`) not in a re-assessment: they
    /// belong to the first decision.
    fn initial_batch(&mut self, first: bool, asks: bool) -> Result<Vec<u8>, AgentError> {
        let posture = {
            let id = self.pa_id();
            self.os
                .posture()
                .iter()
                .fold(PaMessageWriter::new(id), |w, a| w.attribute(false, a))
                .finish()
        };
        let opening = self.attestation.opening();
        let hello = self.att_message(&opening);
        let asks: Vec<CredentialAttribute> = [
            self.key_request
                .clone()
                .map(CredentialAttribute::KeyRequest),
            self.pairing_request
                .clone()
                .map(CredentialAttribute::PairingRequest),
            self.serving.clone().map(CredentialAttribute::Serving),
        ]
        .into_iter()
        .flatten()
        .filter(|_| asks)
        .chain(self.acceptances())
        .collect();
        let key_request = (!asks.is_empty()).then(|| self.credential_message(&asks));
        let mut messages = Vec::new();
        if first {
            messages.push(PbMessage::LanguagePreference("Accept-Language: en"));
        }
        messages.push(pa(PaSubtype::OPERATING_SYSTEM, OS_IMC_ID, &posture));
        messages.push(pa(attestation::SUBTYPE, ATTESTATION_IMC_ID, &hello));
        if let Some(body) = &key_request {
            messages.push(pa(credential::SUBTYPE, CREDENTIAL_IMC_ID, body));
        }
        self.pb
            .send(BatchType::CData, messages)
            .map_err(|e| AgentError::PbTnc(e.to_string()))
    }

    fn att_message(&mut self, attrs: &[AttestationAttribute]) -> Vec<u8> {
        let id = self.pa_id();
        tnc_proto::vendor_message(id, attrs)
    }

    /// The pairings delivered since the last CDATA, acknowledged.
    fn acceptances(&mut self) -> Vec<CredentialAttribute> {
        std::mem::take(&mut self.to_accept)
            .into_iter()
            .map(|id| {
                CredentialAttribute::PairingAccepted(tnc_proto::credential::PairingAccepted { id })
            })
            .collect()
    }

    /// One batch from the PDP; the batch to answer with, if any, and whether
    /// the session is over.
    pub fn receive(&mut self, bytes: &[u8]) -> Result<(Option<Vec<u8>>, bool), AgentError> {
        let batch = match self.pb.receive(bytes) {
            Ok(b) => b,
            Err(v) => return Ok((Some(v.close), true)),
        };
        if let Some(e) = batch.fatal_error() {
            return Err(AgentError::PbTnc(format!(
                "the PDP ended the session: {e:?}"
            )));
        }
        let mut os_answers: Vec<Vec<u8>> = Vec::new();
        let mut att_answers: Vec<AttestationAttribute> = Vec::new();
        let mut wants_packages = false;
        // The PDP re-assesses: the collectors start over.
        let mut restart = false;
        for m in &batch.messages {
            match m {
                PbMessage::Pa(p)
                    if p.delivers_to(Side::Client, PaSubtype::OPERATING_SYSTEM, OS_IMC_ID) =>
                {
                    if let Ok(msg) = PaMessage::decode(p.body) {
                        wants_packages |= msg.attributes.iter().any(|a| {
                            matches!(a.parse(), Ok(Attribute::AttributeRequest(ids))
                                if ids.contains(&AttributeId::ietf(ietf_attr::INSTALLED_PACKAGES)))
                        });
                    }
                }
                PbMessage::Pa(p)
                    if p.delivers_to(Side::Client, attestation::SUBTYPE, ATTESTATION_IMC_ID) =>
                {
                    if attestation::is_reassessment_request(p.body) {
                        restart = true;
                        continue;
                    }
                    let Ok(msg) = PaMessage::decode(p.body) else {
                        continue;
                    };
                    let attrs: Vec<AttestationAttribute> = msg
                        .attributes
                        .iter()
                        .filter(|a| a.vendor == attestation::VENDOR)
                        .filter_map(|a| AttestationAttribute::decode(a.attr_type, a.value).ok())
                        .collect();
                    att_answers.extend(self.attestation.receive(attrs));
                }
                PbMessage::Pa(p)
                    if p.delivers_to(Side::Client, credential::SUBTYPE, CREDENTIAL_IMC_ID) =>
                {
                    let Ok(msg) = PaMessage::decode(p.body) else {
                        continue;
                    };
                    for a in msg
                        .attributes
                        .iter()
                        .filter(|a| a.vendor == attestation::VENDOR)
                    {
                        match CredentialAttribute::decode(a.attr_type, a.value) {
                            Ok(CredentialAttribute::Grant(g)) => {
                                self.outcome.credential = Some(Credential::Granted(g))
                            }
                            Ok(CredentialAttribute::Refusal(r)) => {
                                self.outcome.credential = Some(Credential::Refused(r.reason))
                            }
                            // To a VM: a terminal's pairing, acknowledged
                            // in the next CDATA. To a terminal: its own.
                            Ok(CredentialAttribute::Pairing(p)) if self.serving.is_some() => {
                                self.to_accept.push(p.id.clone());
                                self.delivered.push(p);
                            }
                            Ok(CredentialAttribute::Pairing(p)) => {
                                self.outcome.pairing = Some(Ok(p))
                            }
                            Ok(CredentialAttribute::PairingRefusal(r)) => {
                                self.outcome.pairing = Some(Err(r.reason))
                            }
                            Ok(_) | Err(_) => {
                                self.outcome.credential = Some(Credential::Refused(
                                    "the PDP's credential message is malformed".into(),
                                ))
                            }
                        }
                    }
                }
                PbMessage::AccessRecommendation(r) => self.outcome.recommendation = Some(*r),
                PbMessage::AssessmentResult(r) => self.outcome.assessment = Some(*r),
                PbMessage::ReasonString { text, .. } => {
                    self.outcome.reason = Some(text.to_string())
                }
                PbMessage::RemediationParameters(r) => {
                    self.outcome.remediation = Some(match r {
                        Remediation::Uri(u) => u.to_string(),
                        Remediation::String { text, .. } => text.to_string(),
                        other => format!("{other:?}"),
                    })
                }
                _ => {}
            }
        }
        match batch.batch_type {
            BatchType::Result => {
                self.decisions += 1;
                self.outcome.decided_at = Some(std::time::Instant::now());
                self.outcome.attestation = self.attestation.result();
                self.outcome.device = self.attestation.device_id();
                self.attestation.release();
                // A serving VM keeps its control session while allowed.
                if self.keeps_open() && self.outcome.allowed() {
                    return Ok((None, false));
                }
                let close = self.pb.close(None);
                Ok((close, true))
            }
            BatchType::Close => Ok((None, true)),
            // A re-assessment: answered as a new session's first batch,
            // without the credential requests. The standing decision holds
            // until the round's RESULT.
            BatchType::SData if restart => {
                let previous = std::mem::take(&mut self.outcome);
                self.outcome.credential = previous.credential;
                self.outcome.round_started = self.round_started.take();
                Ok((Some(self.initial_batch(false, false)?), false))
            }
            BatchType::SData => {
                if wants_packages {
                    let id = self.pa_id();
                    os_answers.push(
                        PaMessageWriter::new(id)
                            .attribute(false, &self.os.installed_packages())
                            .finish(),
                    );
                }
                let att = (!att_answers.is_empty()).then(|| self.att_message(&att_answers));
                let accepted = self.acceptances();
                let accepted = (!accepted.is_empty()).then(|| self.credential_message(&accepted));
                let mut msgs: Vec<PbMessage<'_>> = os_answers
                    .iter()
                    .map(|b| pa(PaSubtype::OPERATING_SYSTEM, OS_IMC_ID, b))
                    .collect();
                if let Some(b) = &att {
                    msgs.push(pa(attestation::SUBTYPE, ATTESTATION_IMC_ID, b));
                }
                if let Some(b) = &accepted {
                    msgs.push(pa(credential::SUBTYPE, CREDENTIAL_IMC_ID, b));
                }
                let bytes = self
                    .pb
                    .send(BatchType::CData, msgs)
                    .map_err(|e| AgentError::PbTnc(e.to_string()))?;
                Ok((Some(bytes), false))
            }
            // SRETRY in the middle of an assessment hands the turn to the
            // client: the collectors start over, as in the first batch.
            BatchType::SRetry if self.pb.state() == tnc_proto::pb_tnc::PbState::ClientWorking => {
                self.outcome = Outcome::default();
                Ok((Some(self.initial_batch(false, true)?), false))
            }
            // After a decision it is still the server's turn (§3.2): the
            // client waits for its SDATA (specs/nea-continuous.md §2). The
            // last decision holds until the round's RESULT.
            BatchType::SRetry => {
                self.round_started = Some(std::time::Instant::now());
                Ok((None, false))
            }
            _ => Ok((None, false)),
        }
    }
}

fn pa(subtype: PaSubtype, collector: u16, body: &[u8]) -> PbMessage<'_> {
    PbMessage::Pa(PbPa {
        exclusive: false,
        subtype,
        collector_id: collector,
        validator_id: ID_ANY,
        body,
    })
}

/// Runs the whole handshake over `io` (an established TLS stream).
pub async fn run_session<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    agent: &mut Agent,
    credentials: Option<PlainCredentials>,
    max_message_len: u32,
) -> Result<Outcome, AgentError> {
    run_session_with(io, agent, credentials, max_message_len, None).await
}

/// A kept-open session: every decision goes to `decisions` (the first, then
/// each re-assessment's), and to a serving VM each pairing the PDP delivers
/// to `pairings`.
pub struct Control {
    pub decisions: tokio::sync::mpsc::UnboundedSender<Outcome>,
    pub pairings: tokio::sync::mpsc::UnboundedSender<tnc_proto::credential::Pairing>,
}

/// [`run_session`], kept open after RESULT when the agent serves (see
/// [`Control`]) until the PDP or the transport closes it.
pub async fn run_session_with<S: AsyncRead + AsyncWrite + Unpin>(
    io: S,
    agent: &mut Agent,
    credentials: Option<PlainCredentials>,
    max_message_len: u32,
    control: Option<Control>,
) -> Result<Outcome, AgentError> {
    let conn = ClientConnection::new(pt_tls::Limits { max_message_len }, credentials);
    drive(io, conn, agent, control).await
}

/// The session over `io` from `conn` on (a PT-TLS client whose first bytes
/// may already have gone out with the TLS handshake).
async fn drive<S: AsyncRead + AsyncWrite + Unpin>(
    mut io: S,
    mut conn: ClientConnection,
    agent: &mut Agent,
    mut control: Option<Control>,
) -> Result<Outcome, AgentError> {
    let mut buf = vec![0u8; 16 * 1024];
    let mut done = false;
    let mut reported = 0;
    loop {
        while let Some(event) = conn.poll_event() {
            match event {
                Event::Ready => {
                    let b = agent.first_batch()?;
                    conn.send_batch(&b)
                        .map_err(|e| AgentError::PtTls(e.to_string()))?;
                }
                Event::Batch(bytes) => {
                    let (reply, over) = agent.receive(&bytes)?;
                    if let Some(b) = reply {
                        conn.send_batch(&b)
                            .map_err(|e| AgentError::PtTls(e.to_string()))?;
                    }
                    if let Some(c) = control.as_mut() {
                        if agent.decisions > reported {
                            reported = agent.decisions;
                            let _ = c.decisions.send(agent.outcome.clone());
                        }
                        for p in agent.take_pairings() {
                            let _ = c.pairings.send(p);
                        }
                    }
                    if over {
                        done = true;
                        conn.close();
                        // Batches that came behind the one that ended the
                        // session (an SRETRY right after RESULT) are not
                        // answered.
                        break;
                    }
                }
                Event::AuthenticationFailed(code) => {
                    return Err(AgentError::Authentication(format!("{code:?}")))
                }
                Event::PeerError { code, .. } => {
                    return Err(AgentError::PtTls(format!(
                        "the PDP sent PT-TLS error {code:?}"
                    )))
                }
                Event::Closed(pt_tls::CloseReason::LocalError(e)) => {
                    return Err(AgentError::PtTls(e.to_string()))
                }
                _ => {}
            }
        }
        let out = conn.take_output();
        if !out.is_empty() {
            io.write_all(&out).await?;
            io.flush().await?;
        }
        if conn.is_closed() || done {
            break;
        }
        let n = io.read(&mut buf).await?;
        if n == 0 {
            break;
        }
        conn.receive(&buf[..n]);
    }
    let _ = io.shutdown().await;
    if agent.outcome.recommendation.is_none() {
        return Err(AgentError::NoDecision);
    }
    Ok(agent.outcome.clone())
}

/// A TLS 1.3 client configuration that trusts only the CA certificates in
/// `ca_pem` (the CA that signs the PDP's certificate): the server certificate
/// is always checked, there is no switch to turn that off.
pub fn tls_client_config(
    ca_pem: &std::path::Path,
) -> std::io::Result<std::sync::Arc<rustls::ClientConfig>> {
    tls_client_config_with(ca_pem, None)
}

/// As [`tls_client_config`], presenting the certificate chain and key in
/// `identity` (PEM files) when the PDP asks for a client certificate.
pub fn tls_client_config_with(
    ca_pem: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
) -> std::io::Result<std::sync::Arc<rustls::ClientConfig>> {
    tls_client_config_for(ca_pem, identity, pki::tls::Suites::Standard)
}

/// [`tls_client_config_with`] speaking `suites`: with `Shangmi` the client
/// offers the RFC 8998 suites only and accepts only an SM2 certificate.
pub fn tls_client_config_for(
    ca_pem: &std::path::Path,
    identity: Option<(&std::path::Path, &std::path::Path)>,
    suites: pki::tls::Suites,
) -> std::io::Result<std::sync::Arc<rustls::ClientConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let bad = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidData, m);
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca_pem)
        .map_err(|e| bad(format!("{}: {e}", ca_pem.display())))?;
    for cert in certs {
        let cert = cert.map_err(|e| bad(format!("{}: {e}", ca_pem.display())))?;
        roots
            .add(cert)
            .map_err(|e| bad(format!("{}: {e}", ca_pem.display())))?;
    }
    if roots.is_empty() {
        return Err(bad(format!(
            "{}: no CA certificate in the file",
            ca_pem.display()
        )));
    }
    let identity = match identity {
        None => None,
        Some((cert, key)) => {
            use rustls::pki_types::PrivateKeyDer;
            let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
                .map_err(|e| bad(format!("{}: {e}", cert.display())))?
                .collect::<Result<_, _>>()
                .map_err(|e| bad(format!("{}: {e}", cert.display())))?;
            let key = PrivateKeyDer::from_pem_file(key)
                .map_err(|e| bad(format!("{}: {e}", key.display())))?;
            Some(pki::tls::Identity { chain, key })
        }
    };
    pki::tls::client_config(suites.provider(), roots, identity)
        .map_err(|e| bad(format!("client certificate: {e}")))
}

/// Connects to the PDP at `addr` and runs the handshake; `server_name` is the
/// name the PDP's certificate must carry.
pub async fn login(
    addr: std::net::SocketAddr,
    server_name: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    agent: &mut Agent,
    credentials: Option<PlainCredentials>,
) -> Result<Outcome, AgentError> {
    login_with(addr, server_name, tls, agent, credentials, None).await
}

/// [`login`], kept open after the decision when the agent serves: the
/// serving VM's control session (see [`Control`]).
pub async fn login_with(
    addr: std::net::SocketAddr,
    server_name: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    agent: &mut Agent,
    credentials: Option<PlainCredentials>,
    control: Option<Control>,
) -> Result<Outcome, AgentError> {
    let name = rustls::pki_types::ServerName::try_from(server_name.to_string()).map_err(|_| {
        AgentError::Io(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{server_name:?} is not a DNS name or IP address"),
        ))
    })?;
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let _ = tcp.set_nodelay(true);
    if control.is_some() {
        // A kept session waits for the PDP's next round for as long as it
        // lasts: a PDP gone without a FIN is found by keepalive probes
        // (60 s idle, 3 probes 10 s apart), and the session fails over.
        let ka = socket2::TcpKeepalive::new()
            .with_time(std::time::Duration::from_secs(60))
            .with_interval(std::time::Duration::from_secs(10))
            .with_retries(3);
        let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&ka);
    }
    // The PT-TLS Version Request rides with the TLS handshake's last
    // flight (TLS 1.3 lets a client send data right after its Finished):
    // one write and one round trip fewer. rustls holds it until the
    // handshake is done and the server authenticated.
    let mut conn = ClientConnection::new(
        pt_tls::Limits {
            max_message_len: MAX_MESSAGE_LEN,
        },
        credentials,
    );
    let first = conn.take_output();
    let stream = tokio_rustls::TlsConnector::from(tls)
        .connect_with(name, tcp, |c| {
            use std::io::Write;
            // Buffered (up to 64 KiB) until the handshake is complete.
            let _ = c.writer().write_all(&first);
        })
        .await
        .map_err(certificate_error)?;
    let suite = stream
        .get_ref()
        .1
        .negotiated_cipher_suite()
        .map(|s| pki::tls::suite_name(s.suite()));
    let mut outcome = drive(stream, conn, agent, control).await?;
    outcome.tls_suite = suite;
    Ok(outcome)
}

/// A refused server certificate, said so that the operator knows what to
/// change; other errors as they are.
fn certificate_error(e: std::io::Error) -> AgentError {
    use rustls::CertificateError as C;
    let Some(rustls::Error::InvalidCertificate(cert)) =
        e.get_ref().and_then(|i| i.downcast_ref::<rustls::Error>())
    else {
        return AgentError::Io(e);
    };
    AgentError::Certificate(match cert {
        C::NotValidForNameContext {
            expected,
            presented,
        } => {
            // rustls prints the names as `DnsName("x")` / `IpAddress(x)`.
            let names: Vec<String> = presented
                .iter()
                .map(|n| {
                    n.trim_start_matches("DnsName(\"")
                        .trim_start_matches("IpAddress(")
                        .trim_end_matches("\")")
                        .trim_end_matches(')')
                        .to_string()
                })
                .collect();
            format!(
                "is not valid for the name {:?} (the name comes from --server-name, else the \
                 config's server_name, else the host of --server or server); it names {}: \
                 give one of those with --server-name",
                expected.to_str(),
                if names.is_empty() {
                    "nothing".to_string()
                } else {
                    names.join(", ")
                }
            )
        }
        C::UnknownIssuer => "is signed by a CA other than the one in `ca` (or --ca): give the \
             CA certificate of the PDP (tnc-server init wrote it as ca.pem)"
            .to_string(),
        other => format!("was refused: {other}"),
    })
}

/// As [`login`], over QUIC: the PT-TLS messages on one bidirectional stream
/// of a connection with ALPN `pt-tls`.
pub async fn login_quic(
    addr: std::net::SocketAddr,
    server_name: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    agent: &mut Agent,
    credentials: Option<PlainCredentials>,
) -> Result<Outcome, AgentError> {
    login_quic_with(addr, server_name, tls, agent, credentials, None).await
}

/// Keep-alive PINGs on a kept QUIC session. quinn closes a connection idle
/// for its max_idle_timeout (30 s by default, on both ends), and a kept
/// session is silent between rounds (minutes): the PINGs keep it, and a
/// peer that vanished is still found within 30 s, as TCP keepalive finds it
/// on a kept TCP session.
pub const QUIC_KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// As [`login_with`], over QUIC (see [`login_quic`]); with `control`, the
/// session is kept and sends keep-alives ([`QUIC_KEEPALIVE`]).
pub async fn login_quic_with(
    addr: std::net::SocketAddr,
    server_name: &str,
    tls: std::sync::Arc<rustls::ClientConfig>,
    agent: &mut Agent,
    credentials: Option<PlainCredentials>,
    control: Option<Control>,
) -> Result<Outcome, AgentError> {
    let mut config = quic_client_config(&tls)?;
    if control.is_some() {
        let mut transport = quinn::TransportConfig::default();
        transport.keep_alive_interval(Some(QUIC_KEEPALIVE));
        config.transport_config(std::sync::Arc::new(transport));
    }
    let bind = if addr.is_ipv6() {
        std::net::SocketAddr::from((std::net::Ipv6Addr::UNSPECIFIED, 0))
    } else {
        std::net::SocketAddr::from((std::net::Ipv4Addr::UNSPECIFIED, 0))
    };
    let mut endpoint = quinn::Endpoint::client(bind)?;
    endpoint.set_default_client_config(config);
    let outcome =
        session_over_quic(&endpoint, addr, server_name, agent, credentials, control).await;
    // A good-faith close: the PDP hears CONNECTION_CLOSE before we exit.
    endpoint.wait_idle().await;
    outcome
}

/// As [`login_quic`], on an endpoint the caller keeps (and configured with
/// [`quic_client_config`]); the connection is closed, not waited for.
pub async fn login_quic_on(
    endpoint: &quinn::Endpoint,
    addr: std::net::SocketAddr,
    server_name: &str,
    agent: &mut Agent,
    credentials: Option<PlainCredentials>,
) -> Result<Outcome, AgentError> {
    session_over_quic(endpoint, addr, server_name, agent, credentials, None).await
}

async fn session_over_quic(
    endpoint: &quinn::Endpoint,
    addr: std::net::SocketAddr,
    server_name: &str,
    agent: &mut Agent,
    credentials: Option<PlainCredentials>,
    control: Option<Control>,
) -> Result<Outcome, AgentError> {
    let conn = endpoint
        .connect(addr, server_name)
        .map_err(|e| io_error(format!("QUIC connect: {e}")))?
        .await
        .map_err(|e| io_error(format!("QUIC handshake: {e}")))?;
    let (send, recv) = conn
        .open_bi()
        .await
        .map_err(|e| io_error(format!("opening the PT-TLS stream: {e}")))?;
    let outcome = run_session_with(
        tokio::io::join(recv, send),
        agent,
        credentials,
        MAX_MESSAGE_LEN,
        control,
    )
    .await;
    conn.close(0u32.into(), b"done");
    outcome
}

/// The QUIC client configuration for PT-TLS: `tls` with ALPN `pt-tls`.
pub fn quic_client_config(tls: &rustls::ClientConfig) -> Result<quinn::ClientConfig, AgentError> {
    pki::tls::quic_client_config(tls, tnc_proto::pt_tls::QUIC_ALPN)
        .map_err(|e| io_error(format!("TLS configuration for QUIC: {e}")))
}

fn io_error(message: String) -> AgentError {
    AgentError::Io(std::io::Error::other(message))
}

/// The largest PT-TLS message the agent accepts from the PDP.
const MAX_MESSAGE_LEN: u32 = 16 << 20;
