//! The PDP session's rules, batch by batch, without sockets, TLS or a TPM:
//! the login agent's own PB-TNC client (`tnc_client::agent::Agent`) talks
//! to a [`PdpSession`] on a [`MemoryStore`] under a [`FakeClock`].
//!
//! The endpoints are SOFTWARE: a [`SoftAk`] registered as an enrolled
//! device's AK quotes the simulated boot of `testnet/profiles/*.toml`. What
//! a real TPM adds (credential activation, the EK chain, tpm2-tools' quote
//! format) is covered end to end in `testnet/tests/pdp_e2e.rs` and
//! `client_tpm.rs`; these are the fast siblings of those tests.

use super::session::{PdpSession, SessionLimits};
use super::PdpContext;
use crate::clock::FakeClock;
use crate::devices::DeviceRecord;
use crate::store::MemoryStore;
use policy::Verdict;
use std::sync::Arc;
use testnet::simulator::{Measurements, Profile};
use testnet::soft_ak::{SoftAk, SoftCollector};
use tnc_client::agent::{Agent, Collector, Outcome};
use tnc_client::attest::{AttestationCollector, AttestationConfig};
use tnc_client::collect::EvidencePaths;
use tnc_client::os::OsFacts;
use tnc_client::tpm::AkKind;
use tnc_proto::attestation::{Identity, QuoteRequest, Role};
use tnc_proto::common::AssessmentResult;
use tnc_proto::pa_tnc::ForwardingEnabled;
use tnc_proto::pb_tnc::{AccessRecommendation, BatchType, PbSession};

/// 2027-01-15 08:00 UTC: the fake clock's start.
const T0: u64 = 1_800_000_000;
const PEER: &str = "192.0.2.7:40000";

fn profile(name: &str) -> Profile {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../testnet/profiles")
        .join(format!("{name}.toml"));
    Profile::load(&path).unwrap()
}

/// A PDP with the reference values of `good-terminal` for terminals.
struct Bed {
    store: Arc<MemoryStore>,
    clock: Arc<FakeClock>,
    ctx: PdpContext,
}

impl Bed {
    fn new() -> Self {
        let store = Arc::new(MemoryStore::new());
        let body = profile("good-terminal")
            .reference_values()
            .unwrap()
            .to_toml();
        store.load_policy(Role::Terminal, &body);
        let clock = Arc::new(FakeClock::at(T0));
        let ctx = PdpContext {
            clock: clock.clone(),
            ..PdpContext::new(store.clone())
        };
        Self { store, clock, ctx }
    }
}

/// A software device: its AK, its EK certificate (any bytes: an enrolled
/// device's EK certificate is its name, not checked again) and the boot it
/// quotes.
struct Device {
    id: [u8; 32],
    ak: SoftAk,
    ek_certificate: Vec<u8>,
    measurements: Arc<Measurements>,
}

impl Device {
    fn new(boot: &str) -> Self {
        let ek_certificate = format!("software EK of a {boot} device").into_bytes();
        let identity = Identity {
            ek_public: Vec::new(),
            ek_certificate,
            ak_public: Vec::new(),
        };
        Self {
            id: crate::imv::attestation::device_id(&identity),
            ak: SoftAk::generate(),
            ek_certificate: identity.ek_certificate,
            measurements: Arc::new(profile(boot).measure().unwrap()),
        }
    }

    /// As the PDP records a device whose credential activation succeeded.
    fn enroll(&self, bed: &Bed, role: Role) {
        bed.store.put_device(DeviceRecord {
            device_id: self.id,
            role,
            ek_certificate: self.ek_certificate.clone(),
            ak_name: self.ak.public().name(),
            ak_public: self.ak.public_area().to_vec(),
            state: None,
            last_verdict: None,
            last_seen: 0,
            enrolled_at: T0 - 86_400,
            user: None,
            host: None,
            drift: 0,
        });
    }

    /// The collector for one session, quoting with `ak` (the device's own
    /// unless a test swaps it), claiming `role`.
    fn collector(&self, role: Role, ak: SoftAk) -> SoftCollector {
        let identity = Identity {
            // Parsed, never trusted, for an enrolled device; its AK is.
            ek_public: ak.public_area().to_vec(),
            ek_certificate: self.ek_certificate.clone(),
            ak_public: ak.public_area().to_vec(),
        };
        let values = self
            .measurements
            .pcr_values_after(self.measurements.ima_entries());
        SoftCollector::new(
            role,
            ak,
            identity,
            self.measurements.clone(),
            Arc::new(values),
        )
    }
}

fn os_facts() -> OsFacts {
    OsFacts {
        product: "Debian".into(),
        vendor: 0,
        version_id: "12".into(),
        arch: "x86_64".into(),
        version_string: "12 x86_64".into(),
        last_use: "2027-01-15T07:00:00Z".into(),
        forwarding: ForwardingEnabled::Disabled,
        default_password: false,
        packages: vec![("tnc-client".into(), "0.1.0".into())],
    }
}

/// The agent of an endpoint that says it has no TPM.
fn agent_without_tpm() -> Agent {
    Agent::new(
        os_facts(),
        AttestationCollector::new(AttestationConfig {
            role: Role::Terminal,
            tpm: None,
            evidence: EvidencePaths::default(),
            ak_path: "/nonexistent/ak.bin".into(),
            ak_kind: AkKind::EcdsaP256Sha256,
            host: None,
        }),
    )
}

/// What one handshake came to, on both sides.
#[derive(Debug)]
struct Exchange {
    /// What the agent understood.
    outcome: Outcome,
    verdict: Option<Verdict>,
    reasons: Vec<String>,
    failure: Option<String>,
    /// Batches the PDP sent.
    batches: usize,
}

impl Exchange {
    fn says(&self, text: &str) -> bool {
        self.reasons.iter().any(|r| r.contains(text))
    }
}

/// Runs one whole PB-TNC handshake between `agent` and a new session.
async fn handshake(ctx: &PdpContext, agent: &mut Agent, limits: SessionLimits) -> Exchange {
    let mut session = PdpSession::with_limits(ctx, PEER, limits);
    drive(&mut session, agent).await
}

/// Runs one whole PB-TNC handshake between `agent` and `session`.
async fn drive(session: &mut PdpSession<'_>, agent: &mut Agent) -> Exchange {
    let first = agent.first_batch().unwrap();
    exchange(session, agent, first, 0).await
}

