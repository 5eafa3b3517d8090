//! The attestation collector: answers the PDP's attestation validator with the
//! TPM's identity, credential activation, and quotes with the UEFI event log
//! and the IMA list (see `tnc_proto::attestation` for the exchange).
//!
//! The TPM is opened when an assessment opens: the Hello goes with the
//! TPM's identity (EK, EK certificate, AK), which every PDP of this project
//! asks for, so sending it unasked saves a round trip. It goes to the PDP
//! the client authenticated by its certificate, the one it would give it to
//! on request. The TPM stays open until the decision is in.

use crate::collect::{read_event_log, read_ima_from, EvidencePaths};
use crate::tpm::{AkHandle, AkKind, EkKind, Tpm, TpmConfig, TpmError};
use policy::HashAlg;
use std::path::PathBuf;
use tnc_proto::attestation::{
    AttestationAttribute, CredentialProof, Failure, Hello, Identity, QuoteEvidence, QuoteRequest,
    Role,
};

/// What the collector needs from the client configuration.
#[derive(Clone, Debug)]
pub struct AttestationConfig {
    pub role: Role,
    /// None: the endpoint has no TPM and says so.
    pub tpm: Option<TpmConfig>,
    pub evidence: EvidencePaths,
    /// Where the AK is kept between sessions (created on first use, mode 0600).
    pub ak_path: PathBuf,
    pub ak_kind: AkKind,
    /// The host named in the Hello (see [`Hello::host`]).
    pub host: Option<tnc_proto::attestation::HostLabel>,
}

/// The open TPM with the AK and the EK it was made under.
struct Session {
    tpm: Tpm,
    ak: AkHandle,
    ek: EkKind,
}

pub struct AttestationCollector {
    config: AttestationConfig,
    session: Option<Session>,
    /// The last verdict the PDP's attestation validator sent.
    pub result: Option<tnc_proto::attestation::AttestationResult>,
    /// SHA-256 of the EK certificate sent (hex): the PDP's device ID.
    pub device_id: Option<String>,
    /// The identity went with this assessment's Hello.
    volunteered: bool,
}

impl AttestationCollector {
    pub fn new(config: AttestationConfig) -> Self {
        Self {
            config,
            session: None,
            result: None,
            device_id: None,
            volunteered: false,
        }
    }

    /// The first message: what the endpoint is.
    pub fn hello(&self) -> AttestationAttribute {
        AttestationAttribute::Hello(Hello {
            role: self.config.role,
            tpm: self.config.tpm.is_some(),
            software: concat!("tnc-client ", env!("CARGO_PKG_VERSION")).to_string(),
            host: self.config.host.clone(),
        })
    }

    /// The attributes that open an assessment: the Hello and, with a TPM,
    /// the Identity the PDP asks every TPM for (a round trip saved), or a
    /// Failure in its place.
    pub fn opening(&mut self) -> Vec<AttestationAttribute> {
        let mut out = vec![self.hello()];
        self.volunteered = self.config.tpm.is_some();
        if self.volunteered {
            out.push(match self.identity() {
                Ok(identity) => AttestationAttribute::Identity(identity),
                Err(message) => AttestationAttribute::Failure(Failure { message }),
            });
        }
        out
    }

    /// The PDP's attributes in, the answers out. A failure becomes a
    /// [`Failure`] attribute for the PDP: the session goes on and the PDP
    /// decides what an endpoint without evidence gets.
    pub fn receive(&mut self, attrs: Vec<AttestationAttribute>) -> Vec<AttestationAttribute> {
        let mut out = Vec::new();
        for attr in attrs {
            let answer = match attr {
                // A PDP that asks although the identity came with the
                // Hello (one that asks before it reads on) has it already.
                AttestationAttribute::IdentityRequest if self.volunteered => continue,
                AttestationAttribute::IdentityRequest => {
                    self.identity().map(AttestationAttribute::Identity)
                }
                AttestationAttribute::CredentialChallenge(c) => self
                    .activate(&c.id_object, &c.encrypted_secret)
                    .map(|secret| {
                        AttestationAttribute::CredentialProof(CredentialProof { secret })
                    }),
                AttestationAttribute::QuoteRequest(q) => {
                    self.quote(&q).map(AttestationAttribute::QuoteEvidence)
                }
                AttestationAttribute::Result(r) => {
                    self.result = Some(r);
                    continue;
                }
                // Anything else is not for a collector to answer.
                _ => continue,
            };
            match answer {
                Ok(a) => out.push(a),
                Err(message) => {
                    out.push(AttestationAttribute::Failure(Failure { message }));
                    break;
                }
            }
        }
        out
    }

    /// Closes the TPM connection (the AK stays saved); the next exchange
    /// opens it again.
    pub fn release(&mut self) {
        self.session = None;
    }

