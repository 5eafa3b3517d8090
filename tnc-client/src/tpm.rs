//! The endpoint's TPM 2.0: endorsement key and its certificate, an attestation key
//! that survives restarts, quotes, credential activation and PCR extends.
//!
//! Everything goes through `tss-esapi` 7 (ESAPI, the system's libtss2), which holds the
//! unsafe part; this module has none. The wire formats handed out are those the
//! verifier (`policy::tpm`) and tpm2-tools read: TPMT_PUBLIC, TPMS_ATTEST,
//! TPMT_SIGNATURE, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET
//! (`shared/specs/tpm-evidence.md` §2–§6).
//!
//! # Transient objects
//! A TPM without a resource manager in front of it (a bare swtpm, a `/dev/tpm0`
//! used directly) has as few as 3 transient object slots, and a leaked handle turns
//! every later command into TPM_RC_OBJECT_MEMORY (0x902). [`Tpm`] therefore keeps at
//! most two objects loaded, one EK and one AK, reused across calls and replaced
//! (flushed first) when another is needed; sessions are flushed by the call that
//! started them, on error paths too; [`Tpm::release`] and `Drop` flush what is left.
//! The third slot stays free for the objects the TPM needs inside a command.
//!
//! # AK persistence
//! The AK is kept as its TPM-wrapped private blob and public area ([`AkHandle`],
//! saved with [`AkHandle::save`], restored with [`Tpm::load_ak_file`]) and loaded
//! under the EK when needed, rather than made persistent with TPM2_EvictControl:
//! EvictControl needs owner (or platform) authorization, which an agent on a managed
//! machine should not hold, and persistent NV handles are a scarce, shared resource.
//! The EK it is loaded under is a primary key, recreated from its template (same
//! key, same Name, as long as the endorsement seed is not changed). The blob is
//! encrypted and integrity-protected by the TPM and useless anywhere else, so it is
//! not secret; the file is still written 0600 so no other user can replace it.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use policy::HashAlg;

use tss_esapi::abstraction::{ak, ek, AsymmetricAlgorithmSelection, DefaultKey};
use tss_esapi::attributes::SessionAttributesBuilder;
use tss_esapi::constants::{CapabilityType, PropertyTag, SessionType};
use tss_esapi::handles::{
    AuthHandle, KeyHandle, NvIndexHandle, NvIndexTpmHandle, ObjectHandle, PcrHandle, SessionHandle,
    TpmHandle,
};
use tss_esapi::interface_types::algorithm::{HashingAlgorithm, SignatureSchemeAlgorithm};
use tss_esapi::interface_types::ecc::EccCurve;
use tss_esapi::interface_types::key_bits::RsaKeyBits;
use tss_esapi::interface_types::resource_handles::NvAuth;
use tss_esapi::interface_types::session_handles::{AuthSession, PolicySession};
use tss_esapi::structures::{
    CapabilityData, Data, Digest, DigestList, DigestValues, EncryptedSecret, IdObject,
    PcrSelectSize, PcrSelectionList, PcrSlot, Private, Public, SignatureScheme,
    SymmetricDefinition,
};
use tss_esapi::tcti_ldr::TctiNameConf;
use tss_esapi::traits::{Marshall, UnMarshall};
use tss_esapi::Context;

/// PolicyA and PolicyC for SHA-384 (TCG EK Credential Profile 2.5, B.6): an EK from a
/// high-range template (P-384) has authPolicy PolicyOR(PolicyA, PolicyC), so after
/// PolicySecret(endorsement) the session also needs PolicyOR over these two.
const POLICY_A_SHA384: [u8; 48] = [
    0x8b, 0xbf, 0x22, 0x66, 0x53, 0x7c, 0x17, 0x1c, 0xb5, 0x6e, 0x40, 0x3c, 0x4d, 0xc1, 0xd4, 0xb6,
    0x4f, 0x43, 0x26, 0x11, 0xdc, 0x38, 0x6e, 0x6f, 0x53, 0x20, 0x50, 0xc3, 0x27, 0x8c, 0x93, 0x0e,
    0x14, 0x3e, 0x8b, 0xb1, 0x13, 0x38, 0x24, 0xcc, 0xb4, 0x31, 0x05, 0x38, 0x71, 0xc6, 0xdb, 0x53,
];
const POLICY_C_SHA384: [u8; 48] = [
    0xd6, 0x03, 0x2c, 0xe6, 0x1f, 0x2f, 0xb3, 0xc2, 0x40, 0xeb, 0x3c, 0xf6, 0xa3, 0x32, 0x37, 0xef,
    0x2b, 0x6a, 0x16, 0xf4, 0x29, 0x3c, 0x22, 0xb4, 0x55, 0xe2, 0x61, 0xcf, 0xfd, 0x21, 0x7a, 0xd5,
    0xb4, 0x94, 0x7c, 0x2d, 0x73, 0xe6, 0x30, 0x05, 0xee, 0xd2, 0xdc, 0x2b, 0x35, 0x93, 0xd1, 0x65,
];

/// TPM2_PCR_Read returns at most 8 digests per call (TPML_DIGEST).
const PCR_READ_MAX: usize = 8;

/// Largest NV read asked for at once, even if the TPM reports more
/// (TPM_PT_NV_BUFFER_MAX; 1024 on libtpms, often 512 or less in hardware).
const NV_CHUNK_MAX: u32 = 1024;

/// Why a TPM operation failed.
#[derive(Debug, thiserror::Error)]
pub enum TpmError {
    #[error("invalid TPM TCTI configuration {config:?} (expected device:PATH, swtpm:host=H,port=P, mssim:host=H,port=P or tabrmd:...): {reason}")]
    BadTcti { config: String, reason: String },
    /// A TPM command (or the TSS around it) failed; `code` is the TSS2_RC, TPM
    /// response codes in the low 12 bits (e.g. 0x902: out of object memory).
    #[error("{operation} failed: {detail}")]
    Tpm {
        operation: &'static str,
        code: Option<u32>,
        detail: String,
    },
    /// A caller's argument the TPM would not take (a PCR index, a digest length...).
    #[error("{what}: {reason}")]
    Invalid { what: &'static str, reason: String },
    /// The TPM answered something this module cannot use.
    #[error("unexpected TPM answer to {operation}: {reason}")]
    Unexpected {
        operation: &'static str,
        reason: String,
    },
    #[error("AK file {path}: {source}")]
    AkFileIo {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("AK file {path} is not an AK saved by tnc-client: {reason}")]
    BadAkFile { path: PathBuf, reason: String },
}

impl TpmError {
    fn tpm(operation: &'static str, e: tss_esapi::Error) -> Self {
        use tss_esapi::constants::response_code::Tss2ResponseCode;
        match e {
            tss_esapi::Error::Tss2Error(rc) => {
                let code = match rc {
                    Tss2ResponseCode::Success => 0,
                    Tss2ResponseCode::FormatZero(c) => c.0,
                    Tss2ResponseCode::FormatOne(c) => c.0,
                };
                let detail = match tss_layer(code) {
                    // From the TPM itself: tss-esapi knows the TPM_RC names.
                    None => {
                        let kind = rc
                            .kind()
                            .map(|k| format!("{k:?}"))
                            .unwrap_or_else(|| "unknown".into());
                        format!("TPM response code {code:#x} ({kind}: {rc})")
                    }
                    Some(layer) => format!(
                        "{layer} response code {code:#x} ({})",
                        tss_base_error(code & 0xffff)
                    ),
                };
                TpmError::Tpm {
                    operation,
                    code: Some(code),
                    detail,
                }
            }
            tss_esapi::Error::WrapperError(kind) => TpmError::Tpm {
                operation,
                code: None,
                detail: format!("tss-esapi: {kind}"),
            },
        }
    }