/// The client's `first` batch to `session`, then batch for batch until the
/// session is decided (or ends); `batches` the PDP sent before.
async fn exchange(
    session: &mut PdpSession<'_>,
    agent: &mut Agent,
    first: Vec<u8>,
    mut batches: usize,
) -> Exchange {
    let mut next = Some(first);
    while let Some(batch) = next.take() {
        let reply = session.receive(&batch).await;
        for b in &reply.batches {
            batches += 1;
            assert!(batches < 32, "the exchange does not end");
            let (answer, over) = agent.receive(b).unwrap();
            if !reply.close && !over {
                next = answer;
            } else if let Some(close) = answer {
                // The agent's CLOSE after RESULT.
                session.receive(&close).await;
            }
        }
    }
    let decision = session.decision().cloned();
    Exchange {
        outcome: agent.outcome().clone(),
        verdict: decision.as_ref().map(|d| d.verdict),
        reasons: decision
            .map(|d| d.reasons.into_iter().map(|r| r.text).collect())
            .unwrap_or_default(),
        failure: session.failure().map(str::to_string),
        batches,
    }
}

async fn login(bed: &Bed, collector: impl Collector + 'static) -> Exchange {
    let mut agent = Agent::new(os_facts(), collector);
    handshake(&bed.ctx, &mut agent, SessionLimits::default()).await
}

type Asked = Arc<std::sync::Mutex<Vec<QuoteRequest>>>;

fn asked(c: &SoftCollector) -> Asked {
    c.asked.clone()
}

#[tokio::test]
async fn an_enrolled_device_with_its_reference_boot_is_allowed_and_recorded() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    let x = login(&bed, dev.collector(Role::Terminal, dev.ak_clone())).await;
    assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
    assert_eq!(
        x.outcome.recommendation,
        Some(AccessRecommendation::Allowed)
    );
    assert_eq!(x.outcome.assessment, Some(AssessmentResult::Compliant));
    assert_eq!(x.failure, None);
    assert_eq!(x.outcome.attestation.as_ref().unwrap().verdict, "allow");
    // Committed before RESULT: the attestation, the device's new state, the
    // audit entry, all at the fake clock's time.
    let history = bed.store.attestations(&dev.id);
    assert_eq!(history.len(), 1);
    assert_eq!(
        (history[0].at, history[0].verdict.as_str()),
        (T0 as i64, "allow")
    );
    let record = bed.store.device_record(&dev.id).unwrap();
    assert_eq!(record.last_seen, T0);
    assert_eq!(record.last_verdict, Some(Verdict::Allow));
    assert_eq!(
        record.state.unwrap().ima_entries,
        dev.measurements.ima_entries()
    );
    let audit = bed.store.audit_entries();
    assert_eq!(audit.len(), 1);
    assert_eq!(audit[0].kind, "verdict");
    assert!(audit[0].detail.starts_with("allow"), "{:?}", audit[0]);
    // Learn mode's evidence kept: the whole IMA list.
    let kept = bed.store.evidence(&dev.id).unwrap();
    assert_eq!(kept.ima_entries as usize, dev.measurements.ima_entries());
}

#[tokio::test]
async fn the_next_attestation_asks_only_for_new_ima_entries() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    let first = dev.collector(Role::Terminal, dev.ak_clone());
    let first_asked = asked(&first);
    assert_eq!(login(&bed, first).await.verdict, Some(Verdict::Allow));
    bed.clock.advance(std::time::Duration::from_secs(300));
    let second = dev.collector(Role::Terminal, dev.ak_clone());
    let second_asked = asked(&second);
    let x = login(&bed, second).await;
    assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
    let n = dev.measurements.ima_entries() as u64;
    assert_eq!(first_asked.lock().unwrap()[0].ima_offset, 0);
    let again = second_asked.lock().unwrap();
    assert_eq!(again.len(), 1);
    assert_eq!(again[0].ima_offset, n, "continues where the last one ended");
    let history = bed.store.attestations(&dev.id);
    assert_eq!(history.len(), 2);
    assert_eq!(history[1].at, (T0 + 300) as i64);
}

#[tokio::test]
async fn an_unknown_program_isolates_with_the_finding_that_names_it() {
    let bed = Bed::new();
    let dev = Device::new("unknown-app");
    dev.enroll(&bed, Role::Terminal);
    let x = login(&bed, dev.collector(Role::Terminal, dev.ak_clone())).await;
    assert_eq!(x.verdict, Some(Verdict::Isolate), "{x:?}");
    assert_eq!(
        x.outcome.recommendation,
        Some(AccessRecommendation::Quarantined)
    );
    assert!(x.says("/home/user/.local/bin/cryptominer"), "{x:?}");
    let findings = &x.outcome.attestation.as_ref().unwrap().findings;
    assert!(findings.iter().any(|f| f.contains("cryptominer")));
    // The remediation tells the user the same.
    assert!(x.outcome.remediation.unwrap().contains("cryptominer"));
    // Genuine evidence: the device's state moves on all the same.
    let record = bed.store.device_record(&dev.id).unwrap();
    assert_eq!(record.last_verdict, Some(Verdict::Isolate));
    assert!(record.state.is_some());
}

#[tokio::test]
async fn an_endpoint_without_a_tpm_gets_the_no_evidence_verdict() {
    let mut bed = Bed::new();
    let mut agent = agent_without_tpm();
    let x = handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
    assert_eq!(x.verdict, Some(Verdict::Isolate), "the default: {x:?}");
    assert!(x.says("has no TPM"), "{x:?}");
    // Recorded under the peer, not a device.
    let audit = bed.store.audit_entries();
    assert_eq!(audit.len(), 1);
    assert!(audit[0].subject.contains(PEER), "{:?}", audit[0]);
    // The operator's choice is honoured, whatever it is.
    bed.ctx.no_evidence = Verdict::NoAccess;
    let x = handshake(&bed.ctx, &mut agent_without_tpm(), SessionLimits::default()).await;
    assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
    assert_eq!(x.outcome.recommendation, Some(AccessRecommendation::Denied));
}

#[tokio::test]
async fn a_foreign_ak_with_an_unknown_ek_is_refused() {
    let mut bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    // Another key than the one enrolled for this EK: it must enroll, and
    // its EK certificate (not one at all here) chains to no trusted CA.
    let (ca, _) = crate::certs::new_ca("Some TPM vendor's EK CA").unwrap();
    bed.ctx.ek_roots = vec![ca.der().to_vec()];
    let x = login(&bed, dev.collector(Role::Terminal, SoftAk::generate())).await;
    assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
    assert!(x.says("AK enrollment refused"), "{x:?}");
    // Nothing about the device changed, and no attestation is in its name.
    let record = bed.store.device_record(&dev.id).unwrap();
    assert_eq!(record.ak_name, dev.ak.public().name());
    assert!(bed.store.attestations(&dev.id).is_empty());
}

#[tokio::test]
async fn a_new_tpm_without_any_trusted_ek_ca_is_told_what_the_operator_must_do() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    // Not enrolled, and the PDP trusts no EK CA.
    let x = login(&bed, dev.collector(Role::Terminal, dev.ak_clone())).await;
    assert_eq!(x.verdict, Some(Verdict::Isolate), "{x:?}");
    assert!(x.says("tnc-server ek-roots add"), "{x:?}");
}

