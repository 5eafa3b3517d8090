//! TPM 2.0 structures a verifier reads (TPM 2.0 Library Part 2; see
//! `shared/specs/tpm-evidence.md` §1–§4): TPMS_ATTEST, TPMT_SIGNATURE, TPMT_PUBLIC,
//! TPML_PCR_SELECTION, Names and qualified Names, and the PCR digest of a quote.
//!
//! All TPM structures are big-endian. Parsers take what is there and say what was
//! wrong in the TPM's own terms; judging the content (magic, type, nonce) is
//! [`crate::quote`]'s job.

use crate::digest::HashAlg;
use core::fmt;
use std::collections::BTreeMap;

/// TPM_GENERATED_VALUE: the first four bytes of every TPMS_ATTEST a TPM produced.
pub const TPM_GENERATED_VALUE: u32 = 0xFF54_4347;
/// TPM_ST_ATTEST_QUOTE.
pub const TPM_ST_ATTEST_QUOTE: u16 = 0x8018;
/// TPM_RH_OWNER: the storage hierarchy; its Name and qualified Name are the handle.
pub const TPM_RH_OWNER: u32 = 0x4000_0001;
/// TPM_RH_ENDORSEMENT: the endorsement hierarchy, parent of the EK.
pub const TPM_RH_ENDORSEMENT: u32 = 0x4000_000B;

/// TPM_ALG_ID values (TPM 2.0 Library Part 2, table 9) this module interprets.
pub mod alg {
    pub const RSA: u16 = 0x0001;
    pub const HMAC: u16 = 0x0005;
    pub const KEYEDHASH: u16 = 0x0008;
    pub const NULL: u16 = 0x0010;
    pub const RSASSA: u16 = 0x0014;
    pub const RSAES: u16 = 0x0015;
    pub const RSAPSS: u16 = 0x0016;
    pub const OAEP: u16 = 0x0017;
    pub const ECDSA: u16 = 0x0018;
    pub const ECDH: u16 = 0x0019;
    pub const ECDAA: u16 = 0x001A;
    pub const SM2: u16 = 0x001B;
    pub const ECSCHNORR: u16 = 0x001C;
    pub const ECMQV: u16 = 0x001D;
    pub const ECC: u16 = 0x0023;
    pub const SYMCIPHER: u16 = 0x0025;
}

