//! The attestation validator: enrolls a device's AK (EK certificate chain and
//! credential activation), asks for a quote over fresh nonce and the policy's
//! PCRs, and appraises the quote with the UEFI event log and the IMA list
//! against the reference values (`policy::appraisal`).
//!
//! One validator lives per session. It does no I/O: what it needs from the
//! store (the device an Identity names, the reference values for its role)
//! the session looks up first ([`AttestationValidator::needs`]) and hands
//! over as [`Lookups`]; what outlives the session (the device's enrollment
//! and the state the next incremental appraisal continues from) the session
//! commits with the verdict ([`AttestationValidator::writes`]), before the
//! verdict is sent.

use super::ReferenceError;
use super::{Assessment, Reason};
use crate::devices::DeviceRecord;
use crate::store::StoreError;
use policy::appraisal::{appraise, Challenge, DeviceState, Evidence};
use policy::enrollment::{begin, PendingEnrollment};
use policy::reference::CompiledReference;
use policy::tpm::{PcrSelection, Public};
use policy::{HashAlg, Verdict};
use std::sync::Arc;
use tnc_proto::attestation::{
    AttestationAttribute, AttestationResult, BankSelection, CredentialChallenge, Hello, Identity,
    QuoteEvidence, QuoteRequest,
};

/// TPM reset count, restart count and clock of a quote.
pub type TpmCounters = (u32, u32, u64);

/// Where the exchange with the attestation collector is.
enum Phase {
    /// Nothing from the collector yet.
    AwaitHello,
    /// Hello received from an endpoint with a TPM; the Identity follows in
    /// the same batch, or is asked for (IdentityRequest).
    AwaitIdentity {
        hello: Hello,
    },
    /// QuoteRequest sent (and a credential challenge if the AK is new).
    AwaitEvidence(Box<Expecting>),
    Done,
}

/// What the evidence must answer.
struct Expecting {
    hello: Hello,
    /// SHA-256 of the EK certificate: the device's identity in the registry.
    device_id: [u8; 32],
    identity: Identity,
    ak: Public,
    /// Present while the AK is not enrolled: the proof must come before or
    /// with the quote.
    pending: Option<PendingEnrollment>,
    nonce: Vec<u8>,
    /// The state the appraisal continues from (an enrolled device's last one).
    prior: Option<DeviceState>,
    /// A credential proof that came before the evidence (in another message).
    proof: Option<Vec<u8>>,
    /// The quote was asked for again after a reboot.
    reasked: bool,
    /// When an enrolled device was enrolled (None: enrolling now).
    enrolled_at: Option<u64>,
    /// For the audit log.
    ek_issuer: String,
}

/// What the validator works with, lent by the PDP for one call: the trust
/// anchors and the policy's settings, the time, and the randomness for
/// nonces.
pub struct Env<'a> {
    /// DER certificates of the EK CAs (empty: no TPM can enroll).
    pub ek_roots: &'a [Vec<u8>],
    pub ek_intermediates: &'a [Vec<u8>],
    /// The PCRs every quote must cover.
    pub selection: &'a [PcrSelection],
    /// The verdict for an endpoint without TPM evidence.
    pub no_evidence: Verdict,
    pub allow_sha1_quotes: bool,
    /// Unix seconds.
    pub now: u64,
    pub rng: &'a dyn pki::rand::SecureRandom,
}

impl Env<'_> {
    /// A fresh 32-byte nonce. A failing CSPRNG is not recoverable for a
    /// verifier: nonces would repeat.
    fn nonce(&self) -> Vec<u8> {
        let mut nonce = vec![0u8; 32];
        #[allow(clippy::expect_used)]
        self.rng
            .fill(&mut nonce)
            .expect("the system random number generator failed");
        nonce
    }
}

/// What the next attributes need from the store: the device an Identity
/// names, and the reference values of the device's role.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Needs {
    pub device: Option<[u8; 32]>,
    pub reference: Option<tnc_proto::attestation::Role>,
}