    fn open(&mut self) -> Result<&mut Session, String> {
        if self.session.is_none() {
            let Some(config) = &self.config.tpm else {
                return Err("this endpoint is configured without a TPM".into());
            };
            let mut tpm = Tpm::open(config).map_err(|e| format!("opening the TPM: {e}"))?;
            let (ek, _) = tpm
                .certified_ek()
                .map_err(tpm_err)?
                .ok_or("the TPM holds no EK certificate: the PDP has nothing to trust it by")?;
            tpm.endorsement_key(ek).map_err(tpm_err)?;
            let ak = self.load_or_create_ak(&mut tpm, ek)?;
            self.session = Some(Session { tpm, ak, ek });
        }
        self.session.as_mut().ok_or_else(|| "no TPM session".into())
    }

    /// The saved AK if it still loads under this EK; otherwise a new one,
    /// saved for next time (the PDP then enrolls it again).
    fn load_or_create_ak(&self, tpm: &mut Tpm, ek: EkKind) -> Result<AkHandle, String> {
        let path = &self.config.ak_path;
        if path.exists() {
            match tpm.load_ak_file(path) {
                Ok(ak) if ak.ek_kind() == ek && ak.kind() == self.config.ak_kind => return Ok(ak),
                Ok(_) => tracing_note("saved AK is of another kind: creating a new one"),
                Err(e) => {
                    tracing_note(&format!("saved AK does not load ({e}): creating a new one"))
                }
            }
        }
        let ak = tpm.create_ak(ek, self.config.ak_kind).map_err(tpm_err)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        }
        ak.save(path).map_err(tpm_err)?;
        Ok(ak)
    }

    fn identity(&mut self) -> Result<Identity, String> {
        let s = self.open()?;
        let ek = s.tpm.endorsement_key(s.ek).map_err(tpm_err)?;
        let cert = s
            .tpm
            .ek_certificate(s.ek)
            .map_err(tpm_err)?
            .ok_or("the EK certificate disappeared")?;
        let identity = Identity {
            ek_public: ek.marshalled().to_vec(),
            ak_public: s.ak.public_area().to_vec(),
            ek_certificate: cert,
        };
        self.device_id = Some(policy::digest::hex(
            &policy::HashAlg::Sha256.digest(&identity.ek_certificate),
        ));
        Ok(identity)
    }

    fn activate(&mut self, id_object: &[u8], secret: &[u8]) -> Result<Vec<u8>, String> {
        let s = self.open()?;
        s.tpm
            .activate_credential(&s.ak, s.ek, id_object, secret)
            .map_err(|e| format!("credential activation: {e}"))
    }

    fn quote(&mut self, q: &QuoteRequest) -> Result<QuoteEvidence, String> {
        let mut selection = Vec::new();
        for b in &q.selection {
            let bank = HashAlg::from_tpm_alg(b.alg).ok_or_else(|| {
                format!(
                    "the PDP asked for PCR bank 0x{:04x}, which this client does not know",
                    b.alg
                )
            })?;
            selection.push((bank, b.pcrs.iter().map(|&p| u32::from(p)).collect()));
        }
        let offset =
            usize::try_from(q.ima_offset).map_err(|_| "IMA offset out of range".to_string())?;
        let paths = self.config.evidence.clone();
        // The logs are read before the quote: entries added in between are in
        // the PCRs but not in the list, which the PDP sees as a mismatch and
        // the next attestation resolves; read after, they would be in the list
        // but not the quote, with the same effect. Before keeps the list short.
        let event_log = read_event_log(&paths).map_err(|e| format!("UEFI event log: {e}"))?;
        // A list shorter than the PDP's offset belongs to a new boot: send
        // it whole, from entry 0, and the PDP appraises it from the start.
        let (ima, sent_from) = match read_ima_from(&paths, offset) {
            Ok((ima, _)) => (ima, q.ima_offset),
            Err(_) if offset > 0 => match read_ima_from(&paths, 0) {
                Ok((ima, _)) => (ima, 0),
                Err(e) => return Err(format!("IMA list: {e}")),
            },
            Err(e) => return Err(format!("IMA list: {e}")),
        };
        let s = self.open()?;
        let quote = s
            .tpm
            .quote(&s.ak, &q.nonce, &selection)
            .map_err(|e| format!("TPM2_Quote: {e}"))?;
        Ok(QuoteEvidence {
            attest: quote.attest,
            signature: quote.signature,
            event_log,
            ima,
            ima_offset: sent_from,
        })
    }
}

fn tpm_err(e: TpmError) -> String {
    e.to_string()
}

fn tracing_note(msg: &str) {
    tracing::info!("{msg}");
}