/// A structure that does not parse.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TpmError {
    #[error("{what}: truncated, needs {need} bytes but {left} are left")]
    Truncated {
        what: &'static str,
        need: usize,
        left: usize,
    },
    #[error("{what}: {left} trailing bytes after the structure")]
    TrailingBytes { what: &'static str, left: usize },
    #[error("TPM2B_PUBLIC: size field says {declared} bytes but {actual} follow")]
    SizeMismatch { declared: usize, actual: usize },
    #[error("{what}: unknown hash algorithm {alg:#06x}")]
    UnknownHash { what: &'static str, alg: u16 },
    #[error("TPMT_SIGNATURE: unknown signature algorithm {0:#06x}")]
    UnknownSignatureAlg(u16),
    #[error("TPMT_PUBLIC: key type {0:#06x} is neither RSA nor ECC")]
    UnsupportedKeyType(u16),
    #[error("TPML_PCR_SELECTION: {0}")]
    BadPcrSelection(String),
    #[error("PCR value {bank}:{index} is missing")]
    MissingPcr { bank: HashAlg, index: u32 },
    #[error("PCR value {bank}:{index} has {len} bytes, the bank's digest has {want}")]
    PcrValueSize {
        bank: HashAlg,
        index: u32,
        len: usize,
        want: usize,
    },
}

// ---------------------------------------------------------------------------------
// Big-endian reader

/// A bounds-checked cursor over borrowed bytes; every read says what it was reading.
struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Self { buf }
    }

    fn left(&self) -> usize {
        self.buf.len()
    }

    fn take(&mut self, need: usize, what: &'static str) -> Result<&'a [u8], TpmError> {
        if need > self.buf.len() {
            return Err(TpmError::Truncated {
                what,
                need,
                left: self.buf.len(),
            });
        }
        let (head, tail) = self.buf.split_at(need);
        self.buf = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self, what: &'static str) -> Result<[u8; N], TpmError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u8(&mut self, what: &'static str) -> Result<u8, TpmError> {
        Ok(self.array::<1>(what)?[0])
    }

    fn u16(&mut self, what: &'static str) -> Result<u16, TpmError> {
        Ok(u16::from_be_bytes(self.array(what)?))
    }

    fn u32(&mut self, what: &'static str) -> Result<u32, TpmError> {
        Ok(u32::from_be_bytes(self.array(what)?))
    }

    fn u64(&mut self, what: &'static str) -> Result<u64, TpmError> {
        Ok(u64::from_be_bytes(self.array(what)?))
    }

    /// A TPM2B: u16 size, then that many bytes.
    fn tpm2b(&mut self, what: &'static str) -> Result<&'a [u8], TpmError> {
        let size = self.u16(what)?;
        self.take(usize::from(size), what)
    }

    fn expect_empty(&self, what: &'static str) -> Result<(), TpmError> {
        match self.buf.len() {
            0 => Ok(()),
            left => Err(TpmError::TrailingBytes { what, left }),
        }
    }
}

/// Appends a TPM2B (u16 size, bytes). Callers keep `bytes` under 64 KiB, as every TPM2B is.
fn put_tpm2b(out: &mut Vec<u8>, bytes: &[u8]) {
    let size = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    out.extend_from_slice(&size.to_be_bytes());
    out.extend_from_slice(&bytes[..usize::from(size)]);
}

fn known_hash(alg: u16, what: &'static str) -> Result<HashAlg, TpmError> {
    HashAlg::from_tpm_alg(alg).ok_or(TpmError::UnknownHash { what, alg })
}

/// A TPM_ALG_ID for findings: the hash name if known, else hex.
pub fn alg_name(id: u16) -> String {
    let name = match id {
        alg::RSA => "rsa",
        alg::HMAC => "hmac",
        alg::KEYEDHASH => "keyedhash",
        alg::NULL => "null",
        alg::RSASSA => "rsassa",
        alg::RSAES => "rsaes",
        alg::RSAPSS => "rsapss",
        alg::OAEP => "oaep",
        alg::ECDSA => "ecdsa",
        alg::ECDH => "ecdh",
        alg::ECDAA => "ecdaa",
        alg::SM2 => "sm2",
        alg::ECSCHNORR => "ecschnorr",
        alg::ECMQV => "ecmqv",
        alg::ECC => "ecc",
        alg::SYMCIPHER => "symcipher",
        other => match HashAlg::from_tpm_alg(other) {
            Some(h) => h.name(),
            None => return format!("{other:#06x}"),
        },
    };
    name.to_string()
}

// ---------------------------------------------------------------------------------
// PCR selection

/// One TPMS_PCR_SELECTION: a PCR bank and the PCRs selected in it.
///
/// Equality compares the bank and the set of PCRs, not the width of the bitmap:
/// `sizeofSelect` 3 and 4 with the same bits set select the same PCRs.
#[derive(Clone, Debug)]
pub struct PcrSelection {
    /// The bank's hash (TPMI_ALG_HASH); kept raw so an unknown bank is data.
    pub hash: u16,
    /// Selected PCR indices, ascending, without duplicates.
    pub pcrs: Vec<u32>,
    /// `sizeofSelect` on the wire, so a parsed selection re-encodes byte for byte.
    pub size_of_select: u8,
}

/// The largest `sizeofSelect` accepted: 32 bytes = 256 PCRs, far above any TPM.
const MAX_SIZE_OF_SELECT: u8 = 32;

impl PcrSelection {
    /// Selects `pcrs` in `bank`, with the usual 3-byte bitmap (PCR 0–23), wider if needed.
    pub fn new(bank: HashAlg, pcrs: &[u32]) -> Self {
        let mut pcrs = pcrs.to_vec();
        pcrs.sort_unstable();
        pcrs.dedup();
        let needed = pcrs.last().map_or(0, |&p| p / 8 + 1);
        let size_of_select = u8::try_from(needed.max(3)).unwrap_or(u8::MAX);
        Self {
            hash: bank.tpm_alg(),
            pcrs,
            size_of_select,
        }
    }

    /// The bank as a known hash algorithm.
    pub fn bank(&self) -> Option<HashAlg> {
        HashAlg::from_tpm_alg(self.hash)
    }

    pub fn contains(&self, pcr: u32) -> bool {
        self.pcrs.binary_search(&pcr).is_ok()
    }

    /// The `pcrSelect` bitmap: PCR i ⇔ bit (i % 8) of byte i / 8.
    pub fn bitmap(&self) -> Vec<u8> {
        let width = usize::from(self.size_of_select);
        let mut map = vec![0u8; width];
        for &pcr in &self.pcrs {
            if let Some(byte) = usize::try_from(pcr / 8).ok().and_then(|i| map.get_mut(i)) {
                *byte |= 1 << (pcr % 8);
            }
        }
        map
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, TpmError> {
        let hash = r.u16("TPMS_PCR_SELECTION.hash")?;
        let size_of_select = r.u8("TPMS_PCR_SELECTION.sizeofSelect")?;
        if size_of_select > MAX_SIZE_OF_SELECT {
            return Err(TpmError::BadPcrSelection(format!(
                "sizeofSelect {size_of_select} is over {MAX_SIZE_OF_SELECT}"
            )));
        }
        let map = r.take(usize::from(size_of_select), "TPMS_PCR_SELECTION.pcrSelect")?;
        let pcrs = (0u32..)
            .zip(
                map.iter()
                    .flat_map(|b| (0..8).map(move |bit| b & (1 << bit) != 0)),
            )
            .filter_map(|(i, set)| set.then_some(i))
            .collect();
        Ok(Self {
            hash,
            pcrs,
            size_of_select,
        })
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.hash.to_be_bytes());
        out.push(self.size_of_select);
        out.extend_from_slice(&self.bitmap());
    }
}

impl PartialEq for PcrSelection {
    fn eq(&self, other: &Self) -> bool {
        self.hash == other.hash && self.pcrs == other.pcrs
    }
}

impl Eq for PcrSelection {}

/// `sha256:0,1,2,3,10`, the tpm2-tools spelling.
impl fmt::Display for PcrSelection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", alg_name(self.hash))?;
        for (i, pcr) in self.pcrs.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{pcr}")?;
        }
        Ok(())
    }
}

/// A list of selections in the tpm2-tools spelling: `sha256:0,1,2+sha1:0`.
pub fn selection_to_string(selection: &[PcrSelection]) -> String {
    let parts: Vec<String> = selection.iter().map(ToString::to_string).collect();
    parts.join("+")
}

/// Parses the tpm2-tools spelling `sha256:0,1,2+sha1:0` (bank names as in [`HashAlg::from_name`]).
pub fn parse_selection(s: &str) -> Option<Vec<PcrSelection>> {
    s.split('+')
        .map(|part| {
            let (bank, list) = part.trim().split_once(':')?;
            let bank = HashAlg::from_name(bank.trim())?;
            let pcrs = list
                .split(',')
                .map(|p| p.trim().parse::<u32>().ok().filter(|&p| p < 256))
                .collect::<Option<Vec<u32>>>()?;
            Some(PcrSelection::new(bank, &pcrs))
        })
        .collect()
}

/// Encodes a TPML_PCR_SELECTION.
pub fn encode_pcr_selection(selection: &[PcrSelection], out: &mut Vec<u8>) {
    let count = u32::try_from(selection.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&count.to_be_bytes());
    selection.iter().for_each(|s| s.write(out));
}

/// Decodes a TPML_PCR_SELECTION that fills `bytes` exactly.
pub fn decode_pcr_selection(bytes: &[u8]) -> Result<Vec<PcrSelection>, TpmError> {
    let mut r = Reader::new(bytes);
    let list = read_pcr_selection(&mut r)?;
    r.expect_empty("TPML_PCR_SELECTION")?;
    Ok(list)
}