#[tokio::test]
async fn a_device_claiming_another_role_than_enrolled_gets_no_access() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    let x = login(&bed, dev.collector(Role::Vm, dev.ak_clone())).await;
    assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
    assert!(
        x.says("enrolled as a terminal and now claims to be a vm"),
        "{x:?}"
    );
}

#[tokio::test]
async fn after_a_reboot_the_whole_ima_list_is_asked_for() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    assert_eq!(
        login(&bed, dev.collector(Role::Terminal, dev.ak_clone()))
            .await
            .verdict,
        Some(Verdict::Allow)
    );
    // The TPM was reset: the next quote reports a higher reset count, and
    // the collector (as ours does) first sends what follows the old offset.
    let mut ak = dev.ak_clone();
    ak.clock.reset_count += 1;
    ak.clock.clock = 500;
    let c = dev.collector(Role::Terminal, ak);
    let log = asked(&c);
    let x = login(&bed, c).await;
    assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
    let offsets: Vec<u64> = log.lock().unwrap().iter().map(|q| q.ima_offset).collect();
    let n = dev.measurements.ima_entries() as u64;
    assert_eq!(offsets, vec![n, 0], "asked again, from the start");
    let nonces: Vec<Vec<u8>> = log
        .lock()
        .unwrap()
        .iter()
        .map(|q| q.nonce.clone())
        .collect();
    assert_ne!(nonces[0], nonces[1], "over a new nonce");
    let state = bed.store.device_record(&dev.id).unwrap().state.unwrap();
    assert_eq!(state.reset_count, dev.ak.clock.reset_count + 1);
}

#[tokio::test]
async fn the_cretry_limit_ends_the_session() {
    let bed = Bed::new();
    let mut session = PdpSession::new(&bed.ctx, PEER);
    let mut client = PbSession::new(tnc_proto::pb_tnc::Side::Client);
    // An empty CDATA: the PDP decides at once (no evidence).
    let batch = client.send(BatchType::CData, Vec::new()).unwrap();
    let mut reply = session.receive(&batch).await;
    for retry in 1..=3 {
        assert!(!reply.close, "retry {retry}");
        let result = client.receive(&reply.batches[0]).unwrap();
        assert_eq!(result.batch_type, BatchType::Result);
        let again = client.send(BatchType::CRetry, Vec::new()).unwrap();
        reply = session.receive(&again).await;
    }
    // Two re-assessments by default: the third CRETRY ends the session
    // with a fatal PB-Error.
    assert!(reply.close);
    let close = client.receive(&reply.batches[0]).unwrap();
    assert_eq!(close.batch_type, BatchType::Close);
    assert!(close.fatal_error().is_some());
    assert!(
        session
            .failure()
            .unwrap()
            .contains("more than 2 re-assessments"),
        "{:?}",
        session.failure()
    );
    // Each decision was recorded: the first and two re-assessments.
    assert_eq!(bed.store.audit_entries().len(), 3);
}

#[tokio::test]
async fn an_exchange_over_the_round_limit_is_cut_off_with_no_access() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    // A collector that waits to be asked for its identity needs two SDATA
    // rounds; allow one.
    let mut collector = dev.collector(Role::Terminal, dev.ak_clone());
    collector.identity_on_request = true;
    let mut agent = Agent::new(os_facts(), collector);
    let limits = SessionLimits {
        max_rounds: 1,
        ..SessionLimits::default()
    };
    let x = handshake(&bed.ctx, &mut agent, limits).await;
    assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
    assert!(x.says("did not finish in 1 rounds"), "{x:?}");
    // The question that was not asked is not in the RESULT batch either.
    assert_eq!(x.batches, 2, "SDATA, then RESULT");
}

/// A collector that says all it has at once, whatever it is asked.
struct Eager(Vec<tnc_proto::attestation::AttestationAttribute>);

impl Collector for Eager {
    fn opening(&mut self) -> Vec<tnc_proto::attestation::AttestationAttribute> {
        std::mem::take(&mut self.0)
    }
    fn receive(
        &mut self,
        _: Vec<tnc_proto::attestation::AttestationAttribute>,
    ) -> Vec<tnc_proto::attestation::AttestationAttribute> {
        Vec::new()
    }
    fn result(&self) -> Option<tnc_proto::attestation::AttestationResult> {
        None
    }
}

/// Evidence sent with the Hello and the Identity, before the PDP asked for
/// it, is a quote over a nonce of the endpoint's choosing: no access, and
/// the quote request it would have sent next is not sent (RESULT at once).
/// A Failure after the Hello gets the no-evidence verdict, also at once.
#[tokio::test]
async fn evidence_before_the_quote_request_is_no_access() {
    use tnc_proto::attestation::{AttestationAttribute, BankSelection, Failure};
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    let mut honest = dev.collector(Role::Terminal, dev.ak_clone());
    let mut opening = honest.opening();
    // A genuine quote by the enrolled AK, over a nonce the PDP never sent.
    let evidence = honest.receive(vec![AttestationAttribute::QuoteRequest(QuoteRequest {
        nonce: vec![7; 32],
        selection: vec![BankSelection {
            alg: 0x000B,
            pcrs: (0..10).collect(),
        }],
        ima_offset: 0,
    })]);
    assert!(matches!(
        evidence[..],
        [AttestationAttribute::QuoteEvidence(_)]
    ));
    opening.extend(evidence);
    let x = login(&bed, Eager(opening)).await;
    assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
    assert_eq!(x.batches, 1, "RESULT only: {x:?}");

    let hello = dev
        .collector(Role::Terminal, dev.ak_clone())
        .opening()
        .remove(0);
    let failure = AttestationAttribute::Failure(Failure {
        message: "the TPM is busy".into(),
    });
    let x = login(&bed, Eager(vec![hello, failure])).await;
    assert_eq!(x.verdict, Some(Verdict::Isolate), "{x:?}");
    assert!(x.says("could not attest: the TPM is busy"), "{x:?}");
    assert_eq!(x.batches, 1, "RESULT only: {x:?}");
}

/// The identity sent with the Hello saves the round that asks for it: one
/// SDATA (the quote request), then RESULT. A client that waits to be asked
/// is asked, and decided alike, one round later.
#[tokio::test]
async fn the_identity_with_the_hello_saves_a_round() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    let x = login(&bed, dev.collector(Role::Terminal, dev.ak_clone())).await;
    assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
    assert_eq!(x.batches, 2, "SDATA with the quote request, then RESULT");

    let mut asked = dev.collector(Role::Terminal, dev.ak_clone());
    asked.identity_on_request = true;
    let x = login(&bed, asked).await;
    assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
    assert_eq!(
        x.batches, 3,
        "SDATA with the IdentityRequest, SDATA, RESULT"
    );
}

