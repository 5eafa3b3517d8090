//! One PB-TNC session on the PDP side (RFC 5793): batches in, batches out.
//!
//! Sans-IO like `tnc-proto`: the network task feeds each received batch to
//! [`PdpSession::receive`] and sends what comes back. A batch goes through
//! three steps, and only the store is awaited between them:
//!
//! 1. [`route`](PdpSession::route): PB-TNC checks, then each PB-PA message to
//!    its validator by PA subtype (§4.5);
//! 2. the store's answers to what the attestation validator needs (the
//!    device, the reference values), then [`advance`](PdpSession::advance):
//!    the validators' requests go out in SDATA, or, once nobody has more to
//!    ask, [`decide`](PdpSession::decide) combines their verdicts;
//! 3. the decision is committed, then [`result`](PdpSession::result) writes
//!    the RESULT batch with PB-Assessment-Result, PB-Access-Recommendation,
//!    PB-Reason-String and, when access is not allowed,
//!    PB-Remediation-Parameters (§4.6-§4.10). A decision that could not be
//!    committed is sent as no access.

use super::PdpContext;
use crate::devices::DeviceRecord;
use crate::imv::attestation::{AttestationValidator, Lookups};
use crate::imv::os::OsValidator;
use crate::imv::{Assessment, Reason};
use crate::store::{AttestationWrite, DecisionWrite, EvidenceWrite, StoreError};
use policy::Verdict;
use tnc_proto::attestation::{self, AttestationAttribute};
use tnc_proto::common::{AssessmentResult, Remediation};
use tnc_proto::credential::{
    self, CredentialAttribute, Grant, Pairing, PairingRefusal, PairingRequest, Refusal,
};
use tnc_proto::pa_tnc::{ietf_attr, Attribute, AttributeId, PaMessage, PaMessageWriter, PaSubtype};
use tnc_proto::pb_tnc::{
    AccessRecommendation, BatchType, PbMessage, PbPa, PbSession, PbState, Side, Violation,
};

/// Our validator IDs (RFC 5793 §4.5: assigned by the broker, per subtype).
pub const OS_IMV_ID: u16 = 1;
pub const ATTESTATION_IMV_ID: u16 = 2;
pub const CREDENTIAL_IMV_ID: u16 = 3;

/// How long one session may go on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SessionLimits {
    /// SDATA rounds after which a client that keeps talking is cut off: the
    /// attestation exchange takes three (four after a reboot), the OS one two.
    pub max_rounds: u32,
    /// Re-assessments (CRETRY) one session may ask for: each costs an
    /// appraisal and a durable commit.
    pub max_retries: u32,
}

impl Default for SessionLimits {
    fn default() -> Self {
        Self {
            max_rounds: 8,
            max_retries: 2,
        }
    }
}

/// The combined decision sent in RESULT.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decision {
    pub verdict: Verdict,
    pub assessment: AssessmentResult,
    pub recommendation: AccessRecommendation,
    pub reasons: Vec<Reason>,
    /// The OS product the endpoint reported, for logs.
    pub product: Option<String>,
}