fn read_pcr_selection(r: &mut Reader<'_>) -> Result<Vec<PcrSelection>, TpmError> {
    let count = r.u32("TPML_PCR_SELECTION.count")?;
    // Each entry takes at least 3 bytes; check before allocating.
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    if count > r.left() / 3 {
        return Err(TpmError::BadPcrSelection(format!(
            "count {count} does not fit in the {} bytes left",
            r.left()
        )));
    }
    let mut list = Vec::with_capacity(count);
    for _ in 0..count {
        list.push(PcrSelection::read(r)?);
    }
    Ok(list)
}

/// PCR values by bank and index: what a TPM read or an event-log replay gives.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PcrValues {
    values: BTreeMap<(HashAlg, u32), Vec<u8>>,
}

impl PcrValues {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&mut self, bank: HashAlg, index: u32, value: Vec<u8>) {
        self.values.insert((bank, index), value);
    }

    pub fn get(&self, bank: HashAlg, index: u32) -> Option<&[u8]> {
        self.values.get(&(bank, index)).map(Vec::as_slice)
    }

    pub fn iter(&self) -> impl Iterator<Item = (HashAlg, u32, &[u8])> {
        self.values.iter().map(|(&(b, i), v)| (b, i, v.as_slice()))
    }

    /// Reads PCR values written as text, in either of two forms:
    /// `tpm2_pcrread`'s output (`sha256:` then `  0 : 0x…` lines) or one
    /// `bank index hex` per line (the `.pcrs` files beside the shared test logs).
    /// Errors name the line and what is wrong with it.
    pub fn parse_text(text: &str) -> Result<Self, String> {
        let mut values = PcrValues::new();
        let mut bank = None;
        for (n, raw) in text.lines().enumerate() {
            let line = raw.trim();
            let bad = |why: &str| format!("line {}: {why}: {raw:?}", n + 1);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if let Some(name) = line.strip_suffix(':') {
                bank = Some(HashAlg::from_name(name.trim()).ok_or_else(|| bad("unknown bank"))?);
                continue;
            }
            let (b, index, value) = match line.split_once(':') {
                Some((index, value)) => (
                    bank.ok_or_else(|| bad("PCR line before a bank line"))?,
                    index,
                    value,
                ),
                None => {
                    let mut w = line.split_whitespace();
                    let (Some(b), Some(index), Some(value), None) =
                        (w.next(), w.next(), w.next(), w.next())
                    else {
                        return Err(bad("expected `bank index hex`"));
                    };
                    (
                        HashAlg::from_name(b).ok_or_else(|| bad("unknown bank"))?,
                        index,
                        value,
                    )
                }
            };
            let index: u32 = index
                .trim()
                .parse()
                .map_err(|_| bad("PCR index is not a number"))?;
            let value = value.trim();
            let value = crate::digest::from_hex(value.strip_prefix("0x").unwrap_or(value))
                .ok_or_else(|| bad("value is not hex"))?;
            if value.len() != b.size() {
                return Err(bad("value has the wrong length for its bank"));
            }
            values.insert(b, index, value);
        }
        Ok(values)
    }
}

/// A quote's pcrDigest: `hash` (the signing scheme's hash) over the selected PCR
/// values, selections in list order and PCR indices ascending within each.
pub fn pcr_digest(
    hash: HashAlg,
    selection: &[PcrSelection],
    values: &PcrValues,
) -> Result<Vec<u8>, TpmError> {
    let mut parts: Vec<&[u8]> = Vec::new();
    for sel in selection {
        let bank = known_hash(sel.hash, "TPMS_PCR_SELECTION.hash")?;
        for &index in &sel.pcrs {
            let value = values
                .get(bank, index)
                .ok_or(TpmError::MissingPcr { bank, index })?;
            if value.len() != bank.size() {
                return Err(TpmError::PcrValueSize {
                    bank,
                    index,
                    len: value.len(),
                    want: bank.size(),
                });
            }
            parts.push(value);
        }
    }
    Ok(hash.digest_parts(&parts))
}

// ---------------------------------------------------------------------------------
// TPMS_ATTEST

/// TPMS_CLOCK_INFO.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClockInfo {
    /// Milliseconds the TPM has been powered since its last TPM2_Clear.
    pub clock: u64,
    /// TPM resets since TPM2_Clear (obfuscated for keys outside the endorsement hierarchy).
    pub reset_count: u32,
    /// TPM2_Shutdown(STATE)/TPM2_Startup(STATE) cycles since the last reset.
    pub restart_count: u32,
    /// Whether `clock` is known not to have gone backwards (TPMI_YES_NO).
    pub safe: bool,
}

/// TPMS_QUOTE_INFO.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuoteInfo {
    pub pcr_select: Vec<PcrSelection>,
    pub pcr_digest: Vec<u8>,
}

/// TPMU_ATTEST, selected by TPMS_ATTEST.type.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Attested {
    Quote(QuoteInfo),
    /// Another attestation type (certify, time, ...), kept as bytes: a verifier of
    /// quotes rejects it by type, not by failing to parse.
    Other(Vec<u8>),
}

/// TPMS_ATTEST: what a TPM signs in TPM2_Quote (and the other attestation commands).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Attest {
    /// TPM_GENERATED_VALUE if the TPM made these bytes.
    pub magic: u32,
    /// TPMI_ST_ATTEST; 0x8018 for a quote.
    pub attest_type: u16,
    /// Qualified Name of the signing key (not its Name).
    pub qualified_signer: Vec<u8>,
    /// The caller's qualifyingData: the verifier's nonce.
    pub extra_data: Vec<u8>,
    pub clock_info: ClockInfo,
    pub firmware_version: u64,
    pub attested: Attested,
}