    /// The TSS2 response code, if the TPM or the TSS library answered with one.
    pub fn response_code(&self) -> Option<u32> {
        match self {
            TpmError::Tpm { code, .. } => *code,
            _ => None,
        }
    }
}

/// Shorthand: map a tss-esapi error to [`TpmError::Tpm`] naming the operation.
trait Op<T> {
    fn op(self, operation: &'static str) -> Result<T, TpmError>;
}

impl<T> Op<T> for tss_esapi::Result<T> {
    fn op(self, operation: &'static str) -> Result<T, TpmError> {
        self.map_err(|e| TpmError::tpm(operation, e))
    }
}

/// The TSS layer that produced a response code (bits 16–23), `None` for the TPM.
fn tss_layer(code: u32) -> Option<&'static str> {
    Some(match (code >> 16) & 0xff {
        0 => return None,
        6 => "TSS SAPI",
        7 => "TSS ESAPI",
        8 => "TSS marshalling",
        10 => "TCTI",
        11 => "resource manager",
        12 => "resource manager (TPM)",
        _ => "TSS",
    })
}

/// TSS2_BASE_RC_* names (TSS 2.0 TCTI/SAPI/ESAPI specifications), the common ones.
fn tss_base_error(base: u32) -> &'static str {
    match base {
        1 => "general failure",
        2 => "not implemented",
        3 => "bad context",
        4 => "ABI mismatch",
        5 => "bad reference",
        6 => "insufficient buffer",
        7 => "bad sequence",
        8 => "no connection",
        9 => "try again",
        10 => "I/O error: is the TPM there?",
        11 => "bad value",
        12 => "not permitted",
        16 => "bad size",
        17 => "malformed response",
        21 => "not supported",
        23 => "out of memory",
        24 => "bad ESYS_TR handle",
        27 => "response authorization failed",
        _ => "see tpm2_rc_decode",
    }
}

/// Where the TPM is: a TCTI configuration string as tpm2-tools takes it.
///
/// `device:/dev/tpmrm0` (the kernel's resource manager; the default),
/// `swtpm:host=127.0.0.1,port=2321`, `mssim:host=...,port=...`, `tabrmd:...`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TpmConfig {
    text: String,
    tcti: TctiNameConf,
}

impl TpmConfig {
    /// The default for a Linux endpoint: the in-kernel resource manager.
    pub const DEFAULT_TCTI: &'static str = "device:/dev/tpmrm0";

    pub fn parse(text: &str) -> Result<Self, TpmError> {
        let bad = |reason: String| TpmError::BadTcti {
            config: text.to_string(),
            reason,
        };
        let known = ["device", "swtpm", "mssim", "tabrmd"];
        let kind = text.split(':').next().unwrap_or_default();
        if !known.contains(&kind) {
            return Err(bad(format!("unknown TCTI {kind:?}")));
        }
        let tcti = TctiNameConf::from_str(text).map_err(|e| bad(e.to_string()))?;
        Ok(Self {
            text: text.to_string(),
            tcti,
        })
    }

    /// The configuration string this was parsed from.
    pub fn as_str(&self) -> &str {
        &self.text
    }
}

impl Default for TpmConfig {
    fn default() -> Self {
        Self::parse(Self::DEFAULT_TCTI).unwrap_or_else(|_| Self {
            text: Self::DEFAULT_TCTI.to_string(),
            tcti: TctiNameConf::Device(Default::default()),
        })
    }
}

impl FromStr for TpmConfig {
    type Err = TpmError;
    fn from_str(s: &str) -> Result<Self, TpmError> {
        Self::parse(s)
    }
}

impl fmt::Display for TpmConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A PCR bank is named by its hash: [`HashAlg`], the project's one hash
/// type. tss-esapi's name for it, at the edge:
fn hashing_algorithm(bank: HashAlg) -> HashingAlgorithm {
    match bank {
        HashAlg::Sha1 => HashingAlgorithm::Sha1,
        HashAlg::Sha256 => HashingAlgorithm::Sha256,
        HashAlg::Sha384 => HashingAlgorithm::Sha384,
        HashAlg::Sha512 => HashingAlgorithm::Sha512,
        HashAlg::Sm3 => HashingAlgorithm::Sm3_256,
    }
}

/// The bank a tss-esapi hash names, if it is one of ours.
fn bank_of(alg: HashingAlgorithm) -> Option<HashAlg> {
    HashAlg::ALL
        .into_iter()
        .find(|b| hashing_algorithm(*b) == alg)
}

/// Which endorsement key, by TCG EK Credential Profile template.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EkKind {
    /// Template L-1, certificate at NV 0x01c00002.
    Rsa2048,
    /// Template L-2, certificate at NV 0x01c0000a.
    EccP256,
    /// High-range template for NIST P-384 (SHA-384, AES-256, PolicyOR(A, C)),
    /// certificate at NV 0x01c00016. swtpm provisions this one and RSA 2048.
    EccP384,
}

impl EkKind {
    /// Preference order when several EKs have a certificate: P-256 (fast), RSA 2048
    /// (universal), P-384.
    pub const PREFERENCE: [EkKind; 3] = [EkKind::EccP256, EkKind::Rsa2048, EkKind::EccP384];

    /// NV index of this EK's certificate (TCG EK Credential Profile 2.3, 2.2.1.4–5).
    pub fn certificate_nv_index(self) -> u32 {
        match self {
            EkKind::Rsa2048 => 0x01c0_0002,
            EkKind::EccP256 => 0x01c0_000a,
            EkKind::EccP384 => 0x01c0_0016,
        }
    }

    fn selection(self) -> AsymmetricAlgorithmSelection {
        match self {
            EkKind::Rsa2048 => AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
            EkKind::EccP256 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
            EkKind::EccP384 => AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP384),
        }
    }

    fn code(self) -> u16 {
        match self {
            EkKind::Rsa2048 => 1,
            EkKind::EccP256 => 2,
            EkKind::EccP384 => 3,
        }
    }

    fn from_code(code: u16) -> Option<Self> {
        [EkKind::Rsa2048, EkKind::EccP256, EkKind::EccP384]
            .into_iter()
            .find(|k| k.code() == code)
    }
}

/// Which attestation key: a restricted signing key with a fixed scheme.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AkKind {
    /// ECC NIST P-256, ECDSA with SHA-256: the default.
    EcdsaP256Sha256,
    /// RSA 2048, RSASSA-PKCS1-v1_5 with SHA-256.
    RsaSsa2048Sha256,
    /// SM2 curve and signature; SHA-256 as scheme hash, as a TPM without SM3 (swtpm
    /// 0.7) refuses SM3 with TPM_RC_HASH.
    Sm2P256Sha256,
}