/// The answers to [`Needs`], looked up by the session.
#[derive(Debug, Default)]
pub struct Lookups {
    /// The device (None: not enrolled), or why the store could not say.
    pub device: Option<Result<Option<DeviceRecord>, StoreError>>,
    pub reference: Option<Result<Arc<CompiledReference>, ReferenceError>>,
}

/// The device ID of an Identity: SHA-256 of its EK certificate.
pub fn device_id(identity: &Identity) -> [u8; 32] {
    let mut id = [0u8; 32];
    id.copy_from_slice(&HashAlg::Sha256.digest(&identity.ek_certificate));
    id
}

pub struct AttestationValidator {
    phase: Phase,
    outcome: Option<Assessment>,
    /// The device identified in this session, once its evidence was appraised.
    device_id: Option<[u8; 32]>,
    /// The appraised quote's counters.
    counters: Option<TpmCounters>,
    /// The device record to commit with the verdict (enrolled or moved on).
    /// Boxed, as is the kept evidence: a kept session holds the validator
    /// between rounds, where these are empty.
    to_store: Option<Box<DeviceRecord>>,
    /// The audit detail of an enrollment this session proved.
    enrollment: Option<String>,
    /// Genuine evidence to keep for learn mode: event log, IMA entries and
    /// their range.
    evidence: Option<Box<KeptEvidence>>,
}

/// Evidence that reproduced its quote, kept for `policy learn`.
pub struct KeptEvidence {
    pub event_log: Vec<u8>,
    pub ima: Vec<u8>,
    pub ima_offset: u64,
    pub ima_end: u64,
}

impl Default for AttestationValidator {
    fn default() -> Self {
        Self::new()
    }
}

impl AttestationValidator {
    pub fn new() -> Self {
        Self {
            phase: Phase::AwaitHello,
            outcome: None,
            device_id: None,
            counters: None,
            to_store: None,
            enrollment: None,
            evidence: None,
        }
    }

    /// The device whose evidence was appraised, and the quote's counters.
    pub fn appraised_device(&self) -> Option<([u8; 32], Option<TpmCounters>)> {
        self.device_id.map(|d| (d, self.counters))
    }

    /// What to commit with the verdict: the device record and, if this
    /// session enrolled it, the enrollment's audit detail.
    pub fn writes(&self) -> (Option<&DeviceRecord>, Option<&str>, Option<&KeptEvidence>) {
        (
            self.to_store.as_deref(),
            self.enrollment.as_deref(),
            self.evidence.as_deref(),
        )
    }

    /// The verdict, once there is one.
    pub fn outcome(&self) -> Option<&Assessment> {
        self.outcome.as_ref()
    }

    /// What the store must answer before `attrs` can be received.
    pub fn needs(&self, attrs: &[AttestationAttribute]) -> Needs {
        let mut role = match &self.phase {
            Phase::AwaitIdentity { hello } => Some(hello.role),
            Phase::AwaitEvidence(e) => Some(e.hello.role),
            _ => None,
        };
        let mut needs = Needs::default();
        for a in attrs {
            match a {
                AttestationAttribute::Hello(h) => role = role.or(Some(h.role)),
                AttestationAttribute::Identity(i) => {
                    needs.device = needs.device.or(Some(device_id(i)))
                }
                AttestationAttribute::QuoteEvidence(_) => needs.reference = role,
                _ => {}
            }
        }
        needs
    }

    /// The session cut the exchange off (it took too many rounds): no
    /// access, unless a verdict was reached.
    pub fn abandon(&mut self, why: impl Into<String>) {
        if self.outcome.is_none() {
            self.finish(Assessment::single(Verdict::NoAccess, why));
        }
    }

    /// No more messages will come (the collector fell silent, or the client
    /// has no attestation collector at all): decide on what there is.
    pub fn conclude(&mut self, env: &Env<'_>) {
        if self.outcome.is_some() {
            return;
        }
        let why = match &self.phase {
            Phase::AwaitHello => "the endpoint sent no TPM evidence (no attestation collector)",
            _ => "the attestation collector stopped before sending its evidence",
        };
        self.finish(Assessment::single(env.no_evidence, why));
    }