impl Attest {
    /// Parses a TPMS_ATTEST that fills `bytes` (no TPM2B size prefix, as `tpm2_quote -m` writes).
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let magic = r.u32("TPMS_ATTEST.magic")?;
        let attest_type = r.u16("TPMS_ATTEST.type")?;
        let qualified_signer = r.tpm2b("TPMS_ATTEST.qualifiedSigner")?.to_vec();
        let extra_data = r.tpm2b("TPMS_ATTEST.extraData")?.to_vec();
        let clock_info = ClockInfo {
            clock: r.u64("TPMS_CLOCK_INFO.clock")?,
            reset_count: r.u32("TPMS_CLOCK_INFO.resetCount")?,
            restart_count: r.u32("TPMS_CLOCK_INFO.restartCount")?,
            safe: r.u8("TPMS_CLOCK_INFO.safe")? != 0,
        };
        let firmware_version = r.u64("TPMS_ATTEST.firmwareVersion")?;
        let attested = if attest_type == TPM_ST_ATTEST_QUOTE {
            let pcr_select = read_pcr_selection(&mut r)?;
            let pcr_digest = r.tpm2b("TPMS_QUOTE_INFO.pcrDigest")?.to_vec();
            r.expect_empty("TPMS_ATTEST")?;
            Attested::Quote(QuoteInfo {
                pcr_select,
                pcr_digest,
            })
        } else {
            let rest = r.take(r.left(), "TPMS_ATTEST.attested")?;
            Attested::Other(rest.to_vec())
        };
        Ok(Self {
            magic,
            attest_type,
            qualified_signer,
            extra_data,
            clock_info,
            firmware_version,
            attested,
        })
    }

    pub fn quote_info(&self) -> Option<&QuoteInfo> {
        match &self.attested {
            Attested::Quote(q) => Some(q),
            Attested::Other(_) => None,
        }
    }

    /// Marshals the TPMS_ATTEST (for tests and for software-made quotes).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&self.magic.to_be_bytes());
        out.extend_from_slice(&self.attest_type.to_be_bytes());
        put_tpm2b(&mut out, &self.qualified_signer);
        put_tpm2b(&mut out, &self.extra_data);
        out.extend_from_slice(&self.clock_info.clock.to_be_bytes());
        out.extend_from_slice(&self.clock_info.reset_count.to_be_bytes());
        out.extend_from_slice(&self.clock_info.restart_count.to_be_bytes());
        out.push(u8::from(self.clock_info.safe));
        out.extend_from_slice(&self.firmware_version.to_be_bytes());
        match &self.attested {
            Attested::Quote(q) => {
                encode_pcr_selection(&q.pcr_select, &mut out);
                put_tpm2b(&mut out, &q.pcr_digest);
            }
            Attested::Other(bytes) => out.extend_from_slice(bytes),
        }
        out
    }
}

// ---------------------------------------------------------------------------------
// TPMT_SIGNATURE

/// TPMS_SIGNATURE_RSA.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaSignature {
    /// The hash the TPM applied to the signed bytes (TPMI_ALG_HASH, raw).
    pub hash: u16,
    pub sig: Vec<u8>,
}

/// TPMS_SIGNATURE_ECC: r and s, unsigned big-endian, possibly shorter than the field.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EccSignature {
    pub hash: u16,
    pub r: Vec<u8>,
    pub s: Vec<u8>,
}

/// TPMT_SIGNATURE.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Signature {
    RsaSsa(RsaSignature),
    RsaPss(RsaSignature),
    Ecdsa(EccSignature),
    Sm2(EccSignature),
    EcDaa(EccSignature),
    EcSchnorr(EccSignature),
    Hmac { hash: HashAlg, digest: Vec<u8> },
    Null,
}

impl Signature {
    /// Parses a TPMT_SIGNATURE that fills `bytes` (as `tpm2_quote -s` writes).
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let sig_alg = r.u16("TPMT_SIGNATURE.sigAlg")?;
        let rsa = |r: &mut Reader<'_>| -> Result<RsaSignature, TpmError> {
            Ok(RsaSignature {
                hash: r.u16("TPMS_SIGNATURE_RSA.hash")?,
                sig: r.tpm2b("TPMS_SIGNATURE_RSA.sig")?.to_vec(),
            })
        };
        let ecc = |r: &mut Reader<'_>| -> Result<EccSignature, TpmError> {
            Ok(EccSignature {
                hash: r.u16("TPMS_SIGNATURE_ECC.hash")?,
                r: r.tpm2b("TPMS_SIGNATURE_ECC.signatureR")?.to_vec(),
                s: r.tpm2b("TPMS_SIGNATURE_ECC.signatureS")?.to_vec(),
            })
        };
        let sig = match sig_alg {
            alg::RSASSA => Self::RsaSsa(rsa(&mut r)?),
            alg::RSAPSS => Self::RsaPss(rsa(&mut r)?),
            alg::ECDSA => Self::Ecdsa(ecc(&mut r)?),
            alg::SM2 => Self::Sm2(ecc(&mut r)?),
            alg::ECDAA => Self::EcDaa(ecc(&mut r)?),
            alg::ECSCHNORR => Self::EcSchnorr(ecc(&mut r)?),
            alg::HMAC => {
                let hash = known_hash(r.u16("TPMT_HA.hashAlg")?, "TPMT_HA.hashAlg")?;
                let digest = r.take(hash.size(), "TPMT_HA.digest")?.to_vec();
                Self::Hmac { hash, digest }
            }
            alg::NULL => Self::Null,
            other => return Err(TpmError::UnknownSignatureAlg(other)),
        };
        r.expect_empty("TPMT_SIGNATURE")?;
        Ok(sig)
    }

    /// TPMI_ALG_SIG_SCHEME of this signature.
    pub fn sig_alg(&self) -> u16 {
        match self {
            Self::RsaSsa(_) => alg::RSASSA,
            Self::RsaPss(_) => alg::RSAPSS,
            Self::Ecdsa(_) => alg::ECDSA,
            Self::Sm2(_) => alg::SM2,
            Self::EcDaa(_) => alg::ECDAA,
            Self::EcSchnorr(_) => alg::ECSCHNORR,
            Self::Hmac { .. } => alg::HMAC,
            Self::Null => alg::NULL,
        }
    }

    /// The hash the signature was made over, raw; `None` for NULL.
    pub fn hash(&self) -> Option<u16> {
        match self {
            Self::RsaSsa(s) | Self::RsaPss(s) => Some(s.hash),
            Self::Ecdsa(s) | Self::Sm2(s) | Self::EcDaa(s) | Self::EcSchnorr(s) => Some(s.hash),
            Self::Hmac { hash, .. } => Some(hash.tpm_alg()),
            Self::Null => None,
        }
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.sig_alg().to_be_bytes().to_vec();
        match self {
            Self::RsaSsa(s) | Self::RsaPss(s) => {
                out.extend_from_slice(&s.hash.to_be_bytes());
                put_tpm2b(&mut out, &s.sig);
            }
            Self::Ecdsa(s) | Self::Sm2(s) | Self::EcDaa(s) | Self::EcSchnorr(s) => {
                out.extend_from_slice(&s.hash.to_be_bytes());
                put_tpm2b(&mut out, &s.r);
                put_tpm2b(&mut out, &s.s);
            }
            Self::Hmac { hash, digest } => {
                out.extend_from_slice(&hash.tpm_alg().to_be_bytes());
                out.extend_from_slice(digest);
            }
            Self::Null => {}
        }
        out
    }
}