impl AkKind {
    fn code(self) -> u16 {
        match self {
            AkKind::EcdsaP256Sha256 => 1,
            AkKind::RsaSsa2048Sha256 => 2,
            AkKind::Sm2P256Sha256 => 3,
        }
    }

    fn from_code(code: u16) -> Option<Self> {
        [
            AkKind::EcdsaP256Sha256,
            AkKind::RsaSsa2048Sha256,
            AkKind::Sm2P256Sha256,
        ]
        .into_iter()
        .find(|k| k.code() == code)
    }

    fn algorithms(self) -> (AsymmetricAlgorithmSelection, SignatureSchemeAlgorithm) {
        match self {
            AkKind::EcdsaP256Sha256 => (
                AsymmetricAlgorithmSelection::Ecc(EccCurve::NistP256),
                SignatureSchemeAlgorithm::EcDsa,
            ),
            AkKind::RsaSsa2048Sha256 => (
                AsymmetricAlgorithmSelection::Rsa(RsaKeyBits::Rsa2048),
                SignatureSchemeAlgorithm::RsaSsa,
            ),
            AkKind::Sm2P256Sha256 => (
                AsymmetricAlgorithmSelection::Ecc(EccCurve::Sm2P256),
                SignatureSchemeAlgorithm::Sm2,
            ),
        }
    }
}

/// An attestation key of this TPM: its wrapped private blob, public area and Name.
///
/// Not a loaded handle: [`Tpm`] loads it under its EK when a command needs it.
#[derive(Clone, PartialEq, Eq)]
pub struct AkHandle {
    kind: AkKind,
    ek_kind: EkKind,
    /// TPM2B_PRIVATE buffer (without its size): encrypted under the EK's seed.
    private: Vec<u8>,
    /// TPMT_PUBLIC.
    public_area: Vec<u8>,
    /// nameAlg || H(public_area), from the TPM when it loaded the key.
    name: Vec<u8>,
}

impl fmt::Debug for AkHandle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AkHandle")
            .field("kind", &self.kind)
            .field("ek_kind", &self.ek_kind)
            .field("name", &HexBytes(&self.name))
            .finish_non_exhaustive()
    }
}

struct HexBytes<'a>(&'a [u8]);

impl fmt::Debug for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

/// First bytes of a saved AK file, then a format version.
const AK_FILE_MAGIC: &[u8; 8] = b"TNC-AK\x00\x01";

impl AkHandle {
    pub fn kind(&self) -> AkKind {
        self.kind
    }

    /// The EK this AK was created under, and must be loaded under.
    pub fn ek_kind(&self) -> EkKind {
        self.ek_kind
    }

    /// TPMT_PUBLIC (no size prefix).
    pub fn public_area(&self) -> &[u8] {
        &self.public_area
    }

    /// TPM2B_PUBLIC, as tpm2-tools' `-u ak.pub` files hold it.
    pub fn tpm2b_public(&self) -> Vec<u8> {
        tpm2b(&self.public_area)
    }

    /// The AK's Name (nameAlg || H(TPMT_PUBLIC)), what MakeCredential binds to.
    pub fn name(&self) -> &[u8] {
        &self.name
    }

    /// The saved form: magic, EK and AK kinds, TPM2B private, TPM2B public. The Name
    /// is not stored: it is recomputed by the TPM when the file is loaded.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = AK_FILE_MAGIC.to_vec();
        out.extend_from_slice(&self.ek_kind.code().to_be_bytes());
        out.extend_from_slice(&self.kind.code().to_be_bytes());
        out.extend_from_slice(&tpm2b(&self.private));
        out.extend_from_slice(&tpm2b(&self.public_area));
        out
    }

    /// Writes [`Self::to_bytes`] to `path` (mode 0600), through a temporary file
    /// renamed over it, so a crash never leaves half an AK.
    pub fn save(&self, path: &Path) -> Result<(), TpmError> {
        let io = |source| TpmError::AkFileIo {
            path: path.to_path_buf(),
            source,
        };
        let mut tmp = path.as_os_str().to_owned();
        tmp.push(".tmp");
        let tmp = PathBuf::from(tmp);
        {
            use std::io::Write;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                options.mode(0o600);
            }
            let mut file = options.open(&tmp).map_err(io)?;
            file.write_all(&self.to_bytes()).map_err(io)?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, path).map_err(io)
    }
}

/// The parts of a saved AK, before the TPM has loaded (and so vouched for) it.
struct SavedAk {
    ek_kind: EkKind,
    kind: AkKind,
    private: Vec<u8>,
    public_area: Vec<u8>,
}

impl SavedAk {
    fn parse(bytes: &[u8]) -> Result<Self, String> {
        let rest = bytes
            .strip_prefix(AK_FILE_MAGIC.as_slice())
            .ok_or("wrong magic or version")?;
        let (ek_code, rest) = take_u16(rest, "EK kind")?;
        let (ak_code, rest) = take_u16(rest, "AK kind")?;
        let ek_kind = EkKind::from_code(ek_code).ok_or(format!("unknown EK kind {ek_code}"))?;
        let kind = AkKind::from_code(ak_code).ok_or(format!("unknown AK kind {ak_code}"))?;
        let (private, rest) = take_tpm2b(rest, "TPM2B_PRIVATE")?;
        let (public_area, rest) = take_tpm2b(rest, "TPM2B_PUBLIC")?;
        if !rest.is_empty() {
            return Err(format!("{} bytes after the public area", rest.len()));
        }
        Ok(Self {
            ek_kind,
            kind,
            private: private.to_vec(),
            public_area: public_area.to_vec(),
        })
    }
}

fn take_u16<'a>(bytes: &'a [u8], what: &str) -> Result<(u16, &'a [u8]), String> {
    match bytes {
        [a, b, rest @ ..] => Ok((u16::from_be_bytes([*a, *b]), rest)),
        _ => Err(format!("truncated before {what}")),
    }
}

/// Splits a TPM2B (u16 big-endian size, then that many bytes) off `bytes`.
fn take_tpm2b<'a>(bytes: &'a [u8], what: &str) -> Result<(&'a [u8], &'a [u8]), String> {
    let (size, rest) = take_u16(bytes, what)?;
    let size = usize::from(size);
    if rest.len() < size {
        return Err(format!("{what} says {size} bytes, {} are left", rest.len()));
    }
    Ok(rest.split_at(size))
}

fn tpm2b(body: &[u8]) -> Vec<u8> {
    // Every TPM2B this module builds holds a TPM structure, far below 64 KiB.
    let len = u16::try_from(body.len()).unwrap_or(u16::MAX);
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(body);
    out
}

/// One PCR value read from the TPM.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PcrValue {
    pub bank: HashAlg,
    pub index: u32,
    pub digest: Vec<u8>,
}