    fn finish(&mut self, a: Assessment) {
        self.phase = Phase::Done;
        self.outcome = Some(a);
    }

    /// The result attribute sent with the PB-TNC RESULT batch.
    pub fn result_attribute(&self) -> Option<AttestationAttribute> {
        self.outcome.as_ref().map(|a| {
            AttestationAttribute::Result(AttestationResult {
                verdict: a.verdict.name().to_string(),
                findings: a.reasons.iter().map(|r| r.text.clone()).collect(),
            })
        })
    }

    /// One PA-TNC message's attestation attributes in, with the store's
    /// answers to [`Self::needs`]; the attributes to answer with out (none
    /// when the validator is done or waiting).
    pub fn receive(
        &mut self,
        env: &Env<'_>,
        lookups: &Lookups,
        attrs: Vec<AttestationAttribute>,
    ) -> Vec<AttestationAttribute> {
        let mut out = Vec::new();
        let mut ask_identity = false;
        for attr in attrs {
            if self.outcome.is_some() {
                break;
            }
            match (std::mem::replace(&mut self.phase, Phase::Done), attr) {
                (Phase::AwaitHello, AttestationAttribute::Hello(hello)) => {
                    if hello.tpm {
                        // Asked for below unless it follows in this batch.
                        self.phase = Phase::AwaitIdentity { hello };
                        ask_identity = true;
                    } else {
                        self.finish(Assessment::single(
                            env.no_evidence,
                            format!("the {} has no TPM: no evidence", hello.role.name()),
                        ));
                    }
                }
                (Phase::AwaitIdentity { hello }, AttestationAttribute::Identity(identity)) => {
                    match self.identify(env, lookups, hello, identity) {
                        Ok((expecting, msgs)) => {
                            self.phase = Phase::AwaitEvidence(expecting);
                            out.extend(msgs);
                        }
                        Err(a) => self.finish(a),
                    }
                }
                (Phase::AwaitEvidence(mut expecting), AttestationAttribute::CredentialProof(p)) => {
                    // Kept with the expectation: the evidence may come in a
                    // later PA-TNC message.
                    expecting.proof = Some(p.secret);
                    self.phase = Phase::AwaitEvidence(expecting);
                }
                (Phase::AwaitEvidence(mut expecting), AttestationAttribute::QuoteEvidence(ev)) => {
                    // The device rebooted since its last attestation and sent
                    // entries from the old offset: ask once more, for the
                    // whole list of this boot, over a new nonce.
                    if !expecting.reasked && rebooted(expecting.prior.as_ref(), &ev) {
                        expecting.reasked = true;
                        let nonce = env.nonce();
                        expecting.nonce = nonce.clone();
                        out.push(AttestationAttribute::QuoteRequest(QuoteRequest {
                            nonce,
                            selection: selection_of(env),
                            ima_offset: 0,
                        }));
                        self.phase = Phase::AwaitEvidence(expecting);
                        continue;
                    }
                    let proof = expecting.proof.take();
                    let a = self.appraise(env, lookups, *expecting, proof, &ev);
                    self.finish(a);
                }
                // A collector that fails while its AK's credential is pending
                // has not proven the AK lives in the EK's TPM: no access.
                (Phase::AwaitEvidence(e), AttestationAttribute::Failure(f))
                    if e.pending.is_some() =>
                {
                    self.finish(Assessment::single(
                        Verdict::NoAccess,
                        format!(
                            "AK enrollment: the endpoint did not activate the credential: {}",
                            printable(&f.message)
                        ),
                    ));
                }
                // An identified device that then fails to send its quote is
                // not an endpoint without a TPM: no access.
                (Phase::AwaitEvidence(_), AttestationAttribute::Failure(f)) => {
                    self.finish(Assessment::single(
                        Verdict::NoAccess,
                        format!(
                            "the device identified its TPM, then sent no quote: {}",
                            printable(&f.message)
                        ),
                    ));
                }
                (_, AttestationAttribute::Failure(f)) => {
                    self.finish(Assessment::single(
                        env.no_evidence,
                        format!(
                            "the attestation collector could not attest: {}",
                            printable(&f.message)
                        ),
                    ));
                }
                (_, other) => {
                    self.finish(Assessment::single(
                        Verdict::NoAccess,
                        format!(
                            "attestation protocol violation: unexpected {} attribute",
                            attribute_name(&other)
                        ),
                    ));
                }
            }
        }
        // A Hello alone (from a client that waits to be asked): ask.
        if ask_identity && matches!(self.phase, Phase::AwaitIdentity { .. }) {
            out.push(AttestationAttribute::IdentityRequest);
        }
        // Decided within this batch (evidence before it was asked for, a
        // failure): what it would have asked next goes unsent.
        if self.outcome.is_some() {
            out.clear();
        }
        out
    }