#[tokio::test]
async fn a_decision_that_cannot_be_committed_is_no_access() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    bed.store.fail_commits(true);
    let x = login(&bed, dev.collector(Role::Terminal, dev.ak_clone())).await;
    assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
    assert_eq!(x.outcome.recommendation, Some(AccessRecommendation::Denied));
    assert_eq!(x.outcome.assessment, Some(AssessmentResult::Error));
    assert!(x.says("could not record its decision"), "{x:?}");
    // The attestation result says so too, not "allow".
    assert_eq!(x.outcome.attestation.unwrap().verdict, "no access");
    assert!(bed.store.attestations(&dev.id).is_empty());
    assert!(bed.store.audit_entries().is_empty());
}

#[tokio::test]
async fn a_store_that_cannot_be_read_gives_no_access() {
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    bed.store.fail_reads(true);
    let x = login(&bed, dev.collector(Role::Terminal, dev.ak_clone())).await;
    assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
    assert!(x.says("cannot read its device store"), "{x:?}");
}

#[tokio::test]
async fn a_policy_that_cannot_be_read_gives_no_access_and_a_missing_one_isolates() {
    // The device lookup succeeds, then the store fails: the reference
    // values cannot be read.
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    bed.store.fail_policy_reads(true);
    let ctx = &bed.ctx;
    let mut agent = Agent::new(os_facts(), dev.collector(Role::Terminal, dev.ak_clone()));
    let x = handshake(ctx, &mut agent, SessionLimits::default()).await;
    assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
    assert!(x.says("cannot read its policy"), "{x:?}");
    bed.store.fail_policy_reads(false);

    // No reference values for VMs at all: isolate until the operator loads some.
    let vm = Device::new("good-vm");
    vm.enroll(&bed, Role::Vm);
    let x = login(&bed, vm.collector(Role::Vm, vm.ak_clone())).await;
    assert_eq!(x.verdict, Some(Verdict::Isolate), "{x:?}");
    assert!(x.says("no reference values for the role vm"), "{x:?}");
}

#[tokio::test]
async fn a_pb_tnc_violation_closes_with_a_pb_error() {
    let bed = Bed::new();
    let mut session = PdpSession::new(&bed.ctx, PEER);
    // A batch header with the wrong version.
    let reply = session.receive(&[1, 0x80, 0, 1, 0, 0, 0, 8]).await;
    assert!(reply.close);
    assert_eq!(reply.batches.len(), 1, "CLOSE with the PB-Error");
    let mut client = PbSession::new(tnc_proto::pb_tnc::Side::Client);
    let _ = client.send(BatchType::CData, Vec::new()).unwrap();
    let close = client.receive(&reply.batches[0]).unwrap();
    assert_eq!(close.batch_type, BatchType::Close);
    assert!(close.fatal_error().is_some());
    assert!(session.failure().unwrap().contains("PB-TNC violation"));
    assert!(bed.store.audit_entries().is_empty(), "no decision");
}

#[tokio::test]
async fn a_malformed_attestation_message_is_answered_with_a_pa_tnc_error() {
    let bed = Bed::new();
    let mut session = PdpSession::new(&bed.ctx, PEER);
    let mut client = PbSession::new(tnc_proto::pb_tnc::Side::Client);
    // A PA-TNC message of the attestation subtype whose attribute value is
    // not CBOR.
    let body = tnc_proto::pa_tnc::PaMessageWriter::new(1)
        .raw(
            true,
            tnc_proto::attestation::VENDOR,
            tnc_proto::attestation::attr::HELLO,
            &[0xff, 0xff],
        )
        .finish();
    let batch = attestation_cdata(&mut client, &[body]);
    let reply = session.receive(&batch).await;
    let result = client.receive(&reply.batches[0]).unwrap();
    assert_eq!(result.batch_type, BatchType::Result);
    let error = result
        .pa_messages()
        .filter_map(|pa| tnc_proto::pa_tnc::PaMessage::decode(pa.body).ok())
        .flat_map(|m| m.attributes)
        .find_map(|a| match a.parse() {
            Ok(tnc_proto::pa_tnc::Attribute::PaTncError(e)) => Some(e.code),
            _ => None,
        });
    assert!(error.is_some(), "a PA-TNC Error attribute in RESULT");
    let d = session.decision().unwrap();
    assert_eq!(d.verdict, Verdict::Isolate, "{d:?}");
    assert!(d.reason_string().contains("malformed attestation message"));
}

/// A Hello and the Identity in two PA-TNC messages of one batch are one
/// opening: the PDP asks for the quote only, not for the identity it has.
#[tokio::test]
async fn hello_and_identity_in_two_messages_of_a_batch_are_not_asked_again() {
    use tnc_proto::attestation::AttestationAttribute;
    let bed = Bed::new();
    let dev = Device::new("good-terminal");
    dev.enroll(&bed, Role::Terminal);
    let opening = dev.collector(Role::Terminal, dev.ak_clone()).opening();
    let bodies: Vec<Vec<u8>> = opening
        .iter()
        .enumerate()
        .map(|(i, a)| tnc_proto::vendor_message(i as u32 + 1, std::slice::from_ref(a)))
        .collect();
    assert_eq!(bodies.len(), 2, "Hello, Identity");
    let mut session = PdpSession::new(&bed.ctx, PEER);
    let mut client = PbSession::new(tnc_proto::pb_tnc::Side::Client);
    let batch = attestation_cdata(&mut client, &bodies);
    let reply = session.receive(&batch).await;
    let sdata = client.receive(&reply.batches[0]).unwrap();
    assert_eq!(sdata.batch_type, BatchType::SData);
    let asked: Vec<AttestationAttribute> = sdata
        .pa_messages()
        .filter(|pa| pa.subtype == tnc_proto::attestation::SUBTYPE)
        .flat_map(|pa| super::session::decode_attestation(pa.body).unwrap())
        .collect();
    assert!(
        matches!(asked[..], [AttestationAttribute::QuoteRequest(_)]),
        "{asked:?}"
    );
}

/// A CDATA batch of `client` with one PB-PA message of the attestation
/// subtype per body.
fn attestation_cdata(client: &mut PbSession, bodies: &[Vec<u8>]) -> Vec<u8> {
    let messages = bodies
        .iter()
        .map(|body| {
            tnc_proto::pb_tnc::PbMessage::Pa(tnc_proto::pb_tnc::PbPa {
                exclusive: false,
                subtype: tnc_proto::attestation::SUBTYPE,
                collector_id: 2,
                validator_id: tnc_proto::pb_tnc::ID_ANY,
                body,
            })
        })
        .collect();
    client.send(BatchType::CData, messages).unwrap()
}

impl Device {
    /// The device's own AK again, for the next session (the same key).
    fn ak_clone(&self) -> SoftAk {
        self.ak.clone()
    }
}