/// A TPM2_Quote and the PCR values read right after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
    /// TPMS_ATTEST, the bytes the signature covers.
    pub attest: Vec<u8>,
    /// TPMT_SIGNATURE.
    pub signature: Vec<u8>,
    /// The selected PCRs' values, read after the quote. Informative only: a PCR may
    /// be extended between the quote and the read, and a verifier trusts replayed
    /// logs checked against the quote's pcrDigest, never these.
    pub pcr_values: Vec<PcrValue>,
}

/// A loaded transient object this module flushes.
#[derive(Clone, Copy, Debug)]
struct LoadedEk {
    kind: EkKind,
    handle: KeyHandle,
}

#[derive(Clone, Debug)]
struct LoadedAk {
    /// Which blob is loaded: both parts, so a blob with the same public area and
    /// another private part is loaded (and checked by the TPM), never taken for it.
    public_area: Vec<u8>,
    private: Vec<u8>,
    handle: KeyHandle,
}

/// An open TPM.
pub struct Tpm {
    context: Context,
    config: TpmConfig,
    /// The one EK kept loaded between calls (see the module doc on slots).
    ek: Option<LoadedEk>,
    /// The one AK kept loaded between calls.
    ak: Option<LoadedAk>,
}

impl fmt::Debug for Tpm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tpm")
            .field("tcti", &self.config.as_str())
            .field("ek", &self.ek.map(|e| e.kind))
            .field("ak_loaded", &self.ak.is_some())
            .finish()
    }
}

impl Tpm {
    /// Connects to the TPM. Commands go to it one at a time: a swtpm or mssim
    /// simulator serves one connection at a time, so drop the `Tpm` before another
    /// program (tpm2-tools) talks to the same simulator.
    pub fn open(config: &TpmConfig) -> Result<Self, TpmError> {
        let context = Context::new(config.tcti.clone()).map_err(|e| {
            let mut err = TpmError::tpm("opening the TPM", e);
            if let TpmError::Tpm { detail, .. } = &mut err {
                detail.push_str(&format!(" (TCTI {})", config.as_str()));
            }
            err
        })?;
        Ok(Self {
            context,
            config: config.clone(),
            ek: None,
            ak: None,
        })
    }

    pub fn config(&self) -> &TpmConfig {
        &self.config
    }

    /// Creates the EK of `kind` from its default template (a primary key: the same
    /// key every time) and returns its public area, parsed as the verifier parses
    /// it (its marshalled bytes kept: the Name is their hash).
    pub fn endorsement_key(&mut self, kind: EkKind) -> Result<policy::tpm::Public, TpmError> {
        let handle = self.ensure_ek(kind)?;
        let (public, _, _) = self
            .context
            .execute_without_session(|ctx| ctx.read_public(handle))
            .op("TPM2_ReadPublic (EK)")?;
        let area = public.marshall().op("marshalling the EK's TPMT_PUBLIC")?;
        policy::tpm::Public::parse(&area).map_err(|e| TpmError::Invalid {
            what: "the EK's public area",
            reason: e.to_string(),
        })
    }

    /// The Name the TPM gives the EK of `kind` (nameAlg || H(public area)):
    /// what [`policy::tpm::Public::name`] of [`Tpm::endorsement_key`] must equal.
    pub fn ek_name(&mut self, kind: EkKind) -> Result<Vec<u8>, TpmError> {
        let handle = self.ensure_ek(kind)?;
        let (_, name, _) = self
            .context
            .execute_without_session(|ctx| ctx.read_public(handle))
            .op("TPM2_ReadPublic (EK)")?;
        Ok(name.value().to_vec())
    }

    /// The EK certificate (DER) stored in NV for `kind`, or `None` if the index is
    /// not defined. Read in chunks no larger than the TPM's NV buffer.
    pub fn ek_certificate(&mut self, kind: EkKind) -> Result<Option<Vec<u8>>, TpmError> {
        self.read_nv(kind.certificate_nv_index())
    }

    /// The EK kinds whose certificate index is defined, in [`EkKind::PREFERENCE`] order.
    pub fn certified_ek_kinds(&mut self) -> Result<Vec<EkKind>, TpmError> {
        let mut kinds = Vec::new();
        for kind in EkKind::PREFERENCE {
            if self.nv_index_defined(kind.certificate_nv_index())? {
                kinds.push(kind);
            }
        }
        Ok(kinds)
    }

    /// The preferred EK that has a certificate, with the certificate; `None` if the
    /// TPM holds no EK certificate (then the verifier has no root of trust for it).
    pub fn certified_ek(&mut self) -> Result<Option<(EkKind, Vec<u8>)>, TpmError> {
        for kind in self.certified_ek_kinds()? {
            if let Some(cert) = self.ek_certificate(kind)? {
                return Ok(Some((kind, cert)));
            }
        }
        Ok(None)
    }

    /// Creates an attestation key under the EK of `ek` in the endorsement hierarchy
    /// (the EK's PolicySecret(endorsement) session, as the TCG profile requires) and
    /// loads it. Keep it with [`AkHandle::save`]; the TPM does not.
    pub fn create_ak(&mut self, ek: EkKind, kind: AkKind) -> Result<AkHandle, TpmError> {
        let ek_handle = self.ensure_ek(ek)?;
        let (key_alg, sign_alg) = kind.algorithms();
        let created = ak::create_ak_2(
            &mut self.context,
            ek_handle,
            HashingAlgorithm::Sha256,
            key_alg,
            sign_alg,
            None,
            DefaultKey,
        )
        .op("TPM2_Create (AK under the EK)")?;
        let mut handle = AkHandle {
            kind,
            ek_kind: ek,
            private: created.out_private.value().to_vec(),
            public_area: created
                .out_public
                .marshall()
                .op("marshalling the AK's TPMT_PUBLIC")?,
            name: Vec::new(),
        };
        let loaded = self.ensure_ak(&handle)?;
        handle.name = self.object_name(loaded, "Esys_TR_GetName (AK)")?;
        Ok(handle)
    }

    /// Restores an AK saved with [`AkHandle::to_bytes`]: loads it under its EK (which
    /// fails if the blob was made by another TPM or altered) and takes its Name from
    /// the TPM.
    pub fn load_ak(&mut self, saved: &[u8]) -> Result<AkHandle, TpmError> {
        let saved = SavedAk::parse(saved).map_err(|reason| TpmError::Invalid {
            what: "saved AK",
            reason,
        })?;
        let mut handle = AkHandle {
            kind: saved.kind,
            ek_kind: saved.ek_kind,
            private: saved.private,
            public_area: saved.public_area,
            name: Vec::new(),
        };
        let loaded = self.ensure_ak(&handle)?;
        handle.name = self.object_name(loaded, "Esys_TR_GetName (AK)")?;
        Ok(handle)
    }

    /// [`Tpm::load_ak`] from a file written by [`AkHandle::save`].
    pub fn load_ak_file(&mut self, path: &Path) -> Result<AkHandle, TpmError> {
        let bytes = std::fs::read(path).map_err(|source| TpmError::AkFileIo {
            path: path.to_path_buf(),
            source,
        })?;
        if let Err(reason) = SavedAk::parse(&bytes) {
            return Err(TpmError::BadAkFile {
                path: path.to_path_buf(),
                reason,
            });
        }
        self.load_ak(&bytes)
    }