// ---------------------------------------------------------------------------------
// TPMT_PUBLIC

/// TPMA_OBJECT.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ObjectAttributes(pub u32);

impl ObjectAttributes {
    pub const FIXED_TPM: u32 = 0x0000_0002;
    pub const ST_CLEAR: u32 = 0x0000_0004;
    pub const FIXED_PARENT: u32 = 0x0000_0010;
    pub const SENSITIVE_DATA_ORIGIN: u32 = 0x0000_0020;
    pub const USER_WITH_AUTH: u32 = 0x0000_0040;
    pub const ADMIN_WITH_POLICY: u32 = 0x0000_0080;
    pub const NO_DA: u32 = 0x0000_0400;
    pub const ENCRYPTED_DUPLICATION: u32 = 0x0000_0800;
    pub const RESTRICTED: u32 = 0x0001_0000;
    pub const DECRYPT: u32 = 0x0002_0000;
    pub const SIGN_ENCRYPT: u32 = 0x0004_0000;
    pub const X509_SIGN: u32 = 0x0008_0000;

    fn has(self, bit: u32) -> bool {
        self.0 & bit != 0
    }
    pub fn fixed_tpm(self) -> bool {
        self.has(Self::FIXED_TPM)
    }
    pub fn fixed_parent(self) -> bool {
        self.has(Self::FIXED_PARENT)
    }
    pub fn sensitive_data_origin(self) -> bool {
        self.has(Self::SENSITIVE_DATA_ORIGIN)
    }
    pub fn user_with_auth(self) -> bool {
        self.has(Self::USER_WITH_AUTH)
    }
    pub fn admin_with_policy(self) -> bool {
        self.has(Self::ADMIN_WITH_POLICY)
    }
    pub fn restricted(self) -> bool {
        self.has(Self::RESTRICTED)
    }
    pub fn decrypt(self) -> bool {
        self.has(Self::DECRYPT)
    }
    pub fn sign(self) -> bool {
        self.has(Self::SIGN_ENCRYPT)
    }
}

/// TPMT_SYM_DEF_OBJECT when not NULL.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SymDef {
    pub algorithm: u16,
    pub key_bits: u16,
    pub mode: u16,
}

/// TPMT_RSA_SCHEME / TPMT_ECC_SCHEME / TPMT_KDF_SCHEME: a scheme and its details.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Scheme {
    /// The scheme's TPM_ALG_ID; `alg::NULL` if the key leaves it to each command.
    pub scheme: u16,
    /// The scheme's hash, if it has one.
    pub hash: Option<u16>,
    /// ECDAA's commit count.
    pub count: Option<u16>,
}

impl Scheme {
    pub const NULL: Scheme = Scheme {
        scheme: alg::NULL,
        hash: None,
        count: None,
    };
}

pub use pki::alg::EccCurve;

/// TPMS_RSA_PARMS and the modulus.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RsaPublic {
    pub scheme: Scheme,
    pub key_bits: u16,
    /// As on the wire: 0 means 65537.
    pub exponent: u32,
    pub modulus: Vec<u8>,
}

impl RsaPublic {
    /// The public exponent, with the wire's 0 read as 65537.
    pub fn effective_exponent(&self) -> u32 {
        if self.exponent == 0 {
            65537
        } else {
            self.exponent
        }
    }
}

/// TPMS_ECC_PARMS and the public point.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EccPublic {
    pub scheme: Scheme,
    pub curve: EccCurve,
    pub kdf: Scheme,
    pub x: Vec<u8>,
    pub y: Vec<u8>,
}

/// The type-specific part of a TPMT_PUBLIC.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PublicKey {
    Rsa(RsaPublic),
    Ecc(EccPublic),
}

/// TPMT_PUBLIC of an RSA or ECC key, with the bytes it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Public {
    pub name_alg: HashAlg,
    pub object_attributes: ObjectAttributes,
    pub auth_policy: Vec<u8>,
    /// `None` when TPM_ALG_NULL (signing keys have no symmetric algorithm).
    pub symmetric: Option<SymDef>,
    pub key: PublicKey,
    /// The marshalled TPMT_PUBLIC: the Name is a hash of exactly these bytes, so a
    /// re-encoding can never make it drift.
    marshalled: Vec<u8>,
}