    /// Identity received: an enrolled AK gets a quote request; a new one gets a
    /// credential challenge with it, after the EK certificate chain checks out.
    #[allow(clippy::type_complexity)]
    fn identify(
        &mut self,
        env: &Env<'_>,
        lookups: &Lookups,
        hello: Hello,
        identity: Identity,
    ) -> Result<(Box<Expecting>, Vec<AttestationAttribute>), Assessment> {
        let no_access = |what: String| Assessment::single(Verdict::NoAccess, what);
        let ak = Public::parse(&identity.ak_public)
            .map_err(|e| no_access(format!("the AK public area does not parse: {e}")))?;
        let ek = Public::parse(&identity.ek_public)
            .map_err(|e| no_access(format!("the EK public area does not parse: {e}")))?;
        let device_id = device_id(&identity);
        let ak_name = ak.name();
        let known = match &lookups.device {
            Some(Ok(known)) => known.clone(),
            Some(Err(e)) => {
                return Err(no_access(format!(
                    "the PDP cannot read its device store: {e}"
                )))
            }
            None => return Err(no_access("the PDP did not look the device up".into())),
        };
        let enrolled = known.as_ref().filter(|d| d.ak_name == ak_name);
        // The role is bound at enrollment: a device does not get to pick the
        // reference values it is appraised by.
        if let Some(d) = enrolled {
            if d.role != hello.role {
                return Err(no_access(format!(
                    "the device was enrolled as a {} and now claims to be a {}",
                    d.role.name(),
                    hello.role.name()
                )));
            }
        }
        let enrolled_at = enrolled.map(|d| d.enrolled_at);
        let (pending, prior) = match enrolled {
            Some(d) => (None, d.state.clone()),
            // Without a trust anchor no EK can be checked: the endpoint is
            // treated as one without TPM evidence, and told why.
            None if env.ek_roots.is_empty() => {
                return Err(Assessment::single(
                    env.no_evidence,
                    "the PDP trusts no EK CA yet, so this TPM cannot enroll: the operator adds \
                     the TPM vendor's EK CA (tnc-server ek-roots add)",
                ));
            }
            None => {
                let pending = begin(
                    &ek,
                    &identity.ek_certificate,
                    env.ek_roots,
                    env.ek_intermediates,
                    &ak,
                    env.now as i64,
                    env.rng,
                )
                .map_err(|e| no_access(format!("AK enrollment refused: {e}")))?;
                (Some(pending), None)
            }
        };
        let nonce = env.nonce();
        let mut msgs = Vec::new();
        if let Some(p) = &pending {
            msgs.push(AttestationAttribute::CredentialChallenge(
                CredentialChallenge {
                    id_object: p.id_object.clone(),
                    encrypted_secret: p.encrypted_secret.clone(),
                },
            ));
        }
        msgs.push(AttestationAttribute::QuoteRequest(QuoteRequest {
            nonce: nonce.clone(),
            selection: selection_of(env),
            ima_offset: prior.as_ref().map_or(0, |s| s.ima_entries as u64),
        }));
        Ok((
            Box::new(Expecting {
                hello,
                device_id,
                identity,
                ak,
                ek_issuer: pending
                    .as_ref()
                    .map(|p| p.ek_certificate.issuer.clone())
                    .unwrap_or_default(),
                pending,
                nonce,
                prior,
                proof: None,
                reasked: false,
                enrolled_at,
            }),
            msgs,
        ))
    }