    /// TPM2_Quote with `ak` over `selection`, `nonce` as qualifyingData (at most 64
    /// bytes), with the AK's own scheme; then reads the selected PCRs.
    pub fn quote(
        &mut self,
        ak: &AkHandle,
        nonce: &[u8],
        selection: &[(HashAlg, Vec<u32>)],
    ) -> Result<Quote, TpmError> {
        let qualifying = Data::try_from(nonce.to_vec()).map_err(|_| TpmError::Invalid {
            what: "quote nonce",
            reason: format!(
                "{} bytes, a TPM2B_DATA holds at most {}",
                nonce.len(),
                Data::MAX_SIZE
            ),
        })?;
        let pcrs = pcr_selection_list(selection)?;
        let handle = self.ensure_ak(ak)?;
        let (attest, signature) = self
            .context
            .execute_with_nullauth_session(|ctx| {
                ctx.quote(handle, qualifying, SignatureScheme::Null, pcrs)
            })
            .op("TPM2_Quote")?;
        let attest = attest.marshall().op("marshalling TPMS_ATTEST")?;
        let signature = signature.marshall().op("marshalling TPMT_SIGNATURE")?;
        let pcr_values = self.read_pcrs(selection)?;
        Ok(Quote {
            attest,
            signature,
            pcr_values,
        })
    }