impl Public {
    /// Parses a TPMT_PUBLIC that fills `bytes`.
    pub fn parse(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let key_type = r.u16("TPMT_PUBLIC.type")?;
        if key_type != alg::RSA && key_type != alg::ECC {
            return Err(TpmError::UnsupportedKeyType(key_type));
        }
        let name_alg = known_hash(r.u16("TPMT_PUBLIC.nameAlg")?, "TPMT_PUBLIC.nameAlg")?;
        let object_attributes = ObjectAttributes(r.u32("TPMT_PUBLIC.objectAttributes")?);
        let auth_policy = r.tpm2b("TPMT_PUBLIC.authPolicy")?.to_vec();
        let sym_alg = r.u16("TPMT_SYM_DEF_OBJECT.algorithm")?;
        let symmetric = if sym_alg == alg::NULL {
            None
        } else {
            Some(SymDef {
                algorithm: sym_alg,
                key_bits: r.u16("TPMT_SYM_DEF_OBJECT.keyBits")?,
                mode: r.u16("TPMT_SYM_DEF_OBJECT.mode")?,
            })
        };
        let key = if key_type == alg::RSA {
            let scheme = read_scheme(&mut r, "TPMT_RSA_SCHEME")?;
            let key_bits = r.u16("TPMS_RSA_PARMS.keyBits")?;
            let exponent = r.u32("TPMS_RSA_PARMS.exponent")?;
            let modulus = r.tpm2b("TPM2B_PUBLIC_KEY_RSA")?.to_vec();
            PublicKey::Rsa(RsaPublic {
                scheme,
                key_bits,
                exponent,
                modulus,
            })
        } else {
            let scheme = read_scheme(&mut r, "TPMT_ECC_SCHEME")?;
            let curve = EccCurve::from_tpm_curve(r.u16("TPMS_ECC_PARMS.curveID")?);
            let kdf = read_scheme(&mut r, "TPMT_KDF_SCHEME")?;
            let x = r.tpm2b("TPMS_ECC_POINT.x")?.to_vec();
            let y = r.tpm2b("TPMS_ECC_POINT.y")?.to_vec();
            PublicKey::Ecc(EccPublic {
                scheme,
                curve,
                kdf,
                x,
                y,
            })
        };
        r.expect_empty("TPMT_PUBLIC")?;
        Ok(Self {
            name_alg,
            object_attributes,
            auth_policy,
            symmetric,
            key,
            marshalled: bytes.to_vec(),
        })
    }

    /// Parses a TPM2B_PUBLIC (u16 size, then TPMT_PUBLIC), as tpm2-tools `-u` files hold it.
    pub fn from_tpm2b(bytes: &[u8]) -> Result<Self, TpmError> {
        let mut r = Reader::new(bytes);
        let declared = usize::from(r.u16("TPM2B_PUBLIC.size")?);
        if declared != r.left() {
            return Err(TpmError::SizeMismatch {
                declared,
                actual: r.left(),
            });
        }
        Self::parse(r.take(declared, "TPM2B_PUBLIC.publicArea")?)
    }

    /// TPM2B_PUBLIC: the public area with its u16 size, as tpm2-tools files
    /// hold it ([`Public::from_tpm2b`] reads it back).
    pub fn tpm2b(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(2 + self.marshalled.len());
        // A TPMT_PUBLIC that parsed came from a TPM2B or fits one (it is
        // bounded by the TPM's own buffers, far below 64 KiB).
        out.extend_from_slice(
            &(self.marshalled.len().min(usize::from(u16::MAX)) as u16).to_be_bytes(),
        );
        out.extend_from_slice(&self.marshalled);
        out
    }

    /// The TPMT_PUBLIC bytes this was parsed from.
    pub fn marshalled(&self) -> &[u8] {
        &self.marshalled
    }

    /// TPM_ALG_RSA or TPM_ALG_ECC.
    pub fn key_type(&self) -> u16 {
        match self.key {
            PublicKey::Rsa(_) => alg::RSA,
            PublicKey::Ecc(_) => alg::ECC,
        }
    }

    /// The key's signing scheme (NULL if each command chooses).
    pub fn scheme(&self) -> Scheme {
        match &self.key {
            PublicKey::Rsa(k) => k.scheme,
            PublicKey::Ecc(k) => k.scheme,
        }
    }

    /// Name = nameAlg (u16, big-endian) || H_nameAlg(marshalled TPMT_PUBLIC), over the
    /// bytes parsed (editing the public fields afterwards does not change it).
    pub fn name(&self) -> Vec<u8> {
        let mut name = self.name_alg.tpm_alg().to_be_bytes().to_vec();
        name.extend_from_slice(&self.name_alg.digest(&self.marshalled));
        name
    }
}

fn read_scheme(r: &mut Reader<'_>, what: &'static str) -> Result<Scheme, TpmError> {
    let scheme = r.u16(what)?;
    Ok(match scheme {
        alg::NULL | alg::RSAES => Scheme {
            scheme,
            hash: None,
            count: None,
        },
        alg::ECDAA => Scheme {
            scheme,
            hash: Some(r.u16(what)?),
            count: Some(r.u16(what)?),
        },
        // Every other scheme (RSASSA, RSAPSS, OAEP, ECDSA, ECDH, SM2, ECSCHNORR, ECMQV,
        // the KDFs) carries exactly one hash.
        _ => Scheme {
            scheme,
            hash: Some(r.u16(what)?),
            count: None,
        },
    })
}

/// Qualified Name of an object: nameAlg || H_nameAlg(QN(parent) || Name), where the
/// object's nameAlg is the first two bytes of `name`. A hierarchy's qualified Name is
/// its handle ([`hierarchy_qualified_name`]).
pub fn qualified_name(parent_qn: &[u8], name: &[u8]) -> Result<Vec<u8>, TpmError> {
    let id = name
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]))
        .ok_or(TpmError::Truncated {
            what: "TPM2B_NAME.nameAlg",
            need: 2,
            left: name.len(),
        })?;
    let hash = known_hash(id, "TPM2B_NAME.nameAlg")?;
    let mut qn = id.to_be_bytes().to_vec();
    qn.extend_from_slice(&hash.digest_parts(&[parent_qn, name]));
    Ok(qn)
}