    fn appraise(
        &mut self,
        env: &Env<'_>,
        lookups: &Lookups,
        e: Expecting,
        proof: Option<Vec<u8>>,
        ev: &QuoteEvidence,
    ) -> Assessment {
        if let Some(pending) = &e.pending {
            let Some(secret) = proof else {
                return Assessment::single(
                    Verdict::NoAccess,
                    "AK enrollment: no credential activation proof came with the evidence",
                );
            };
            if let Err(err) = pending.finish(&secret) {
                return Assessment::single(Verdict::NoAccess, format!("AK enrollment: {err}"));
            }
        }
        let Ok(ima_offset) = usize::try_from(ev.ima_offset) else {
            return Assessment::single(Verdict::NoAccess, "IMA offset out of range");
        };
        let reference = match &lookups.reference {
            Some(Ok(r)) => r.clone(),
            Some(Err(why)) => return Assessment::single(why.verdict(), why.to_string()),
            None => {
                return Assessment::single(
                    Verdict::NoAccess,
                    "the PDP did not look the reference values up",
                )
            }
        };
        let now = env.now;
        // A whole list from an endpoint seen before: appraised from the
        // start (after a reboot the appraisal itself notices the new boot).
        let prior = match &e.prior {
            Some(p) if ev.ima_offset == 0 && p.ima_entries > 0 => Some(from_the_start(p)),
            other => other.clone(),
        };
        let appraisal = appraise(
            &e.ak,
            &Evidence {
                attest: &ev.attest,
                signature: &ev.signature,
                event_log: &ev.event_log,
                ima: &ev.ima,
                ima_offset,
            },
            &Challenge {
                nonce: &e.nonce,
                selection: env.selection,
                allow_sha1: env.allow_sha1_quotes,
            },
            &reference,
            prior.as_ref(),
            now,
        );
        if appraisal
            .quote
            .as_ref()
            .is_some_and(|q| q.sig_hash == HashAlg::Sha1)
        {
            tracing::warn!(
                device = %crate::store::hex(&e.device_id[..6]),
                "a quote signed over SHA-1 was accepted (attestation.allow_sha1_quotes = true)"
            );
        }
        // Genuine evidence (the quote verified and the logs reproduced it)
        // moves the device's state on, whatever the verdict: the next
        // appraisal continues from it. An enrollment stands once proven. The
        // session commits both with its verdict, in one transaction, before
        // the verdict goes out.
        let genuine = appraisal.next_state.is_some();
        if e.pending.is_some() || genuine {
            let record = DeviceRecord {
                device_id: e.device_id,
                role: e.hello.role,
                ek_certificate: e.identity.ek_certificate.clone(),
                ak_name: e.ak.name(),
                ak_public: e.identity.ak_public.clone(),
                state: appraisal.next_state.clone().or_else(|| {
                    if e.pending.is_some() {
                        None
                    } else {
                        e.prior.clone()
                    }
                }),
                last_verdict: Some(appraisal.verdict),
                last_seen: now,
                enrolled_at: e.enrolled_at.unwrap_or(now),
                // The session fills in who authenticated and the drift of
                // the decision as a whole.
                user: None,
                host: e.hello.host.as_ref().map(|h| h.to_string()),
                drift: 0,
            };
            if e.pending.is_some() {
                self.enrollment = Some(format!(
                    "{} AK {} enrolled (EK certificate issuer: {})",
                    e.hello.role.name(),
                    crate::store::hex(&record.ak_name),
                    e.ek_issuer
                ));
            }
            self.to_store = Some(Box::new(record));
        }
        if let Some(next) = &appraisal.next_state {
            self.evidence = Some(Box::new(KeptEvidence {
                event_log: ev.event_log.clone(),
                ima: ev.ima.clone(),
                ima_offset: ev.ima_offset,
                ima_end: next.ima_entries as u64,
            }));
        }
        // History is recorded under the device only for a quote its AK made.
        if appraisal.quote.is_some() {
            self.device_id = Some(e.device_id);
        }
        self.counters = appraisal.quote.as_ref().map(|q| {
            let c = &q.attest.clock_info;
            (c.reset_count, c.restart_count, c.clock)
        });
        let mut findings = appraisal.findings;
        findings.sort_by_key(|f| std::cmp::Reverse(f.severity));
        let reasons = findings
            .iter()
            .filter(|f| f.severity > Verdict::Allow)
            .map(|f| Reason {
                severity: f.severity,
                text: f.to_string(),
            })
            .collect::<Vec<_>>();
        Assessment {
            verdict: appraisal.verdict,
            reasons: if reasons.is_empty() {
                vec![Reason {
                    severity: Verdict::Allow,
                    text: format!(
                        "TPM quote and logs match the reference values ({} enrolled)",
                        if e.pending.is_some() {
                            "AK newly"
                        } else {
                            "AK"
                        }
                    ),
                }]
            } else {
                reasons
            },
        }
    }
}