    /// Reads PCR values, at most 8 a command; all from one PCR update counter value
    /// (retried if a PCR changed between two reads).
    pub fn read_pcrs(
        &mut self,
        selection: &[(HashAlg, Vec<u32>)],
    ) -> Result<Vec<PcrValue>, TpmError> {
        let wanted = flatten_selection(selection)?;
        'attempt: for _ in 0..4 {
            let mut values: Vec<PcrValue> = Vec::with_capacity(wanted.len());
            let mut counter = None;
            let mut pending = wanted.clone();
            while !pending.is_empty() {
                let chunk: Vec<(HashAlg, u32)> =
                    pending.iter().take(PCR_READ_MAX).copied().collect();
                let list = pcr_selection_list(&group(&chunk))?;
                let (update_counter, read, digests) = self
                    .context
                    .execute_without_session(|ctx| ctx.pcr_read(list))
                    .op("TPM2_PCR_Read")?;
                if *counter.get_or_insert(update_counter) != update_counter {
                    continue 'attempt;
                }
                let read_pcrs = read_selection_order(&read)?;
                if read_pcrs.len() != digests.value().len() {
                    return Err(TpmError::Unexpected {
                        operation: "TPM2_PCR_Read",
                        reason: format!(
                            "{} PCRs selected but {} digests",
                            read_pcrs.len(),
                            digests.value().len()
                        ),
                    });
                }
                if read_pcrs.is_empty() {
                    let (bank, index) = chunk[0];
                    return Err(TpmError::Invalid {
                        what: "PCR selection",
                        reason: format!(
                            "the TPM returns no value for {bank}:{index} (bank not allocated?)"
                        ),
                    });
                }
                for ((bank, index), digest) in read_pcrs.into_iter().zip(digests.value()) {
                    if let Some(pos) = pending.iter().position(|p| *p == (bank, index)) {
                        pending.remove(pos);
                        values.push(PcrValue {
                            bank,
                            index,
                            digest: digest.value().to_vec(),
                        });
                    }
                }
            }
            values.sort_by_key(|v| (wanted.iter().position(|w| *w == (v.bank, v.index)), v.index));
            return Ok(values);
        }
        Err(TpmError::Unexpected {
            operation: "TPM2_PCR_Read",
            reason: "PCRs kept changing while they were read".into(),
        })
    }

    /// TPM2_ActivateCredential: proves `ak` and the EK of `ek` live in this TPM by
    /// recovering the secret a verifier wrapped with MakeCredential for the EK's
    /// public key and the AK's Name. `credential_blob` is a TPM2B_ID_OBJECT and
    /// `secret` a TPM2B_ENCRYPTED_SECRET, both with their u16 size prefix.
    pub fn activate_credential(
        &mut self,
        ak: &AkHandle,
        ek: EkKind,
        credential_blob: &[u8],
        secret: &[u8],
    ) -> Result<Vec<u8>, TpmError> {
        let invalid = |what, reason| TpmError::Invalid { what, reason };
        let id_object = match take_tpm2b(credential_blob, "TPM2B_ID_OBJECT") {
            Ok((body, [])) => IdObject::try_from(body.to_vec())
                .map_err(|e| invalid("credential blob", e.to_string()))?,
            Ok((_, rest)) => {
                return Err(invalid(
                    "credential blob",
                    format!("{} bytes after the TPM2B_ID_OBJECT", rest.len()),
                ))
            }
            Err(reason) => return Err(invalid("credential blob", reason)),
        };
        let encrypted_secret = match take_tpm2b(secret, "TPM2B_ENCRYPTED_SECRET") {
            Ok((body, [])) => EncryptedSecret::try_from(body.to_vec())
                .map_err(|e| invalid("encrypted secret", e.to_string()))?,
            Ok((_, rest)) => {
                return Err(invalid(
                    "encrypted secret",
                    format!("{} bytes after the TPM2B_ENCRYPTED_SECRET", rest.len()),
                ))
            }
            Err(reason) => return Err(invalid("encrypted secret", reason)),
        };

        // The AK first: loading it may need its own parent EK in the EK slot.
        let ak_handle = self.ensure_ak(ak)?;
        let ek_handle = self.ensure_ek(ek)?;
        let session = self.ek_policy_session(ek_handle)?;
        let result = self
            .context
            .execute_with_sessions((Some(AuthSession::Password), Some(session), None), |ctx| {
                ctx.activate_credential(ak_handle, ek_handle, id_object, encrypted_secret)
            });
        let flushed = self
            .context
            .flush_context(SessionHandle::from(session).into())
            .op("TPM2_FlushContext (policy session)");
        let digest = result.op("TPM2_ActivateCredential")?;
        flushed?;
        Ok(digest.value().to_vec())
    }

    /// TPM2_PCR_Extend of one bank of PCR `index` with `digest`.
    pub fn pcr_extend(&mut self, index: u32, bank: HashAlg, digest: &[u8]) -> Result<(), TpmError> {
        if digest.len() != bank.size() {
            return Err(TpmError::Invalid {
                what: "PCR extend digest",
                reason: format!(
                    "{} bytes for bank {bank}, which takes {}",
                    digest.len(),
                    bank.size()
                ),
            });
        }
        let pcr = pcr_handle(index)?;
        let mut values = DigestValues::new();
        values.set(
            hashing_algorithm(bank),
            Digest::try_from(digest.to_vec()).map_err(|e| TpmError::Invalid {
                what: "PCR extend digest",
                reason: e.to_string(),
            })?,
        );
        self.context
            .execute_with_nullauth_session(|ctx| ctx.pcr_extend(pcr, values))
            .op("TPM2_PCR_Extend")
    }

    /// The public key (SEC1, uncompressed) of this TPM's SM2 signing key for
    /// `unique` (see [`Tpm::sm2_sign_digest`]).
    pub fn sm2_public_key(&mut self, unique: &[u8; 32]) -> Result<Vec<u8>, TpmError> {
        let (handle, public) = self.create_sm2_key(unique)?;
        self.context
            .flush_context(handle.into())
            .op("TPM2_FlushContext (SM2 key)")?;
        Ok(public)
    }

    /// Signs `digest` with this TPM's SM2 signing key for `unique`: an
    /// owner-hierarchy primary key (unrestricted, sign only, fixedTPM), which
    /// the TPM derives from its owner seed and `unique` (random bytes the
    /// endpoint keeps; not secret: only this TPM can derive the key, and
    /// only with the owner hierarchy's authorization, empty by default).
    ///
    /// The key's scheme is SM2 with SHA-256 as scheme hash: swtpm 0.7 has no
    /// SM3 (TPM_RC_HASH), and TPM2_Sign signs the 32 bytes it is handed
    /// whatever the scheme hash says, so the caller hands it SM3(Z_A || M)
    /// ([`pki::ca::sm2_digest`]) and the result is an SM2-with-SM3
    /// signature. Returns (r, s).
    pub fn sm2_sign_digest(
        &mut self,
        unique: &[u8; 32],
        digest: &[u8; 32],
    ) -> Result<([u8; 32], [u8; 32]), TpmError> {
        let (handle, _) = self.create_sm2_key(unique)?;
        let signed = Digest::try_from(digest.to_vec())
            .map_err(|e| TpmError::Invalid {
                what: "digest",
                reason: e.to_string(),
            })
            .and_then(|digest| {
                let validation = tss_esapi::structures::HashcheckTicket::try_from(
                    tss_esapi::tss2_esys::TPMT_TK_HASHCHECK {
                        tag: tss_esapi::constants::tss::TPM2_ST_HASHCHECK,
                        hierarchy: tss_esapi::constants::tss::TPM2_RH_NULL,
                        digest: Default::default(),
                    },
                )
                .op("a null hashcheck ticket")?;
                self.context
                    .execute_with_nullauth_session(|ctx| {
                        ctx.sign(handle, digest, SignatureScheme::Null, validation)
                    })
                    .op("TPM2_Sign (SM2 key)")
            });
        let flushed = self
            .context
            .flush_context(handle.into())
            .op("TPM2_FlushContext (SM2 key)");
        let signature = signed?;
        flushed?;
        match signature {
            tss_esapi::structures::Signature::Sm2(sig) => Ok((
                left_pad32(sig.signature_r().value(), "SM2 r")?,
                left_pad32(sig.signature_s().value(), "SM2 s")?,
            )),
            other => Err(TpmError::Invalid {
                what: "TPM2_Sign's signature",
                reason: format!("{:?}, not SM2", other.algorithm()),
            }),
        }
    }

    /// TPM2_CreatePrimary of the SM2 signing key for `unique`: its handle
    /// (the caller flushes it) and public key.
    fn create_sm2_key(&mut self, unique: &[u8; 32]) -> Result<(KeyHandle, Vec<u8>), TpmError> {
        use tss_esapi::attributes::ObjectAttributesBuilder;
        use tss_esapi::interface_types::algorithm::PublicAlgorithm;
        use tss_esapi::interface_types::resource_handles::Hierarchy;
        use tss_esapi::structures::{
            EccParameter, EccPoint, EccScheme, HashScheme, PublicBuilder,
            PublicEccParametersBuilder,
        };
        let invalid = |e: tss_esapi::Error| TpmError::Invalid {
            what: "SM2 key template",
            reason: e.to_string(),
        };
        let attributes = ObjectAttributesBuilder::new()
            .with_fixed_tpm(true)
            .with_fixed_parent(true)
            .with_sensitive_data_origin(true)
            .with_user_with_auth(true)
            .with_sign_encrypt(true)
            .with_decrypt(false)
            .with_restricted(false)
            .build()
            .map_err(invalid)?;
        let parameters = PublicEccParametersBuilder::new_unrestricted_signing_key(
            EccScheme::Sm2(HashScheme::new(HashingAlgorithm::Sha256)),
            EccCurve::Sm2P256,
        )
        .build()
        .map_err(invalid)?;
        let public = PublicBuilder::new()
            .with_public_algorithm(PublicAlgorithm::Ecc)
            .with_name_hashing_algorithm(HashingAlgorithm::Sha256)
            .with_object_attributes(attributes)
            .with_ecc_parameters(parameters)
            .with_ecc_unique_identifier(EccPoint::new(
                EccParameter::try_from(unique.to_vec()).map_err(invalid)?,
                EccParameter::try_from(vec![0u8; 32]).map_err(invalid)?,
            ))
            .build()
            .map_err(invalid)?;
        let created = self
            .context
            .execute_with_nullauth_session(|ctx| {
                ctx.create_primary(Hierarchy::Owner, public, None, None, None, None)
            })
            .op("TPM2_CreatePrimary (SM2 signing key)")?;
        let point = match &created.out_public {
            Public::Ecc { unique, .. } => {
                let mut sec1 = vec![4u8];
                sec1.extend_from_slice(&left_pad32(unique.x().value(), "SM2 x")?);
                sec1.extend_from_slice(&left_pad32(unique.y().value(), "SM2 y")?);
                Ok(sec1)
            }
            _ => Err(TpmError::Invalid {
                what: "TPM2_CreatePrimary's public area",
                reason: "not an ECC key".into(),
            }),
        };
        match point {
            Ok(p) => Ok((created.key_handle, p)),
            Err(e) => {
                let _ = self.context.flush_context(created.key_handle.into());
                Err(e)
            }
        }
    }

    /// Flushes the EK and AK kept loaded, freeing every transient slot this `Tpm`
    /// holds (they are loaded again when needed). `Drop` does the same.
    pub fn release(&mut self) -> Result<(), TpmError> {
        let ak = self.flush_ak();
        let ek = self.flush_ek();
        ak.and(ek)
    }

    // ---- transient objects ----

    /// The EK of `kind`, loaded: the cached one, or a fresh TPM2_CreatePrimary after
    /// flushing an EK of another kind.
    fn ensure_ek(&mut self, kind: EkKind) -> Result<KeyHandle, TpmError> {
        match self.ek {
            Some(loaded) if loaded.kind == kind => return Ok(loaded.handle),
            Some(_) => self.flush_ek()?,
            None => {}
        }
        let handle = ek::create_ek_object_2(&mut self.context, kind.selection(), DefaultKey)
            .op("TPM2_CreatePrimary (EK)")?;
        self.ek = Some(LoadedEk { kind, handle });
        Ok(handle)
    }

    /// `ak`, loaded under its EK: the cached one if it is the same key.
    fn ensure_ak(&mut self, ak_key: &AkHandle) -> Result<KeyHandle, TpmError> {
        if let Some(loaded) = &self.ak {
            if loaded.public_area == ak_key.public_area && loaded.private == ak_key.private {
                return Ok(loaded.handle);
            }
            self.flush_ak()?;
        }
        let public = Public::unmarshall(&ak_key.public_area).map_err(|e| TpmError::Invalid {
            what: "AK public area",
            reason: e.to_string(),
        })?;
        let private = Private::try_from(ak_key.private.clone()).map_err(|e| TpmError::Invalid {
            what: "AK private blob",
            reason: e.to_string(),
        })?;
        let parent = self.ensure_ek(ak_key.ek_kind)?;
        let handle =
            ak::load_ak(&mut self.context, parent, None, private, public).op("TPM2_Load (AK)")?;
        self.ak = Some(LoadedAk {
            public_area: ak_key.public_area.clone(),
            private: ak_key.private.clone(),
            handle,
        });
        Ok(handle)
    }

    fn flush_ek(&mut self) -> Result<(), TpmError> {
        match self.ek.take() {
            Some(ek) => self
                .context
                .flush_context(ek.handle.into())
                .op("TPM2_FlushContext (EK)"),
            None => Ok(()),
        }
    }

    fn flush_ak(&mut self) -> Result<(), TpmError> {
        match self.ak.take() {
            Some(ak) => self
                .context
                .flush_context(ak.handle.into())
                .op("TPM2_FlushContext (AK)"),
            None => Ok(()),
        }
    }

    fn object_name(
        &mut self,
        handle: KeyHandle,
        operation: &'static str,
    ) -> Result<Vec<u8>, TpmError> {
        let name = self.context.tr_get_name(handle.into()).op(operation)?;
        Ok(name.value().to_vec())
    }

    /// A policy session satisfying the default EK templates' authPolicy:
    /// PolicySecret(TPM_RH_ENDORSEMENT), and for a high-range (SHA-384) EK also
    /// PolicyOR(PolicyA, PolicyC). The caller flushes it; on error it is flushed here.
    fn ek_policy_session(&mut self, ek_handle: KeyHandle) -> Result<AuthSession, TpmError> {
        let (ek_public, _, _) = self
            .context
            .execute_without_session(|ctx| ctx.read_public(ek_handle))
            .op("TPM2_ReadPublic (EK)")?;
        let hash = ek_public.name_hashing_algorithm();
        let session = self
            .context
            .start_auth_session(
                None,
                None,
                None,
                SessionType::Policy,
                SymmetricDefinition::Null,
                hash,
            )
            .op("TPM2_StartAuthSession (EK policy)")?
            .ok_or(TpmError::Unexpected {
                operation: "TPM2_StartAuthSession (EK policy)",
                reason: "no session handle".into(),
            })?;
        let satisfied = self.satisfy_ek_policy(session, hash);
        if let Err(e) = satisfied {
            let _ = self
                .context
                .flush_context(SessionHandle::from(session).into());
            return Err(e);
        }
        Ok(session)
    }

    fn satisfy_ek_policy(
        &mut self,
        session: AuthSession,
        hash: HashingAlgorithm,
    ) -> Result<(), TpmError> {
        let (attributes, mask) = SessionAttributesBuilder::new()
            .with_continue_session(true)
            .build();
        self.context
            .tr_sess_set_attributes(session, attributes, mask)
            .op("Esys_TRSess_SetAttributes")?;
        let policy = PolicySession::try_from(session).op("policy session")?;
        self.context
            .execute_with_session(Some(AuthSession::Password), |ctx| {
                ctx.policy_secret(
                    policy,
                    AuthHandle::Endorsement,
                    Default::default(),
                    Default::default(),
                    Default::default(),
                    None,
                )
            })
            .op("TPM2_PolicySecret (endorsement)")?;
        if hash == HashingAlgorithm::Sha384 {
            let mut digests = DigestList::new();
            for d in [POLICY_A_SHA384, POLICY_C_SHA384] {
                digests
                    .add(Digest::try_from(d.to_vec()).op("policy digest")?)
                    .op("policy digest list")?;
            }
            self.context
                .execute_without_session(|ctx| ctx.policy_or(policy, digests))
                .op("TPM2_PolicyOR (EK policy B)")?;
        }
        Ok(())
    }

    // ---- NV ----

    fn nv_index_defined(&mut self, index: u32) -> Result<bool, TpmError> {
        let (data, _) = self
            .context
            .execute_without_session(|ctx| ctx.get_capability(CapabilityType::Handles, index, 1))
            .op("TPM2_GetCapability (NV handles)")?;
        match data {
            CapabilityData::Handles(handles) => Ok(handles
                .into_inner()
                .first()
                .is_some_and(|h| u32::from(*h) == index)),
            other => Err(TpmError::Unexpected {
                operation: "TPM2_GetCapability (NV handles)",
                reason: format!("{other:?}"),
            }),
        }
    }

    /// The whole content of NV index `index`, or `None` if it is not defined; read
    /// with the index's own (empty) authorization, as EK certificate indices allow.
    fn read_nv(&mut self, index: u32) -> Result<Option<Vec<u8>>, TpmError> {
        if !self.nv_index_defined(index)? {
            return Ok(None);
        }
        let tpm_handle = NvIndexTpmHandle::new(index).op("NV index handle")?;
        let mut object = self
            .context
            .execute_without_session(|ctx| ctx.tr_from_tpm_public(TpmHandle::NvIndex(tpm_handle)))
            .op("Esys_TR_FromTPMPublic (NV index)")?;
        let read = self.read_nv_object(NvIndexHandle::from(object));
        let closed = self.context.tr_close(&mut object).op("Esys_TR_Close");
        let data = read?;
        closed?;
        Ok(Some(data))
    }

    fn read_nv_object(&mut self, nv: NvIndexHandle) -> Result<Vec<u8>, TpmError> {
        let (public, _) = self
            .context
            .execute_without_session(|ctx| ctx.nv_read_public(nv))
            .op("TPM2_NV_ReadPublic")?;
        let size = public.data_size();
        let chunk = self
            .context
            .get_tpm_property(PropertyTag::NvBufferMax)
            .op("TPM2_GetCapability (NV buffer size)")?
            .unwrap_or(512)
            .clamp(1, NV_CHUNK_MAX) as usize;
        let mut data = Vec::with_capacity(size);
        while data.len() < size {
            let want = (size - data.len()).min(chunk);
            let (want, offset) = match (u16::try_from(want), u16::try_from(data.len())) {
                (Ok(w), Ok(o)) => (w, o),
                _ => {
                    return Err(TpmError::Unexpected {
                        operation: "TPM2_NV_ReadPublic",
                        reason: format!("NV index of {size} bytes is over 64 KiB"),
                    })
                }
            };
            let part = self
                .context
                .execute_with_nullauth_session(|ctx| {
                    ctx.nv_read(NvAuth::NvIndex(nv), nv, want, offset)
                })
                .op("TPM2_NV_Read")?;
            if part.value().is_empty() {
                return Err(TpmError::Unexpected {
                    operation: "TPM2_NV_Read",
                    reason: format!("no data at offset {offset} of {size}"),
                });
            }
            data.extend_from_slice(part.value());
        }
        data.truncate(size);
        Ok(data)
    }
}