mod credentials {
    use super::*;
    use crate::issue::Issuer;
    use pki::ca::{Sm2Ca, Sm2Key};
    use tnc_client::agent::Credential;
    use tnc_proto::credential::KeyRequest;

    /// A PDP that issues credentials: an SM2 session CA, one-hour
    /// lifetime, terminals may reach vm-1.
    pub(super) fn bed_with_issuer() -> (Bed, Sm2Ca) {
        let mut bed = Bed::new();
        let ca = Sm2Ca::create(
            "session CA",
            std::time::Duration::from_secs(86_400),
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(T0 - 3600),
        )
        .unwrap();
        let copy = Sm2Ca::from_pem(&ca.certificate_pem(), &ca.key().to_pem().unwrap()).unwrap();
        let vms = [(Role::Terminal, vec!["vm-1".to_string()])].into();
        bed.ctx.issuer = Some(Arc::new(Issuer::new(
            copy,
            std::time::Duration::from_secs(3600),
            vms,
        )));
        (bed, ca)
    }

    pub(super) fn asking(collector: impl Collector + 'static, key: &Sm2Key) -> Agent {
        let mut agent = Agent::new(os_facts(), collector);
        agent.key_request = Some(KeyRequest {
            csr: pki::ca::make_request(key, "channel key").unwrap(),
            key_storage: "software".into(),
        });
        agent
    }

    #[tokio::test]
    async fn an_allowed_device_gets_a_certificate_and_a_ticket_bound_to_it() {
        let (bed, ca) = bed_with_issuer();
        let dev = Device::new("good-terminal");
        dev.enroll(&bed, Role::Terminal);
        let key = Sm2Key::generate().unwrap();
        let mut agent = asking(dev.collector(Role::Terminal, dev.ak_clone()), &key);
        let mut session = PdpSession::new(&bed.ctx, PEER);
        session.set_user(Some("alice".into()));
        let x = drive(&mut session, &mut agent).await;
        assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
        let Some(Credential::Granted(g)) = agent.outcome().credential.clone() else {
            panic!("{:?}", agent.outcome().credential);
        };
        // The certificate: for the requested key, from the session CA.
        let at = (T0 + 10) as i64;
        pki::ca::verify_issued_by(&g.certificate, ca.certificate_der(), at).unwrap();
        assert_eq!(g.ca, ca.certificate_der());
        let info = pki::ca::describe(&g.certificate).unwrap();
        assert!(
            info.subject.contains(&crate::store::hex(&dev.id)),
            "{}",
            info.subject
        );
        assert!(info.subject.contains("OU=terminal"), "{}", info.subject);
        assert_eq!(info.not_after, (T0 + 3600) as i64);
        // The ticket: the PDP's signature, bound to that certificate.
        let claims = pki::ticket::verify(&g.ticket, &ca.key().public_key(), at).unwrap();
        assert_eq!(claims.device, crate::store::hex(&dev.id));
        assert_eq!(claims.user.as_deref(), Some("alice"));
        assert_eq!(claims.role, "terminal");
        assert_eq!(claims.vms, ["vm-1"]);
        assert_eq!(
            claims.certificate_sha256,
            policy::HashAlg::Sha256.digest(&g.certificate)
        );
        assert_eq!(claims.justification.verdict, "allow");
        assert_eq!(claims.justification.policy_version, 1);
        assert_eq!(claims.expires, info.not_after);
        // Committed with the decision, with an audit entry.
        let issued = bed.store.credentials();
        assert_eq!(issued.len(), 1);
        assert_eq!(issued[0].ticket_id, claims.id);
        assert_eq!(issued[0].certificate_sha256, info.sha256);
        assert!(bed
            .store
            .audit_entries()
            .iter()
            .any(|e| e.kind == "credential" && e.detail.contains(&info.serial)));
    }

    #[tokio::test]
    async fn isolate_a_failed_commit_and_a_forged_request_issue_nothing() {
        // Isolate: an unknown program on the device.
        let (bed, _) = bed_with_issuer();
        let dev = Device::new("unknown-app");
        dev.enroll(&bed, Role::Terminal);
        let key = Sm2Key::generate().unwrap();
        let mut agent = asking(dev.collector(Role::Terminal, dev.ak_clone()), &key);
        let x = handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        assert_eq!(x.verdict, Some(Verdict::Isolate));
        assert_eq!(
            agent.outcome().credential,
            Some(Credential::Refused(
                "no credentials: the verdict is isolate".into()
            ))
        );
        assert!(bed.store.credentials().is_empty());

        // Allow, but the decision cannot be committed: nothing issued.
        let (bed, _) = bed_with_issuer();
        let dev = Device::new("good-terminal");
        dev.enroll(&bed, Role::Terminal);
        bed.store.fail_commits(true);
        let mut agent = asking(dev.collector(Role::Terminal, dev.ak_clone()), &key);
        let x = handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        assert_eq!(x.verdict, Some(Verdict::NoAccess));
        assert!(matches!(
            agent.outcome().credential,
            Some(Credential::Refused(_))
        ));
        assert!(bed.store.credentials().is_empty());

        // Allow, but the request's signature is not the key's.
        let (bed, _) = bed_with_issuer();
        dev.enroll(&bed, Role::Terminal);
        let mut agent = asking(dev.collector(Role::Terminal, dev.ak_clone()), &key);
        let mut forged = agent.key_request.take().unwrap();
        let at = forged.csr.len() - 10;
        forged.csr[at] ^= 1;
        agent.key_request = Some(forged);
        let x = handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        assert_eq!(x.verdict, Some(Verdict::Allow));
        let Some(Credential::Refused(why)) = agent.outcome().credential.clone() else {
            panic!("{:?}", agent.outcome().credential);
        };
        assert!(why.contains("refused"), "{why}");
        assert!(bed.store.credentials().is_empty());
    }
}

/// Pairings (issue 12, item 4): a terminal's session asks, the VM's open
/// session gets the key after SRETRY and acknowledges, the terminal gets
/// it in RESULT; and every way of asking without the right to is refused.
mod pairings {
    use super::*;
    use crate::issue::Issuer;
    use crate::pairing::Push;
    use pki::ca::{Sm2Ca, Sm2Key};
    use tnc_client::agent::Credential;
    use tnc_proto::credential::{Grant, KeyRequest, PairingRequest, Serving};
    use tokio::sync::mpsc::Receiver;

    const VM_ADDRESS: &str = "192.0.2.7:2710";

    /// A device booting the reference boot, with an EK of its own.
    fn device(tag: &str) -> Device {
        let mut d = Device::new("good-terminal");
        d.ek_certificate = format!("software EK of {tag}").into_bytes();
        d.id = crate::imv::attestation::device_id(&Identity {
            ek_public: Vec::new(),
            ek_certificate: d.ek_certificate.clone(),
            ak_public: Vec::new(),
        });
        d
    }