/// The Name and qualified Name of a hierarchy: its 4-byte handle.
pub fn hierarchy_qualified_name(handle: u32) -> Vec<u8> {
    handle.to_be_bytes().to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pcr_text_in_both_forms() {
        let z = "00".repeat(32);
        let pcrread = format!(
            "  sha256:\n    0 : 0x{}\n    10: 0x{}\n",
            z.to_uppercase(),
            "11".repeat(32)
        );
        let v = PcrValues::parse_text(&pcrread).unwrap();
        assert_eq!(v.get(HashAlg::Sha256, 10), Some(&[0x11; 32][..]));
        let lines = format!("sha1 7 {}\nsha256 0 {z}\n", "ab".repeat(20));
        let v = PcrValues::parse_text(&lines).unwrap();
        assert_eq!(v.get(HashAlg::Sha1, 7), Some(&[0xab; 20][..]));
        assert!(PcrValues::parse_text("sha256 0 abcd")
            .unwrap_err()
            .contains("wrong length"));
        assert!(PcrValues::parse_text("  0 : 0x00")
            .unwrap_err()
            .contains("before a bank"));
        assert!(PcrValues::parse_text("md5:\n")
            .unwrap_err()
            .contains("unknown bank"));
    }
    use crate::digest::{from_hex, hex};

    /// The ECDSA P-256 AK tpm2-tools made on swtpm 0.7.1 (`tpm2_createak -G ecc -g sha256
    /// -s ecdsa -u ak.pub -n ak.name`), with the Name tpm2-tools wrote.
    const AK_PUB: &str = "00580023000b00050072000000100018000b000300100020c1330aba45a30c928551cc3d513b1bd3b6223c1e77de290bf5aea34914cc9779002081c9faf4432039e60fcfb05379cc3d53d3cf98c37af643811cac9f2fe0291a84";
    const AK_NAME: &str = "000bb4df448a928f88987a2cb33242fdc8861b01d921dd7c1e0db24e4adb0c48e914";
    /// The quote that AK made with nonce 0011223344556677 over sha256:0,1,2,3,10.
    const QUOTE_MSG: &str = "ff54434780180022000bb42e0f43c698f1d15298a6ddc6fef281545ad88f52ede3688eb6a29912c4ad96000800112233445566770000000000000270000000010000000001201910230016363600000001000b030f040000204bc5c1d8df80b4d413df287f0732e0e39e3cb1311898f641c653d2275b436969";
    const QUOTE_SIG: &str = "0018000b0020e3f0e7258154e5529b5e4940584fe4025f5937d5a4fd6be08e0e0b70c94e879f00204cd217640ff511032faf3e611411d4b1fb11b2939ae7e842e8c06216b6e3ff78";

    fn unhex(s: &str) -> Vec<u8> {
        let s: String = s.chars().filter(|c| !c.is_whitespace()).collect();
        from_hex(&s).expect("test vector hex")
    }

    #[test]
    fn parses_tpm2_tools_ak_and_computes_its_name() {
        let ak = Public::from_tpm2b(&unhex(AK_PUB)).unwrap();
        assert_eq!(ak.name_alg, HashAlg::Sha256);
        assert_eq!(ak.object_attributes, ObjectAttributes(0x0005_0072));
        let attrs = ak.object_attributes;
        assert!(attrs.fixed_tpm() && attrs.fixed_parent() && attrs.sensitive_data_origin());
        assert!(attrs.restricted() && attrs.sign() && attrs.user_with_auth());
        assert!(!attrs.decrypt() && !attrs.admin_with_policy());
        assert!(ak.auth_policy.is_empty());
        assert_eq!(ak.symmetric, None);
        let PublicKey::Ecc(ecc) = &ak.key else {
            panic!("not ECC")
        };
        assert_eq!(ecc.curve, EccCurve::NistP256);
        assert_eq!(
            ecc.scheme,
            Scheme {
                scheme: alg::ECDSA,
                hash: Some(0x000B),
                count: None
            }
        );
        assert_eq!(ecc.kdf, Scheme::NULL);
        assert_eq!((ecc.x.len(), ecc.y.len()), (32, 32));
        assert_eq!(hex(&ak.name()), AK_NAME);
        assert_eq!(ak.marshalled(), &unhex(AK_PUB)[2..]);
    }

    #[test]
    fn tpm2b_public_size_must_match() {
        let mut bytes = unhex(AK_PUB);
        bytes.push(0);
        assert_eq!(
            Public::from_tpm2b(&bytes),
            Err(TpmError::SizeMismatch {
                declared: 0x58,
                actual: 0x59
            })
        );
        // Without the prefix the TPMT_PUBLIC parses; with a stray byte it does not.
        assert!(Public::parse(&bytes[2..bytes.len() - 1]).is_ok());
        assert_eq!(
            Public::parse(&bytes[2..]),
            Err(TpmError::TrailingBytes {
                what: "TPMT_PUBLIC",
                left: 1
            })
        );
    }

    #[test]
    fn parses_tpm2_tools_quote() {
        let attest = Attest::parse(&unhex(QUOTE_MSG)).unwrap();
        assert_eq!(attest.magic, TPM_GENERATED_VALUE);
        assert_eq!(attest.attest_type, TPM_ST_ATTEST_QUOTE);
        assert_eq!(attest.qualified_signer.len(), 34);
        assert_eq!(attest.extra_data, unhex("0011223344556677"));
        assert_eq!(attest.clock_info.clock, 0x270);
        assert_eq!(attest.clock_info.reset_count, 1);
        assert_eq!(attest.clock_info.restart_count, 0);
        assert!(attest.clock_info.safe);
        assert_eq!(attest.firmware_version, 0x2019_1023_0016_3636);
        let q = attest.quote_info().unwrap();
        assert_eq!(selection_to_string(&q.pcr_select), "sha256:0,1,2,3,10");
        assert_eq!(q.pcr_select[0].size_of_select, 3);
        assert_eq!(q.pcr_digest.len(), 32);
        assert_eq!(attest.encode(), unhex(QUOTE_MSG));

        let sig = Signature::parse(&unhex(QUOTE_SIG)).unwrap();
        let Signature::Ecdsa(ecc) = &sig else {
            panic!("not ECDSA")
        };
        assert_eq!(ecc.hash, 0x000B);
        assert_eq!((ecc.r.len(), ecc.s.len()), (32, 32));
        assert_eq!(sig.encode(), unhex(QUOTE_SIG));
    }

    #[test]
    fn pcr_digest_matches_the_tpm() {
        // PCR 0-3 zero, PCR 10 = extend(0, 00..07) as tpm2_pcrread showed.
        let mut values = PcrValues::new();
        for i in 0..4 {
            values.insert(HashAlg::Sha256, i, vec![0; 32]);
        }
        let mut pcr10 = vec![0u8; 32];
        let mut seven = [0u8; 32];
        seven[31] = 7;
        HashAlg::Sha256.extend(&mut pcr10, &seven);
        values.insert(HashAlg::Sha256, 10, pcr10);
        let sel = parse_selection("sha256:0,1,2,3,10").unwrap();
        let attest = Attest::parse(&unhex(QUOTE_MSG)).unwrap();
        let q = attest.quote_info().unwrap();
        assert_eq!(sel, q.pcr_select);
        assert_eq!(
            pcr_digest(HashAlg::Sha256, &sel, &values).unwrap(),
            q.pcr_digest
        );
        // A missing or short value is an error, not a different digest.
        let sel11 = parse_selection("sha256:11").unwrap();
        assert_eq!(
            pcr_digest(HashAlg::Sha256, &sel11, &values),
            Err(TpmError::MissingPcr {
                bank: HashAlg::Sha256,
                index: 11
            })
        );
        values.insert(HashAlg::Sha256, 11, vec![0; 20]);
        assert!(matches!(
            pcr_digest(HashAlg::Sha256, &sel11, &values),
            Err(TpmError::PcrValueSize { len: 20, .. })
        ));
    }

    #[test]
    fn pcr_selection_round_trip_and_order() {
        let sel = vec![
            PcrSelection::new(HashAlg::Sha256, &[10, 3, 0, 3]),
            PcrSelection::new(HashAlg::Sha1, &[23, 24]),
        ];
        assert_eq!(sel[0].pcrs, vec![0, 3, 10]);
        assert_eq!(sel[0].bitmap(), vec![0x09, 0x04, 0x00]);
        assert_eq!(sel[1].size_of_select, 4);
        let mut bytes = Vec::new();
        encode_pcr_selection(&sel, &mut bytes);
        assert_eq!(bytes, unhex("00000002 000b 03 090400 0004 04 00008001"));
        let back = decode_pcr_selection(&bytes).unwrap();
        assert_eq!(back, sel);
        assert_eq!(selection_to_string(&back), "sha256:0,3,10+sha1:23,24");
        // Same PCRs with a wider bitmap compare equal.
        let wide = decode_pcr_selection(&unhex("00000001 000b 04 09040000")).unwrap();
        assert_eq!(wide[0], sel[0]);
        assert_eq!(parse_selection("sha256:x"), None);
        assert_eq!(parse_selection("md5:1"), None);
    }

    #[test]
    fn qualified_name_matches_tpm2_tools() {
        // From the same swtpm run: `tpm2_createek -G ecc -u ek.pub` and
        // `tpm2_createak ... -q ak.qname`; the quote's qualifiedSigner is the same value.
        let ek = Public::from_tpm2b(&unhex(EK_PUB)).unwrap();
        let ek_qn =
            qualified_name(&hierarchy_qualified_name(TPM_RH_ENDORSEMENT), &ek.name()).unwrap();
        let ak = Public::from_tpm2b(&unhex(AK_PUB)).unwrap();
        let ak_qn = qualified_name(&ek_qn, &ak.name()).unwrap();
        let attest = Attest::parse(&unhex(QUOTE_MSG)).unwrap();
        assert_eq!(ak_qn, attest.qualified_signer);
        assert!(qualified_name(&ek_qn, &[0x00]).is_err());
        assert!(qualified_name(&ek_qn, &[0x00, 0x99, 1]).is_err());
    }

    const EK_PUB: &str = "007a0023000b000300b20020837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa0006008000430010000300100020bb0c67461cf2d79e5b575e02b5a1ded0395d57347dd67d9bcab9e0b64f452e68002087891e290829ef41dd8d9d2d2e41ac18624a1eff21974d1991c49a90e3fc7eb3";

    #[test]
    fn truncation_is_an_error_at_every_length() {
        type Parses = fn(&[u8]) -> bool;
        let sets: [(&str, Parses); 3] = [
            (QUOTE_MSG, |b| Attest::parse(b).is_ok()),
            (QUOTE_SIG, |b| Signature::parse(b).is_ok()),
            (AK_PUB, |b| Public::from_tpm2b(b).is_ok()),
        ];
        for (vector, parses) in sets {
            let bytes = unhex(vector);
            assert!(parses(&bytes));
            for len in 0..bytes.len() {
                assert!(!parses(&bytes[..len]), "prefix of {len} bytes parsed");
            }
        }
    }

    #[test]
    fn other_attestation_types_are_data() {
        let mut bytes = unhex(QUOTE_MSG);
        bytes[5] = 0x17; // TPM_ST_ATTEST_CERTIFY
        let attest = Attest::parse(&bytes).unwrap();
        assert_eq!(attest.attest_type, 0x8017);
        assert!(attest.quote_info().is_none());
        assert_eq!(attest.encode(), bytes);
    }

    #[test]
    fn signature_variants_round_trip() {
        let sigs = [
            Signature::RsaPss(RsaSignature {
                hash: 0x000B,
                sig: vec![1; 256],
            }),
            Signature::Sm2(EccSignature {
                hash: 0x000B,
                r: vec![2; 31],
                s: vec![3; 32],
            }),
            Signature::Hmac {
                hash: HashAlg::Sha1,
                digest: vec![4; 20],
            },
            Signature::Null,
        ];
        for sig in sigs {
            assert_eq!(Signature::parse(&sig.encode()), Ok(sig));
        }
        assert_eq!(
            Signature::parse(&[0x00, 0x42]),
            Err(TpmError::UnknownSignatureAlg(0x42))
        );
    }

    proptest::proptest! {
        #[test]
        fn parsers_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..300)) {
            let _ = Attest::parse(&bytes);
            let _ = Signature::parse(&bytes);
            let _ = Public::from_tpm2b(&bytes);
            let _ = Public::parse(&bytes);
            let _ = decode_pcr_selection(&bytes);
        }

        #[test]
        fn selection_round_trips(banks in proptest::collection::vec(
            (proptest::sample::select(HashAlg::ALL.to_vec()),
             proptest::collection::vec(0u32..64, 0..10)), 0..4)) {
            let sel: Vec<PcrSelection> =
                banks.iter().map(|(b, p)| PcrSelection::new(*b, p)).collect();
            let mut bytes = Vec::new();
            encode_pcr_selection(&sel, &mut bytes);
            let back = decode_pcr_selection(&bytes).unwrap();
            proptest::prop_assert_eq!(&back, &sel);
            let mut again = Vec::new();
            encode_pcr_selection(&back, &mut again);
            proptest::prop_assert_eq!(again, bytes);
        }
    }
}