impl Drop for Tpm {
    fn drop(&mut self) {
        // The Context flushes what it created on drop too; doing it here keeps the
        // cache and the TPM in step and the order (AK before its parent) explicit.
        let _ = self.release();
    }
}

/// A big-endian value of at most 32 bytes, left-padded to 32.
fn left_pad32(v: &[u8], what: &'static str) -> Result<[u8; 32], TpmError> {
    if v.len() > 32 {
        return Err(TpmError::Invalid {
            what,
            reason: format!("{} bytes, more than 32", v.len()),
        });
    }
    let mut out = [0u8; 32];
    out[32 - v.len()..].copy_from_slice(v);
    Ok(out)
}

/// Checks and flattens a selection into (bank, index) pairs, bank by bank, indices
/// ascending, duplicates dropped.
fn flatten_selection(selection: &[(HashAlg, Vec<u32>)]) -> Result<Vec<(HashAlg, u32)>, TpmError> {
    let mut out: Vec<(HashAlg, u32)> = Vec::new();
    for (bank, indices) in selection {
        let mut indices = indices.clone();
        indices.sort_unstable();
        for index in indices {
            if index > 31 {
                return Err(TpmError::Invalid {
                    what: "PCR selection",
                    reason: format!("PCR {index} of bank {bank} is over 31"),
                });
            }
            if !out.contains(&(*bank, index)) {
                out.push((*bank, index));
            }
        }
    }
    if out.is_empty() {
        return Err(TpmError::Invalid {
            what: "PCR selection",
            reason: "no PCR selected".into(),
        });
    }
    Ok(out)
}