    /// The VM's side within a bound: a test that goes wrong fails, not hangs.
    async fn bounded<T>(f: impl std::future::Future<Output = T>) -> T {
        tokio::time::timeout(std::time::Duration::from_secs(20), f)
            .await
            .expect("the pairing exchange did not end")
    }

    /// A PDP issuing credentials, terminals may reach vm-1, `vm`'s device
    /// is named vm-1; VMs are appraised by the same reference values.
    fn bed(vm: &Device, ca: &Sm2Ca) -> Bed {
        let mut bed = Bed::new();
        let body = profile("good-terminal")
            .reference_values()
            .unwrap()
            .to_toml();
        bed.store.load_policy(Role::Vm, &body);
        let copy = Sm2Ca::from_pem(&ca.certificate_pem(), &ca.key().to_pem().unwrap()).unwrap();
        bed.ctx.issuer = Some(Arc::new(
            Issuer::new(
                copy,
                std::time::Duration::from_secs(3600),
                [(Role::Terminal, vec!["vm-1".to_string()])].into(),
            )
            .with_vm_names([(crate::store::hex(&vm.id), "vm-1".to_string())].into()),
        ));
        bed
    }

    fn session_ca() -> Sm2Ca {
        Sm2Ca::create(
            "session CA",
            std::time::Duration::from_secs(86_400),
            std::time::SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(T0 - 3600),
        )
        .unwrap()
    }

    fn key_request(key: &Sm2Key) -> KeyRequest {
        KeyRequest {
            csr: pki::ca::make_request(key, "channel key").unwrap(),
            key_storage: "software".into(),
        }
    }

    fn granted(agent: &Agent) -> Grant {
        match agent.outcome().credential.clone() {
            Some(Credential::Granted(g)) => g,
            other => panic!("{other:?}"),
        }
    }