/// A peer's text for logs and the audit trail: control characters (NUL
/// among them, which PostgreSQL text refuses) shown as U+FFFD, at most 512
/// characters.
fn printable(s: &str) -> String {
    s.chars()
        .take(512)
        .map(|c| if c.is_control() { '\u{FFFD}' } else { c })
        .collect()
}

/// The policy's PCR selection as the attribute carries it.
fn selection_of(env: &Env<'_>) -> Vec<BankSelection> {
    env.selection
        .iter()
        .map(|s| BankSelection {
            alg: s.hash,
            pcrs: s.pcrs.iter().map(|&p| p as u8).collect(),
        })
        .collect()
}

/// Whether `ev` comes from a boot after the one `prior` describes while it
/// continues that boot's IMA list (so it cannot be appraised as it is).
fn rebooted(prior: Option<&DeviceState>, ev: &QuoteEvidence) -> bool {
    let Some(p) = prior else { return false };
    if ev.ima_offset == 0 {
        return false;
    }
    policy::tpm::Attest::parse(&ev.attest).is_ok_and(|a| a.clock_info.reset_count > p.reset_count)
}

/// The state an appraisal of a whole IMA list (offset 0) continues from
/// when the device was seen before in this boot: the counters stay (a
/// rewind is still refused), the list starts over.
fn from_the_start(p: &DeviceState) -> DeviceState {
    DeviceState {
        ima_entries: 0,
        pcr10: HashAlg::ALL
            .iter()
            .map(|b| (*b, vec![0u8; b.size()]))
            .collect(),
        key_applications_seen: Default::default(),
        ima_flagged: Vec::new(),
        ima_flagged_overflow: false,
        ..p.clone()
    }
}

fn attribute_name(a: &AttestationAttribute) -> &'static str {
    match a {
        AttestationAttribute::Hello(_) => "Hello",
        AttestationAttribute::IdentityRequest => "IdentityRequest",
        AttestationAttribute::Identity(_) => "Identity",
        AttestationAttribute::CredentialChallenge(_) => "CredentialChallenge",
        AttestationAttribute::CredentialProof(_) => "CredentialProof",
        AttestationAttribute::QuoteRequest(_) => "QuoteRequest",
        AttestationAttribute::QuoteEvidence(_) => "QuoteEvidence",
        AttestationAttribute::Result(_) => "Result",
        AttestationAttribute::Failure(_) => "Failure",
    }
}