/// Groups (bank, index) pairs back into per-bank lists, keeping bank order.
fn group(pairs: &[(HashAlg, u32)]) -> Vec<(HashAlg, Vec<u32>)> {
    let mut out: Vec<(HashAlg, Vec<u32>)> = Vec::new();
    for &(bank, index) in pairs {
        match out.iter_mut().find(|(b, _)| *b == bank) {
            Some((_, list)) => list.push(index),
            None => out.push((bank, vec![index])),
        }
    }
    out
}

fn pcr_selection_list(selection: &[(HashAlg, Vec<u32>)]) -> Result<PcrSelectionList, TpmError> {
    let pairs = flatten_selection(selection)?;
    // The usual 3-byte bitmap (PCR 0-23); 4 bytes only when a PCR above 23 is asked.
    let size = if pairs.iter().any(|&(_, i)| i > 23) {
        PcrSelectSize::FourOctets
    } else {
        PcrSelectSize::ThreeOctets
    };
    let mut builder = PcrSelectionList::builder().with_size_of_select(size);
    for (bank, indices) in group(&pairs) {
        let slots = indices
            .iter()
            .map(|&i| PcrSlot::try_from(1u32 << i))
            .collect::<Result<Vec<_>, _>>()
            .op("PCR slot")?;
        builder = builder.with_selection(hashing_algorithm(bank), &slots);
    }
    builder.build().op("building the PCR selection")
}

/// The (bank, index) pairs of a selection the TPM returned, in the order its
/// digests come: selection by selection, PCR indices ascending.
fn read_selection_order(list: &PcrSelectionList) -> Result<Vec<(HashAlg, u32)>, TpmError> {
    let mut out = Vec::new();
    for selection in list.get_selections() {
        let bank = bank_of(selection.hashing_algorithm()).ok_or(TpmError::Unexpected {
            operation: "TPM2_PCR_Read",
            reason: format!("bank {:?}", selection.hashing_algorithm()),
        })?;
        let mut indices: Vec<u32> = selection
            .selected()
            .into_iter()
            .map(|slot| u32::from(slot).trailing_zeros())
            .collect();
        indices.sort_unstable();
        out.extend(indices.into_iter().map(|i| (bank, i)));
    }
    Ok(out)
}

fn pcr_handle(index: u32) -> Result<PcrHandle, TpmError> {
    if index > 31 {
        return Err(TpmError::Invalid {
            what: "PCR index",
            reason: format!("{index} is over 31"),
        });
    }
    // ESYS_TR_PCR0..31 are the values 0..31.
    PcrHandle::try_from(ObjectHandle::from(index)).op("PCR handle")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcti_strings_parse() {
        for ok in [
            "device:/dev/tpmrm0",
            "swtpm:host=127.0.0.1,port=2321",
            "mssim:host=localhost,port=2321",
        ] {
            let config = TpmConfig::parse(ok).unwrap_or_else(|e| panic!("{ok}: {e}"));
            assert_eq!(config.to_string(), ok);
        }
        assert_eq!(TpmConfig::default().as_str(), "device:/dev/tpmrm0");
    }

    #[test]
    fn bad_tcti_strings_are_named_in_the_error() {
        for bad in [
            "swtpm:host=127.0.0.1,port=notaport",
            "tpm:/dev/tpm0",
            "mssim:port=70000",
            "",
        ] {
            let err = TpmConfig::parse(bad).expect_err(bad);
            let text = err.to_string();
            assert!(matches!(err, TpmError::BadTcti { .. }), "{bad}: {text}");
            assert!(text.contains(&format!("{bad:?}")), "{text}");
        }
    }

    #[test]
    fn banks_round_trip() {
        for bank in HashAlg::ALL {
            assert_eq!(bank_of(hashing_algorithm(bank)), Some(bank));
        }
        assert_eq!(bank_of(HashingAlgorithm::Sha3_256), None);
    }

    #[test]
    fn selections_flatten_and_group() {
        let sel = vec![
            (HashAlg::Sha256, vec![10, 0, 1, 1]),
            (HashAlg::Sha1, vec![7]),
        ];
        let flat = flatten_selection(&sel).unwrap();
        assert_eq!(
            flat,
            vec![
                (HashAlg::Sha256, 0),
                (HashAlg::Sha256, 1),
                (HashAlg::Sha256, 10),
                (HashAlg::Sha1, 7)
            ]
        );
        assert_eq!(
            group(&flat),
            vec![(HashAlg::Sha256, vec![0, 1, 10]), (HashAlg::Sha1, vec![7])]
        );
        assert!(flatten_selection(&[(HashAlg::Sha256, vec![32])]).is_err());
        assert!(flatten_selection(&[]).is_err());
        let list = pcr_selection_list(&sel).unwrap();
        assert_eq!(read_selection_order(&list).unwrap().len(), 4, "{list:?}");
    }

    #[test]
    fn saved_ak_round_trips_and_rejects_garbage() {
        let ak = AkHandle {
            kind: AkKind::Sm2P256Sha256,
            ek_kind: EkKind::EccP384,
            private: vec![1, 2, 3],
            public_area: vec![4, 5],
            name: vec![0, 0x0b],
        };
        let bytes = ak.to_bytes();
        let saved = SavedAk::parse(&bytes).unwrap();
        assert_eq!(saved.kind, AkKind::Sm2P256Sha256);
        assert_eq!(saved.ek_kind, EkKind::EccP384);
        assert_eq!(saved.private, vec![1, 2, 3]);
        assert_eq!(saved.public_area, vec![4, 5]);
        for cut in 0..bytes.len() {
            assert!(SavedAk::parse(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(SavedAk::parse(&longer).is_err());
    }
}