    /// vm-1 logs in serving: allowed, certified, ready for the registry.
    async fn serving_vm<'c>(
        bed: &'c Bed,
        vm: &Device,
    ) -> (PdpSession<'c>, Agent, Receiver<Push>, Grant) {
        vm.enroll(bed, Role::Vm);
        let mut agent = Agent::new(os_facts(), vm.collector(Role::Vm, vm.ak_clone()));
        agent.key_request = Some(key_request(&Sm2Key::generate().unwrap()));
        agent.serving = Some(Serving {
            address: VM_ADDRESS.into(),
            quic_address: None,
        });
        let mut session = PdpSession::new(&bed.ctx, "vm-1's address");
        let x = drive(&mut session, &mut agent).await;
        assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
        assert!(session.is_decided() && !session.is_ended(), "kept open");
        let grant = granted(&agent);
        let serving = session.take_serving().expect("registered");
        assert_eq!(serving.name, "vm-1");
        assert_eq!(serving.address, VM_ADDRESS);
        assert_eq!(
            serving.certificate_sha256,
            policy::HashAlg::Sha256.digest(&grant.certificate)
        );
        let (_registration, rx) = bed.ctx.pairings.register(serving);
        (session, agent, rx, grant)
    }

    /// What the network task does for `n` pairings on the VM's session.
    async fn deliver(
        session: &mut PdpSession<'_>,
        agent: &mut Agent,
        rx: &mut Receiver<Push>,
        n: usize,
    ) {
        for _ in 0..n {
            let push = rx.recv().await.unwrap();
            let id = push.pairing.id.clone();
            let reply = session.push_pairing(push.pairing);
            assert_eq!(reply.batches.len(), 2, "SRETRY, then SDATA");
            let mut answer = None;
            for b in &reply.batches {
                let (a, over) = agent.receive(b).unwrap();
                assert!(!over);
                answer = answer.or(a);
            }
            let reply = session.receive(&answer.expect("the VM acknowledges")).await;
            for b in &reply.batches {
                let (a, over) = agent.receive(b).unwrap();
                assert!(a.is_none() && !over, "the session stays open");
            }
            assert!(session.is_decided());
            if session.take_accepted().contains(&id) {
                push.done.send(()).unwrap();
            }
        }
    }

    fn asking_terminal(
        dev: &Device,
        vm: &str,
        key: Option<&Sm2Key>,
        ticket: Option<Vec<u8>>,
    ) -> Agent {
        let mut agent = Agent::new(os_facts(), dev.collector(Role::Terminal, dev.ak_clone()));
        agent.key_request = key.map(key_request);
        agent.pairing_request = Some(PairingRequest {
            vm: vm.into(),
            ticket,
        });
        agent
    }

    fn refusal(agent: &Agent) -> String {
        match agent.outcome().pairing.clone() {
            Some(Err(why)) => why,
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn an_allowed_terminal_and_a_serving_vm_get_one_key_for_each_other() {
        let ca = session_ca();
        let vm = device("vm-1");
        let bed = bed(&vm, &ca);
        let (mut vm_session, mut vm_agent, mut rx, vm_grant) = serving_vm(&bed, &vm).await;

        let term = device("terminal-1");
        term.enroll(&bed, Role::Terminal);
        let mut agent = asking_terminal(&term, "vm-1", Some(&Sm2Key::generate().unwrap()), None);
        let mut session = PdpSession::new(&bed.ctx, PEER);
        session.set_user(Some("alice".into()));
        let (x, ()) = bounded(async {
            tokio::join!(
                drive(&mut session, &mut agent),
                deliver(&mut vm_session, &mut vm_agent, &mut rx, 1)
            )
        })
        .await;
        assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
        let grant = granted(&agent);
        let Some(Ok(mine)) = agent.outcome().pairing.clone() else {
            panic!("{:?}", agent.outcome().pairing);
        };
        let theirs = vm_agent.take_pairings();
        assert_eq!(theirs.len(), 1);
        let theirs = &theirs[0];
        assert_eq!((mine.id.len(), mine.key.len()), (16, 16));
        assert_eq!((&mine.id, &mine.key), (&theirs.id, &theirs.key));
        // Each side learns whom to expect: the VM's name, address and
        // certificate; the terminal's device and certificate.
        assert_eq!(mine.peer, "vm-1");
        assert_eq!(mine.address.as_deref(), Some(VM_ADDRESS));
        assert_eq!(
            mine.peer_certificate_sha256,
            policy::HashAlg::Sha256.digest(&vm_grant.certificate)
        );
        assert_eq!(theirs.peer, crate::store::hex(&term.id));
        assert_eq!(
            theirs.peer_certificate_sha256,
            policy::HashAlg::Sha256.digest(&grant.certificate)
        );
        assert_eq!(mine.expires, (T0 + 60) as i64);
        // The VM's standing decision was re-sent, still allow.
        assert!(vm_agent.outcome().allowed());
        assert!(bed
            .store
            .audit_entries()
            .iter()
            .any(|e| e.kind == "pairing" && e.detail.contains("with vm-1")));

        // Next time with the ticket it holds (no new credentials).
        let mut agent = asking_terminal(&term, "vm-1", None, Some(grant.ticket.clone()));
        let (x, ()) = bounded(async {
            tokio::join!(
                handshake(&bed.ctx, &mut agent, SessionLimits::default()),
                deliver(&mut vm_session, &mut vm_agent, &mut rx, 1)
            )
        })
        .await;
        assert_eq!(x.verdict, Some(Verdict::Allow));
        let Some(Ok(again)) = agent.outcome().pairing.clone() else {
            panic!("{:?}", agent.outcome().pairing);
        };
        assert_ne!(again.key, mine.key, "a fresh key per pairing");
        assert_eq!(
            vm_agent.take_pairings()[0].peer_certificate_sha256,
            policy::HashAlg::Sha256.digest(&grant.certificate)
        );
    }

    #[tokio::test]
    async fn no_pairing_for_a_device_not_allowed_now_or_without_the_right_ticket() {
        let ca = session_ca();
        let vm = device("vm-1");
        let bed = bed(&vm, &ca);
        let (_vm_session, _vm_agent, mut rx, _) = serving_vm(&bed, &vm).await;
        let key = Sm2Key::generate().unwrap();

        // A device no longer allowed (an unknown program runs on it now).
        let bad = Device::new("unknown-app");
        bad.enroll(&bed, Role::Terminal);
        let mut agent = asking_terminal(&bad, "vm-1", Some(&key), None);
        let x = handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        assert_eq!(x.verdict, Some(Verdict::Isolate));
        assert_eq!(refusal(&agent), "no pairing: the verdict is isolate");

        // A ticket that does not name the VM asked for.
        let good = device("terminal-1");
        good.enroll(&bed, Role::Terminal);
        let mut agent = asking_terminal(&good, "vm-2", Some(&key), None);
        handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        assert_eq!(refusal(&agent), "the ticket does not name vm-2");
        let ticket = granted(&agent).ticket;

        // Another device's ticket, presented without credentials of its own.
        let other = device("terminal-2");
        other.enroll(&bed, Role::Terminal);
        let mut agent = asking_terminal(&other, "vm-1", None, Some(ticket.clone()));
        handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        assert_eq!(refusal(&agent), "the ticket is another device's");

        // Its own ticket, naming the VM, but revoked (issue 13).
        assert_eq!(
            bed.store
                .revoke_device(&good.id, T0, "operator: lost laptop"),
            1
        );
        let mut agent = asking_terminal(&good, "vm-1", None, Some(ticket.clone()));
        let x = handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        assert_eq!(x.verdict, Some(Verdict::Allow));
        assert_eq!(
            refusal(&agent),
            "the ticket is revoked: operator: lost laptop"
        );

        // A ticket re-signed with another SM2 key.
        let forger = bed_forging(&vm);
        good.enroll(&forger, Role::Terminal);
        let mut agent = asking_terminal(&good, "vm-1", Some(&key), None);
        handshake(&forger.ctx, &mut agent, SessionLimits::default()).await;
        let forged = granted(&agent).ticket;
        let mut agent = asking_terminal(&good, "vm-1", None, Some(forged));
        handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        let why = refusal(&agent);
        assert!(why.contains("ticket is refused"), "{why}");

        // No ticket at all.
        let mut agent = asking_terminal(&good, "vm-1", None, None);
        handshake(&bed.ctx, &mut agent, SessionLimits::default()).await;
        assert!(refusal(&agent).starts_with("no ticket"));

        // A VM that is not serving.
        let lonely = {
            let mut b = bed_forging(&vm);
            b.ctx.issuer = bed.ctx.issuer.clone();
            b
        };
        good.enroll(&lonely, Role::Terminal);
        let mut agent = asking_terminal(&good, "vm-1", Some(&key), None);
        handshake(&lonely.ctx, &mut agent, SessionLimits::default()).await;
        assert!(refusal(&agent).starts_with("vm-1 is not serving"));

        // None of these reached the VM.
        assert!(rx.try_recv().is_err());
    }

    /// A PDP with another session CA (a forger's, to the real one).
    fn bed_forging(vm: &Device) -> Bed {
        bed(vm, &session_ca())
    }
}

/// Continuous trust (issue 13, item 2): a session the endpoint keeps open
/// is re-assessed on it (SRETRY, then SDATA asking the collector to start
/// over), incrementally; a round that ends in isolate revokes the tickets
/// the device holds; the watcher turns the store's news into triggers.
mod continuous {
    use super::*;
    use crate::continuous::Trigger;
    use std::sync::Mutex;
    use std::time::Duration;

    /// A collector the test swaps between rounds: the endpoint changes
    /// while its session stays open.
    struct Swappable(Arc<Mutex<SoftCollector>>);

    impl Collector for Swappable {
        fn opening(&mut self) -> Vec<tnc_proto::attestation::AttestationAttribute> {
            self.0.lock().unwrap().opening()
        }
        fn receive(
            &mut self,
            attrs: Vec<tnc_proto::attestation::AttestationAttribute>,
        ) -> Vec<tnc_proto::attestation::AttestationAttribute> {
            self.0.lock().unwrap().receive(attrs)
        }
        fn result(&self) -> Option<tnc_proto::attestation::AttestationResult> {
            self.0.lock().unwrap().result()
        }
    }

    /// `dev`'s identity and `ak` over the measurements of `boot`.
    fn collector_of(dev: &Device, ak: SoftAk, boot: &str) -> SoftCollector {
        let measurements = Arc::new(profile(boot).measure().unwrap());
        let values = measurements.pcr_values_after(measurements.ima_entries());
        let identity = Identity {
            ek_public: ak.public_area().to_vec(),
            ek_certificate: dev.ek_certificate.clone(),
            ak_public: ak.public_area().to_vec(),
        };
        SoftCollector::new(Role::Terminal, ak, identity, measurements, Arc::new(values))
    }

    /// What the network task does for one re-assessment: the round's
    /// batches between `session` and `agent` until a decision.
    async fn reassess(session: &mut PdpSession<'_>, agent: &mut Agent) -> Exchange {
        let reply = session.reassess().expect("a decided session");
        assert_eq!(reply.batches.len(), 2, "SRETRY, then SDATA");
        let mut next = None;
        let mut batches = 0;
        for b in &reply.batches {
            batches += 1;
            let (a, over) = agent.receive(b).unwrap();
            assert!(!over);
            next = next.or(a);
        }
        assert!(session.reassess().is_none(), "one round at a time");
        exchange(
            session,
            agent,
            next.expect("the client answers the SDATA"),
            batches,
        )
        .await
    }

    #[tokio::test]
    async fn a_kept_session_is_reassessed_incrementally_and_an_unknown_program_revokes_its_ticket()
    {
        let (bed, _) = super::credentials::bed_with_issuer();
        let dev = Device::new("good-terminal");
        dev.enroll(&bed, Role::Terminal);
        let inner = Arc::new(Mutex::new(collector_of(
            &dev,
            dev.ak_clone(),
            "good-terminal",
        )));
        let key = pki::ca::Sm2Key::generate().unwrap();
        let mut agent = super::credentials::asking(Swappable(inner.clone()), &key);
        agent.stay = true;
        let mut session = PdpSession::new(&bed.ctx, PEER);
        let x = drive(&mut session, &mut agent).await;
        assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
        assert!(session.is_decided() && !session.is_ended(), "kept open");
        assert_eq!(bed.store.credentials().len(), 1);
        let n = dev.measurements.ima_entries() as u64;

        // Round 1, nothing changed: allow, from where the last one ended,
        // nothing issued again.
        bed.clock.advance(Duration::from_secs(300));
        let asked_before = inner.lock().unwrap().asked.lock().unwrap().len();
        let x = reassess(&mut session, &mut agent).await;
        assert_eq!(x.verdict, Some(Verdict::Allow), "{x:?}");
        assert!(session.is_decided() && !session.is_ended());
        assert_eq!((agent.decisions(), session.reassessments()), (2, 1));
        let asked = inner.lock().unwrap().asked.lock().unwrap().clone();
        assert_eq!(asked.len(), asked_before + 1);
        assert_eq!(asked.last().unwrap().ima_offset, n, "only new IMA entries");
        assert_eq!(
            bed.store.credentials().len(),
            1,
            "nothing issued in a round"
        );
        assert!(bed.store.revocations().is_empty());
        assert_eq!(bed.store.attestations(&dev.id).len(), 2);
        assert_eq!(
            bed.store.device_record(&dev.id).unwrap().last_seen,
            T0 + 300
        );

        // The endpoint runs a program nobody approved: the next round
        // isolates it, names the file, and revokes its ticket with the
        // decision.
        {
            // The same TPM: its clock goes on.
            let mut c = inner.lock().unwrap();
            *c = collector_of(&dev, c.ak.clone(), "unknown-app");
        }
        bed.clock.advance(Duration::from_secs(300));
        let x = reassess(&mut session, &mut agent).await;
        assert_eq!(x.verdict, Some(Verdict::Isolate), "{x:?}");
        assert!(x.says("/home/user/.local/bin/cryptominer"), "{x:?}");
        assert_eq!(
            agent.outcome().recommendation,
            Some(AccessRecommendation::Quarantined)
        );
        let revoked = bed.store.revocations();
        assert_eq!(revoked.len(), 1, "{revoked:?}");
        assert_eq!(
            revoked[0].ticket,
            crate::store::hex(&bed.store.credentials()[0].ticket_id)
        );
        assert_eq!(revoked[0].at, (T0 + 600) as i64);
        assert!(
            revoked[0].reason.contains("cryptominer"),
            "{:?}",
            revoked[0]
        );
        let audit = bed.store.audit_entries();
        let kinds: Vec<&str> = audit.iter().map(|e| e.kind.as_str()).collect();
        assert_eq!(kinds.last(), Some(&"revoke"), "{kinds:?}");
        // The client, no longer allowed, closed the session.
        assert!(session.is_ended());
    }

    #[tokio::test]
    async fn a_round_whose_decision_cannot_be_committed_sends_no_access() {
        let bed = Bed::new();
        let dev = Device::new("good-terminal");
        dev.enroll(&bed, Role::Terminal);
        let mut agent = Agent::new(os_facts(), dev.collector(Role::Terminal, dev.ak_clone()));
        agent.stay = true;
        let mut session = PdpSession::new(&bed.ctx, PEER);
        assert_eq!(
            drive(&mut session, &mut agent).await.verdict,
            Some(Verdict::Allow)
        );
        bed.store.fail_commits(true);
        let x = reassess(&mut session, &mut agent).await;
        // The appraisal said allow; what was sent is what was (not) recorded.
        assert_eq!(x.verdict, Some(Verdict::NoAccess), "{x:?}");
        assert_eq!(
            agent.outcome().recommendation,
            Some(AccessRecommendation::Denied)
        );
        assert!(x.says("could not record"), "{x:?}");
        assert_eq!(bed.store.attestations(&dev.id).len(), 1);
    }

    #[tokio::test]
    async fn the_watcher_turns_policy_loads_requests_and_silence_into_action() {
        let bed = Bed::new();
        let dev = Device::new("good-terminal");
        dev.enroll(&bed, Role::Terminal);
        assert_eq!(
            login(&bed, dev.collector(Role::Terminal, dev.ak_clone()))
                .await
                .verdict,
            Some(Verdict::Allow)
        );
        let ctx = Arc::new(PdpContext {
            clock: bed.clock.clone(),
            reassessment: crate::config::Reassessment {
                interval_secs: 60,
                poll_ms: 5,
                ..Default::default()
            },
            ..PdpContext::new(bed.store.clone())
        });
        let mut triggers = ctx.triggers.subscribe();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let watcher = tokio::spawn(crate::continuous::watch(ctx.clone(), shutdown));
        let next = |t: &mut tokio::sync::broadcast::Receiver<Trigger>| {
            let mut t = t.resubscribe();
            async move {
                tokio::time::timeout(Duration::from_secs(5), t.recv())
                    .await
                    .expect("no trigger")
                    .unwrap()
            }
        };
        // Let the watcher read the state it starts from.
        tokio::time::sleep(Duration::from_millis(50)).await;
        let waiting = next(&mut triggers);
        bed.store.request_reassessment(Some(dev.id));
        assert_eq!(waiting.await, Trigger::Device(dev.id));
        let waiting = next(&mut triggers);
        bed.store.request_reassessment(None);
        assert_eq!(waiting.await, Trigger::All);
        let waiting = next(&mut triggers);
        bed.store.load_policy(Role::Terminal, "name = \"new\"");
        assert_eq!(waiting.await, Trigger::Policy(Role::Terminal));
        // Silent for 3 intervals of 60 s: isolated.
        bed.clock.advance(Duration::from_secs(179));
        tokio::time::sleep(Duration::from_millis(2300)).await;
        assert_eq!(
            bed.store.device_record(&dev.id).unwrap().last_verdict,
            Some(Verdict::Allow)
        );
        bed.clock.advance(Duration::from_secs(2));
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while bed.store.device_record(&dev.id).unwrap().last_verdict != Some(Verdict::Isolate) {
            assert!(std::time::Instant::now() < deadline, "not marked stale");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let last = bed.store.attestations(&dev.id).pop().unwrap();
        assert!(
            last.findings[0].starts_with("stale: not attested for 181 s"),
            "{last:?}"
        );
        stop.send(true).unwrap();
        watcher.await.unwrap();
    }
}