impl Decision {
    /// One line for PB-Reason-String: the reasons that set the verdict.
    pub fn reason_string(&self) -> String {
        self.reasons
            .iter()
            .filter(|r| r.severity == self.verdict)
            .map(|r| r.text.as_str())
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// What to do after a batch.
#[derive(Debug, Default)]
pub struct Reply {
    /// Batches to send, in order.
    pub batches: Vec<Vec<u8>>,
    /// The PB-TNC session is over: close the transport after sending.
    pub close: bool,
}

impl Reply {
    fn close_with(batches: impl IntoIterator<Item = Vec<u8>>) -> Self {
        Self {
            batches: batches.into_iter().collect(),
            close: true,
        }
    }
}

/// A PB-PA message for a validator: (subtype, validator ID, PA-TNC message).
type Outgoing = (PaSubtype, u16, Vec<u8>);

/// An attestation message's attributes, or the PA-TNC error to answer it
/// with and a description.
type Decoded = Result<Vec<AttestationAttribute>, (Vec<u8>, String)>;

/// One batch's PA messages, sorted by validator (step 1's result).
#[derive(Debug, Default)]
pub struct Routed {
    /// PA-TNC errors answering malformed OS messages.
    os_errors: Vec<Vec<u8>>,
    /// Per attestation message: its attributes, or the PA-TNC error to
    /// answer it with and a description.
    attestation: Vec<Decoded>,
}

/// What a batch leads to (step 2's result).
#[derive(Debug)]
pub enum Step {
    /// The validators asked for more: send this SDATA batch.
    Send(Reply),
    /// Nobody has more to ask: decide, commit, and send RESULT with these
    /// messages.
    Decide(Vec<Outgoing>),
}

/// What the endpoint asked of the credential pair.
#[derive(Debug, Default)]
enum KeyRequest {
    #[default]
    None,
    /// A request whose signature verified.
    /// `storage`: where the endpoint says the key lives ("tpm",
    /// "software"; anything else "unknown"), for the audit log.
    Verified(Box<pki::ca::VerifiedRequest>, &'static str),
    /// One that did not, and why.
    Invalid(String),
}

/// A kept session holds this between rounds in its task's future: what is
/// large and absent from most sessions (a key or pairing request, a serving
/// VM's entry) is boxed.
pub struct PdpSession<'c> {
    ctx: &'c PdpContext,
    /// Who authenticated (SASL user or client certificate), for credentials.
    user: Option<String>,
    key_request: KeyRequest,
    /// A terminal's request for a pairing with a VM.
    pairing_request: Option<Box<PairingRequest>>,
    /// Where a VM says it serves channels.
    serving_at: Option<Box<credential::Serving>>,
    /// The VM's entry for the pairing registry, once it is allowed and
    /// certified (taken by the network task).
    serving: Option<Box<crate::pairing::Serving>>,
    /// A pairing went out after SRETRY: the next CDATA is the VM's
    /// acknowledgement, answered with the standing decision.
    control_round: bool,
    /// Pairing ids the VM acknowledged.
    accepted: Vec<Vec<u8>>,
    /// Re-assessments the PDP started on this session (SRETRY).
    reassessments: u32,
    /// The device and role of the last decision, kept when the round's
    /// state is released ([`PdpSession::release_round`]).
    decided_device: Option<(String, Option<&'static str>)>,
    limits: SessionLimits,
    /// The peer's address, for the audit log.
    peer: String,
    pb: PbSession,
    os: OsValidator,
    attestation: AttestationValidator,
    rounds: u32,
    retries: u32,
    next_pa_id: u32,
    decision: Option<Decision>,
    /// Why the session failed, if it did (for the log line).
    failure: Option<String>,
    /// When the session began: its first verdict's latency is measured
    /// from here.
    started: std::time::Instant,
    /// A verdict was sent on this session (later ones are re-assessments,
    /// the client's CRETRY included).
    decided_once: bool,
}

impl<'c> PdpSession<'c> {
    pub fn new(ctx: &'c PdpContext, peer: impl Into<String>) -> Self {
        Self::with_limits(ctx, peer, SessionLimits::default())
    }

    pub fn with_limits(
        ctx: &'c PdpContext,
        peer: impl Into<String>,
        limits: SessionLimits,
    ) -> Self {
        Self {
            ctx,
            user: None,
            key_request: KeyRequest::None,
            pairing_request: None,
            serving_at: None,
            serving: None,
            control_round: false,
            accepted: Vec::new(),
            reassessments: 0,
            decided_device: None,
            limits,
            peer: peer.into(),
            pb: PbSession::new(Side::Server),
            os: OsValidator::new(),
            attestation: AttestationValidator::new(),
            rounds: 0,
            retries: 0,
            next_pa_id: 1,
            decision: None,
            failure: None,
            started: std::time::Instant::now(),
            decided_once: false,
        }
    }

    /// The authenticated user, named in the credentials issued on allow.
    pub fn set_user(&mut self, user: Option<String>) {
        self.user = user;
    }

    pub fn decision(&self) -> Option<&Decision> {
        self.decision.as_ref()
    }

    /// The device appraised in this session (its ID, hex) and the role it
    /// is enrolled as, once known.
    pub fn device(&self) -> Option<(String, Option<&'static str>)> {
        let Some((id, _)) = self.attestation.appraised_device() else {
            return self.decided_device.clone();
        };
        let role = self.attestation.writes().0.map(|d| d.role.name());
        Some((crate::store::hex(&id), role))
    }

    /// A decided session kept open: what the round's validators hold (the
    /// evidence, the device record written) is let go, keeping only who was
    /// decided on; the next round starts new validators anyway.
    pub fn release_round(&mut self) {
        if !self.is_decided() {
            return;
        }
        if let Some(d) = self.device() {
            self.decided_device = Some(d);
        }
        self.os = OsValidator::new();
        self.attestation = AttestationValidator::new();
    }

    pub fn failure(&self) -> Option<&str> {
        self.failure.as_deref()
    }

    pub fn is_ended(&self) -> bool {
        self.pb.is_ended()
    }

    /// A RESULT has gone by and no round is under way.
    pub fn is_decided(&self) -> bool {
        self.pb.state() == PbState::Decided
    }

    /// A serving VM, allowed and certified in this session: the network
    /// task registers it for pairings and keeps the session open.
    pub fn take_serving(&mut self) -> Option<crate::pairing::Serving> {
        self.serving.take().map(|s| *s)
    }

    /// The pairing ids the VM acknowledged since the last call.
    pub fn take_accepted(&mut self) -> Vec<Vec<u8>> {
        std::mem::take(&mut self.accepted)
    }

    /// Ends the session with an empty CLOSE batch (a control session the PDP
    /// gives up: superseded, no longer allowed, or silent in a round).
    pub fn close(&mut self, why: &str) -> Reply {
        self.failure.get_or_insert_with(|| why.to_string());
        Reply::close_with(self.pb.close(None))
    }

    /// Whether the standing decision is allow.
    pub fn allowed(&self) -> bool {
        self.decision
            .as_ref()
            .is_some_and(|d| d.verdict == Verdict::Allow)
    }

    /// Delivers `pairing` to the VM on its open session (Decided): SRETRY,
    /// then SDATA with the pairing (specs/nea-continuous.md §2). The VM's
    /// CDATA acknowledges it and gets the standing decision in RESULT.
    pub fn push_pairing(&mut self, pairing: Pairing) -> Reply {
        let sretry = match self.pb.send(BatchType::SRetry, vec![]) {
            Ok(b) => b,
            Err(e) => {
                self.failure = Some(format!("cannot send SRETRY: {e}"));
                return Reply::close_with(self.pb.abort("the PDP could not build its batch"));
            }
        };
        let body = self.credential_attrs(&[CredentialAttribute::Pairing(pairing)]);
        let mut reply = self.send(
            BatchType::SData,
            &[(credential::SUBTYPE, CREDENTIAL_IMV_ID, body)],
            None,
        );
        reply.batches.insert(0, sretry);
        self.control_round = true;
        reply
    }

    /// Starts a re-assessment of a decided session (the interval, a policy
    /// change, the operator): SRETRY, then SDATA asking the attestation
    /// collector to start over (specs/nea-continuous.md §2, §5). New
    /// validators; the standing decision holds until this round's RESULT.
    /// Nothing is issued or paired in the round: its key, pairing and
    /// serving requests belonged to the first. None when a round is under
    /// way or the session ended.
    pub fn reassess(&mut self) -> Option<Reply> {
        if !self.is_decided() {
            return None;
        }
        let sretry = match self.pb.send(BatchType::SRetry, vec![]) {
            Ok(b) => b,
            Err(e) => {
                self.failure = Some(format!("cannot send SRETRY: {e}"));
                return Some(Reply::close_with(
                    self.pb.abort("the PDP could not build its batch"),
                ));
            }
        };
        self.reassessments += 1;
        self.key_request = KeyRequest::None;
        self.pairing_request = None;
        self.serving_at = None;
        self.control_round = false;
        self.os = OsValidator::new();
        self.attestation = AttestationValidator::new();
        self.rounds = 0;
        self.next_pa_id += 1;
        let body = attestation::reassessment_request(self.next_pa_id - 1);
        let mut reply = self.send(
            BatchType::SData,
            &[(attestation::SUBTYPE, ATTESTATION_IMV_ID, body)],
            None,
        );
        reply.batches.insert(0, sretry);
        Some(reply)
    }

    /// How many re-assessments the PDP started on this session.
    pub fn reassessments(&self) -> u32 {
        self.reassessments
    }

    /// One PB-TNC batch from the client: the three steps, with the store's
    /// reads and the decision's commit between them.
    pub async fn receive(&mut self, bytes: &[u8]) -> Reply {
        let routed = match self.route(bytes) {
            Ok(r) => r,
            Err(reply) => return reply,
        };
        if self.control_round {
            // The VM acknowledged a pairing: the decision stands (a
            // re-appraisal is a round of its own).
            self.control_round = false;
            let decision = self.decision.clone();
            return self.send(BatchType::Result, &[], decision.as_ref());
        }
        let lookups = self.look_up(&routed).await;
        let advancing = std::time::Instant::now();
        match self.advance(routed, &lookups) {
            Step::Send(reply) => reply,
            Step::Decide(mut messages) => {
                // The validators' work on the deciding batch: the quote,
                // event log and IMA appraisal.
                self.ctx.metrics.appraisal(advancing.elapsed());
                let first = !std::mem::replace(&mut self.decided_once, true);
                let decision = self.decide();
                let issued = self.issue_credentials(&decision).await;
                let write = issued
                    .as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .map(|i| &i.write);
                let committed = self.record(&decision, write).await;
                let role = self.device().and_then(|(_, role)| role);
                let metrics = &self.ctx.metrics;
                metrics.decision(
                    decision.verdict.label(),
                    role,
                    if first {
                        crate::metrics::Kind::first
                    } else {
                        crate::metrics::Kind::reassessment
                    },
                    committed.is_ok(),
                );
                if first {
                    metrics.handshake(self.started.elapsed());
                }
                let fresh = issued
                    .as_ref()
                    .and_then(|r| r.as_ref().ok())
                    .filter(|_| committed.is_ok())
                    .map(|i| i.grant.clone());
                if let Some(m) = self.credential_message(&committed, issued) {
                    messages.push(m);
                }
                let allowed = decision.verdict == Verdict::Allow && committed.is_ok();
                if let Some(answer) = self.pair(allowed, &decision, fresh.as_ref()).await {
                    let body = self.credential_attrs(&[answer]);
                    messages.push((credential::SUBTYPE, CREDENTIAL_IMV_ID, body));
                }
                self.note_serving(allowed, fresh.as_ref());
                self.result(messages, decision, committed)
            }
        }
    }

    /// A terminal's pairing request, on allow: the ticket (the one issued
    /// now, else the one presented) verifies, is this device's and names
    /// the VM; the VM serves now; the pairing is delivered to it. None when
    /// nothing was asked.
    async fn pair(
        &self,
        allowed: bool,
        d: &Decision,
        fresh: Option<&Grant>,
    ) -> Option<CredentialAttribute> {
        let request = self.pairing_request.as_ref()?;
        let vm = request.vm.clone();
        let refuse = |reason: String| {
            tracing::info!(endpoint = %self.peer, vm = %vm, %reason, "no pairing");
            Some(CredentialAttribute::PairingRefusal(PairingRefusal {
                vm: vm.clone(),
                reason,
            }))
        };
        if !allowed {
            return refuse(format!("no pairing: the verdict is {}", d.verdict.name()));
        }
        let Some(issuer) = &self.ctx.issuer else {
            return refuse("this PDP issues no credentials ([ca] is not configured)".into());
        };
        let Some((device_id, _)) = self.attestation.appraised_device() else {
            return refuse("no pairing: no attested device".into());
        };
        let device = crate::store::hex(&device_id);
        let Some(ticket) = fresh
            .map(|g| g.ticket.as_slice())
            .or(request.ticket.as_deref())
        else {
            return refuse(
                "no ticket: present the one you hold, or ask for credentials in this session"
                    .into(),
            );
        };
        let now = self.ctx.now();
        let claims = match pki::ticket::verify(ticket, &issuer.ca().key().public_key(), now as i64)
        {
            Ok(c) => c,
            Err(e) => return refuse(format!("the ticket is refused: {e}")),
        };
        if claims.device != device {
            return refuse("the ticket is another device's".into());
        }
        if !claims.vms.iter().any(|v| v == &vm) {
            return refuse(format!("the ticket does not name {vm}"));
        }
        match self.ctx.store.ticket_revocation(&claims.id).await {
            Ok(None) => {}
            Ok(Some(r)) => return refuse(format!("the ticket is revoked: {}", r.reason)),
            Err(e) => {
                tracing::error!(error = %e, "reading revocations for a pairing");
                return refuse("the PDP could not check its revocations; try again".into());
            }
        }
        match self
            .ctx
            .pairings
            .pair(&vm, &device, &claims.certificate_sha256, now, &self.ctx.rng)
            .await
        {
            Ok(p) => {
                let detail = format!(
                    "with {vm} ({}), pairing {}, user {}, until {}",
                    p.address.as_deref().unwrap_or("-"),
                    crate::store::hex(&p.id),
                    claims.user.as_deref().unwrap_or("-"),
                    p.expires
                );
                tracing::info!(endpoint = %self.peer, %device, %detail, "pairing");
                if let Err(e) = self.ctx.store.audit(now, "pairing", &device, &detail).await {
                    tracing::warn!(error = %e, "pairing not in the audit log");
                }
                Some(CredentialAttribute::Pairing(p))
            }
            Err(e) => refuse(e.to_string()),
        }
    }

    /// A VM that said where it serves, allowed and certified now, with a
    /// name in `[ca] vm_names`: ready for the pairing registry.
    fn note_serving(&mut self, allowed: bool, fresh: Option<&Grant>) {
        let Some(at) = self.serving_at.as_deref() else {
            return;
        };
        let device = self
            .attestation
            .appraised_device()
            .map(|(id, _)| crate::store::hex(&id));
        let name = device.as_ref().and_then(|d| {
            self.ctx
                .issuer
                .as_ref()
                .and_then(|i| i.vm_names.get(d).cloned())
        });
        match (allowed, fresh, device, name) {
            (true, Some(grant), Some(device), Some(name)) => {
                self.serving = Some(Box::new(crate::pairing::Serving {
                    name,
                    device,
                    address: at.address.clone(),
                    quic_address: at.quic_address.clone(),
                    certificate_sha256: policy::HashAlg::Sha256.digest(&grant.certificate),
                    since: self.ctx.now(),
                }));
            }
            (true, _, device, None) => tracing::warn!(
                endpoint = %self.peer,
                device = device.as_deref().unwrap_or("-"),
                "a VM serves channels but [ca] vm_names gives its device no name: no pairings"
            ),
            (true, None, ..) => tracing::warn!(
                endpoint = %self.peer,
                "a VM serves channels without a certificate from this session: no pairings"
            ),
            _ => {}
        }
    }

    /// Step 1: the PB-TNC batch checked, CRETRY and CLOSE handled, the OS
    /// attributes given to the OS validator and the attestation messages
    /// decoded. `Err`: the reply that ends the session.
    pub fn route(&mut self, bytes: &[u8]) -> Result<Routed, Reply> {
        let batch = match self.pb.receive(bytes) {
            Ok(b) => b,
            Err(Violation { error, close }) => {
                self.failure = Some(format!("PB-TNC violation by the client: {error}"));
                return Err(Reply::close_with([close]));
            }
        };
        if let Some(e) = batch.fatal_error() {
            self.failure = Some(format!("client sent a fatal PB-Error: {e:?}"));
            return Err(Reply::close_with([]));
        }
        match batch.batch_type {
            BatchType::Close => return Err(Reply::close_with([])),
            // CRETRY: assess again from the start (§3.2): new validators.
            BatchType::CRetry if self.retries >= self.limits.max_retries => {
                self.failure = Some(format!(
                    "client asked for more than {} re-assessments in one session",
                    self.limits.max_retries
                ));
                return Err(Reply::close_with(
                    self.pb.abort("too many re-assessments in one session"),
                ));
            }
            BatchType::CRetry => {
                self.retries += 1;
                self.control_round = false;
                self.os = OsValidator::new();
                self.attestation = AttestationValidator::new();
                self.decision = None;
                self.rounds = 0;
            }
            _ => {}
        }
        let mut routed = Routed::default();
        for pa in batch.pa_messages() {
            if pa.delivers_to(Side::Server, PaSubtype::OPERATING_SYSTEM, OS_IMV_ID) {
                match PaMessage::decode(pa.body).and_then(|m| {
                    // Only IETF standard attributes are this validator's (§4.1).
                    m.check_supported(|vendor, _| vendor == tnc_proto::U24::IETF)?;
                    Ok(m)
                }) {
                    Ok(m) => {
                        for raw in &m.attributes {
                            // Attributes we do not know are skipped (§4.1).
                            if let Ok(attr) = raw.parse() {
                                self.os.receive(&attr);
                            }
                        }
                    }
                    Err(e) => routed.os_errors.push(pa_error(&e.to_error(pa.body))),
                }
            } else if pa.delivers_to(Side::Server, attestation::SUBTYPE, ATTESTATION_IMV_ID) {
                routed.attestation.push(decode_attestation(pa.body));
            } else if pa.delivers_to(Side::Server, credential::SUBTYPE, CREDENTIAL_IMV_ID) {
                self.read_credential(pa.body);
            }
            // Messages for subtypes without a validator are dropped (§4.5).
        }
        Ok(routed)
    }

    /// Between steps 1 and 2: what the attestation validator needs from the
    /// store for this batch.
    async fn look_up(&self, routed: &Routed) -> Lookups {
        let attrs: Vec<AttestationAttribute> = routed
            .attestation
            .iter()
            .filter_map(|m| m.as_ref().ok())
            .flatten()
            .cloned()
            .collect();
        let needs = self.attestation.needs(&attrs);
        let mut lookups = Lookups::default();
        if let Some(id) = needs.device {
            lookups.device = Some(self.ctx.store.device(&id).await);
        }
        if let Some(role) = needs.reference {
            lookups.reference = Some(self.ctx.reference(role).await);
        }
        lookups
    }

    /// Step 2: the attestation messages to their validator, with the
    /// store's answers; the SDATA batch if a validator asked for more.
    pub fn advance(&mut self, routed: Routed, lookups: &Lookups) -> Step {
        let mut att_errors: Vec<Vec<u8>> = Vec::new();
        let env = self.ctx.attestation_env();
        // The batch's attestation messages in order, as one list: what to
        // ask next (an IdentityRequest after a Hello alone, nothing after a
        // verdict) is the batch's question, whichever message each
        // attribute came in; a malformed message counts as a Failure there.
        let mut att_in: Vec<AttestationAttribute> = Vec::new();
        for message in routed.attestation {
            match message {
                Ok(attrs) => att_in.extend(attrs),
                Err((error, why)) => {
                    att_errors.push(error);
                    att_in.push(AttestationAttribute::Failure(attestation::Failure {
                        message: format!("malformed attestation message: {why}"),
                    }));
                }
            }
        }
        let att_out = match att_in.is_empty() {
            true => Vec::new(),
            false => self.attestation.receive(&env, lookups, att_in),
        };
        // PA-TNC errors first, then the validators' questions.
        let mut messages: Vec<Outgoing> = Vec::new();
        for e in routed.os_errors {
            messages.push((PaSubtype::OPERATING_SYSTEM, OS_IMV_ID, e));
        }
        for e in att_errors {
            messages.push((attestation::SUBTYPE, ATTESTATION_IMV_ID, e));
        }
        let mut questions: Vec<Outgoing> = Vec::new();
        if !att_out.is_empty() {
            let body = self.att_message(&att_out);
            questions.push((attestation::SUBTYPE, ATTESTATION_IMV_ID, body));
        }
        // The OS validator asks for the package inventory once, if its policy
        // needs it.
        if self.os.request(&self.ctx.os_policy) {
            let id = self.next_pa_id;
            self.next_pa_id += 1;
            let body = PaMessageWriter::new(id)
                .attribute(
                    false,
                    &Attribute::AttributeRequest(vec![AttributeId::ietf(
                        ietf_attr::INSTALLED_PACKAGES,
                    )]),
                )
                .finish();
            questions.push((PaSubtype::OPERATING_SYSTEM, OS_IMV_ID, body));
        }
        if !questions.is_empty() {
            if self.rounds < self.limits.max_rounds {
                self.rounds += 1;
                messages.extend(questions);
                return Step::Send(self.send(BatchType::SData, &messages, None));
            }
            // Cut off: the questions go unasked, the exchange ends here.
            self.attestation.abandon(format!(
                "the exchange did not finish in {} rounds",
                self.limits.max_rounds
            ));
        }
        self.attestation.conclude(&self.ctx.attestation_env());
        Step::Decide(messages)
    }

    /// Step 3: the RESULT batch for `decision`, sent as no access if it
    /// could not be committed.
    pub fn result(
        &mut self,
        mut messages: Vec<Outgoing>,
        mut decision: Decision,
        committed: Result<(), StoreError>,
    ) -> Reply {
        if let Err(e) = committed {
            // The detail (database errors name files, locks, servers) is
            // the operator's, not the peer's.
            tracing::error!(
                endpoint = %self.peer,
                error = %e,
                "the decision could not be recorded: the endpoint gets no access"
            );
            decision = Decision {
                verdict: Verdict::NoAccess,
                assessment: AssessmentResult::Error,
                recommendation: AccessRecommendation::Denied,
                reasons: vec![Reason {
                    severity: Verdict::NoAccess,
                    text: "the PDP could not record its decision; try again".into(),
                }],
                product: decision.product,
            };
        }
        if let Some(AttestationAttribute::Result(mut r)) = self.attestation.result_attribute() {
            // A decision that could not be recorded is no access, whatever
            // the appraisal said.
            if decision.verdict == Verdict::NoAccess && r.verdict != Verdict::NoAccess.name() {
                r.verdict = Verdict::NoAccess.name().to_string();
                r.findings = decision.reasons.iter().map(|x| x.text.clone()).collect();
            }
            let body = self.att_message(&[AttestationAttribute::Result(r)]);
            messages.push((attestation::SUBTYPE, ATTESTATION_IMV_ID, body));
        }
        let reply = self.send(BatchType::Result, &messages, Some(&decision));
        self.decision = Some(decision);
        reply
    }

    fn att_message(&mut self, attrs: &[AttestationAttribute]) -> Vec<u8> {
        self.next_pa_id += 1;
        tnc_proto::vendor_message(self.next_pa_id - 1, attrs)
    }

    /// The attestation (for a device whose evidence was appraised) and the
    /// verdict's audit entry.
    /// On allow, with a verified key request and an issuer: the certificate
    /// and ticket (None when nothing was asked; Err with why when asked and
    /// not given).
    async fn issue_credentials(
        &self,
        d: &Decision,
    ) -> Option<Result<crate::issue::Issued, String>> {
        let request = match &self.key_request {
            KeyRequest::None => return None,
            KeyRequest::Invalid(why) => return Some(Err(why.clone())),
            KeyRequest::Verified(r, _) => r,
        };
        if d.verdict != Verdict::Allow {
            return Some(Err(format!(
                "no credentials: the verdict is {}",
                d.verdict.name()
            )));
        }
        let Some(issuer) = &self.ctx.issuer else {
            return Some(Err(
                "this PDP issues no credentials ([ca] is not configured)".into(),
            ));
        };
        let (Some((device_id, _)), Some(record)) = (
            self.attestation.appraised_device(),
            self.attestation.writes().0,
        ) else {
            return Some(Err(
                "no credentials: no attested device (allowed without TPM evidence)".into(),
            ));
        };
        let policy_version = match self.ctx.store.policy_versions().await {
            Ok(v) => v.get(&record.role).copied().unwrap_or(0),
            Err(e) => {
                tracing::error!(error = %e, "reading the policy version for credentials");
                return Some(Err("the PDP could not read its policy; try again".into()));
            }
        };
        let who = crate::issue::Subject {
            device_id,
            role: record.role,
            user: self.user.clone(),
            policy_version,
            decided_at: self.ctx.now(),
        };
        Some(issuer.issue(request, &who).map_err(|e| {
            tracing::error!(error = %e, "issuing credentials");
            "the PDP could not issue credentials; try again".to_string()
        }))
    }

    /// The credential pair's answer in the RESULT batch: the grant when it
    /// was issued and committed, else a refusal saying why.
    fn credential_message(
        &mut self,
        committed: &Result<(), StoreError>,
        issued: Option<Result<crate::issue::Issued, String>>,
    ) -> Option<Outgoing> {
        let attr = match (issued?, committed) {
            (Ok(i), Ok(())) => CredentialAttribute::Grant(i.grant),
            (Ok(_), Err(_)) => CredentialAttribute::Refusal(Refusal {
                reason: "the PDP could not record its decision; try again".into(),
            }),
            (Err(reason), _) => CredentialAttribute::Refusal(Refusal { reason }),
        };
        Some((
            credential::SUBTYPE,
            CREDENTIAL_IMV_ID,
            self.credential_attrs(&[attr]),
        ))
    }

    /// A credential-pair message with `attrs`.
    fn credential_attrs(&mut self, attrs: &[CredentialAttribute]) -> Vec<u8> {
        self.next_pa_id += 1;
        tnc_proto::vendor_message(self.next_pa_id - 1, attrs)
    }

    async fn record(
        &self,
        d: &Decision,
        credential: Option<&crate::store::CredentialWrite>,
    ) -> Result<(), StoreError> {
        let now = self.ctx.now();
        let reasons: Vec<String> = d.reasons.iter().map(|r| r.text.clone()).collect();
        let (device, enrollment, evidence) = self.attestation.writes();
        let device = device.map(|r| DeviceRecord {
            last_verdict: Some(d.verdict),
            user: self.user.clone(),
            drift: d
                .reasons
                .iter()
                .filter(|r| r.severity != Verdict::Allow)
                .count()
                .try_into()
                .unwrap_or(u32::MAX),
            ..r.clone()
        });
        let appraised = self.attestation.appraised_device();
        let subject = match appraised {
            Some((id, _)) => crate::store::hex(&id),
            None => format!("peer without evidence ({})", self.peer),
        };
        let mut audit = Vec::new();
        if let Some(detail) = enrollment {
            audit.push(("enroll", subject.clone(), detail.to_string()));
        }
        audit.push((
            "verdict",
            subject.clone(),
            format!("{}: {}", d.verdict.name(), d.reason_string()),
        ));
        if let Some(c) = credential {
            audit.push((
                "credential",
                subject,
                format!(
                    "certificate serial {} (sha256 {}) for a key in {}, ticket {}, role {}, user {}, until {}",
                    c.serial,
                    c.certificate_sha256,
                    match &self.key_request {
                        KeyRequest::Verified(_, storage) => storage,
                        _ => "unknown",
                    },
                    crate::store::hex(&c.ticket_id),
                    c.role,
                    c.user.as_deref().unwrap_or("-"),
                    c.not_after
                ),
            ));
        }
        // Anything but allow revokes the tickets the device still holds.
        let revoke = (d.verdict != Verdict::Allow)
            .then(|| format!("{}: {}", d.verdict.name(), d.reason_string()));
        let committed = self
            .ctx
            .store
            .commit_decision(&DecisionWrite {
                at: now,
                device: device.as_ref(),
                attestation: appraised.map(|(id, counters)| AttestationWrite {
                    device_id: id,
                    verdict: d.verdict,
                    findings: &reasons,
                    counters,
                }),
                audit: &audit,
                evidence: evidence.zip(appraised).map(|(e, (id, _))| EvidenceWrite {
                    device_id: id,
                    event_log: &e.event_log,
                    ima: &e.ima,
                    ima_offset: e.ima_offset,
                    ima_end: e.ima_end,
                }),
                credential,
                revoke: revoke.as_deref(),
            })
            .await;
        if committed.is_ok() && revoke.is_some() {
            // Tickets may have been revoked: the watcher pushes them now.
            self.ctx.revoked.notify_one();
        }
        committed
    }

    /// The validators' verdicts combined: the worst wins.
    pub fn decide(&self) -> Decision {
        let os = self.os.assess(&self.ctx.os_policy);
        let att = self
            .attestation
            .outcome()
            .cloned()
            .unwrap_or_else(|| Assessment::single(self.ctx.no_evidence, "no attestation"));
        let verdict = os.verdict.max(att.verdict);
        let mut reasons: Vec<Reason> = att.reasons.into_iter().chain(os.reasons).collect();
        reasons.sort_by_key(|r| std::cmp::Reverse(r.severity));
        let (assessment, recommendation) = match verdict {
            Verdict::Allow => (AssessmentResult::Compliant, AccessRecommendation::Allowed),
            Verdict::Isolate => (
                AssessmentResult::NonCompliantMajor,
                AccessRecommendation::Quarantined,
            ),
            Verdict::NoAccess => (
                AssessmentResult::NonCompliantMajor,
                AccessRecommendation::Denied,
            ),
        };
        Decision {
            verdict,
            assessment,
            recommendation,
            reasons,
            product: self.os.product().map(str::to_string),
        }
    }

    fn send(
        &mut self,
        batch_type: BatchType,
        messages: &[Outgoing],
        decision: Option<&Decision>,
    ) -> Reply {
        let reason = decision.map(Decision::reason_string).unwrap_or_default();
        let mut pb: Vec<PbMessage<'_>> = messages
            .iter()
            .map(|(subtype, imv, body)| {
                PbMessage::Pa(PbPa {
                    // Answers go to the collector that asked; ours only ever
                    // talk to one collector per subtype, which the client's
                    // broker delivers to (ID_ANY is not used toward clients).
                    exclusive: false,
                    subtype: *subtype,
                    collector_id: 0,
                    validator_id: *imv,
                    body,
                })
            })
            .collect();
        if let Some(d) = decision {
            pb.push(PbMessage::AssessmentResult(d.assessment));
            pb.push(PbMessage::AccessRecommendation(d.recommendation));
            pb.push(PbMessage::ReasonString {
                text: &reason,
                lang: "en",
            });
            if d.recommendation != AccessRecommendation::Allowed {
                pb.push(PbMessage::RemediationParameters(Remediation::String {
                    text: &reason,
                    lang: "en",
                }));
            }
        }
        match self.pb.send(batch_type, pb) {
            Ok(bytes) => Reply {
                batches: vec![bytes],
                close: false,
            },
            Err(e) => {
                self.failure = Some(format!("cannot send {batch_type:?}: {e}"));
                Reply {
                    batches: self
                        .pb
                        .abort("the PDP could not build its batch")
                        .into_iter()
                        .collect(),
                    close: true,
                }
            }
        }
    }
}

impl PdpSession<'_> {
    /// What an endpoint's credential-pair message asks: a key request
    /// (checked), a pairing, where a VM serves, pairings acknowledged.
    fn read_credential(&mut self, body: &[u8]) {
        let Ok(msg) = PaMessage::decode(body) else {
            self.key_request = KeyRequest::Invalid("malformed credential message".into());
            return;
        };
        for raw in &msg.attributes {
            if raw.vendor != attestation::VENDOR {
                continue;
            }
            match CredentialAttribute::decode(raw.attr_type, raw.value) {
                Ok(CredentialAttribute::KeyRequest(r)) => {
                    self.key_request = match pki::ca::verify_request(&r.csr) {
                        Ok(v) => KeyRequest::Verified(
                            Box::new(v),
                            match r.key_storage.as_str() {
                                "tpm" => "tpm",
                                "software" => "software",
                                _ => "unknown",
                            },
                        ),
                        Err(e) => KeyRequest::Invalid(format!("the key request is refused: {e}")),
                    }
                }
                Ok(CredentialAttribute::PairingRequest(r)) => {
                    self.pairing_request = Some(Box::new(r))
                }
                Ok(CredentialAttribute::Serving(s)) => self.serving_at = Some(Box::new(s)),
                Ok(CredentialAttribute::PairingAccepted(a)) => self.accepted.push(a.id),
                Ok(_) => {
                    self.key_request =
                        KeyRequest::Invalid("a PDP's credential attribute from an endpoint".into())
                }
                Err(e) => {
                    self.key_request =
                        KeyRequest::Invalid(format!("malformed credential attribute: {e}"))
                }
            }
        }
    }
}

/// A PA-TNC message with one PA-TNC Error attribute.
fn pa_error(error: &tnc_proto::pa_tnc::PaTncError<'_>) -> Vec<u8> {
    PaMessageWriter::new(0)
        .attribute(false, &Attribute::PaTncError(*error))
        .finish()
}

/// The attestation attributes of one PA-TNC message, or the PA-TNC Error to
/// answer it with and a description.
pub(super) fn decode_attestation(body: &[u8]) -> Decoded {
    let msg = PaMessage::decode(body).map_err(|e| (pa_error(&e.to_error(body)), e.to_string()))?;
    msg.check_supported(|vendor, t| {
        vendor == attestation::VENDOR && attestation::attr::is_known(t)
    })
    .map_err(|e| (pa_error(&e.to_error(body)), e.to_string()))?;
    let mut out = Vec::new();
    for raw in &msg.attributes {
        if raw.vendor != attestation::VENDOR {
            continue;
        }
        match AttestationAttribute::decode(raw.attr_type, raw.value) {
            Ok(a) => out.push(a),
            Err(e) => {
                let err =
                    tnc_proto::pa_tnc::PaDecodeError::InvalidParameter(tnc_proto::Malformed {
                        offset: raw.value_offset(),
                        what: "attestation attribute value is not the expected CBOR",
                    });
                return Err((pa_error(&err.to_error(body)), e.to_string()));
            }
        }
    }
    Ok(out)
}
