//! The TCG PC Client firmware event log (`binary_bios_measurements`) and its replay.
//!
//! Layouts follow the TCG PC Client Platform Firmware Profile (PFP) §10 as
//! implemented by tpm2-tools (`lib/tpm2_eventlog.c`, `lib/efi_event.h`) and
//! go-attestation (`attest/eventlog.go`): a legacy SHA-1 log is a sequence of
//! `TCG_PCR_EVENT`; a crypto-agile log starts with one such record carrying the
//! "Spec ID Event03" header and continues with `TCG_PCR_EVENT2` records whose digest
//! sizes come from the header's algorithm table. Everything is little-endian.
//!
//! Parsing checks every length against the bytes left before it allocates, so a
//! hostile log costs at most its own size in memory and never panics.

use std::collections::BTreeMap;
use std::fmt;

use crate::digest::HashAlg;

// Event types used by parsing and replay (PFP §10.4.1; values in `efi_event.h`).
pub const EV_POST_CODE: u32 = 0x0000_0001;
pub const EV_NO_ACTION: u32 = 0x0000_0003;
pub const EV_SEPARATOR: u32 = 0x0000_0004;
pub const EV_ACTION: u32 = 0x0000_0005;
pub const EV_S_CRTM_CONTENTS: u32 = 0x0000_0007;
pub const EV_S_CRTM_VERSION: u32 = 0x0000_0008;
pub const EV_IPL: u32 = 0x0000_000D;
pub const EV_EFI_VARIABLE_DRIVER_CONFIG: u32 = 0x8000_0001;
pub const EV_EFI_VARIABLE_BOOT: u32 = 0x8000_0002;
pub const EV_EFI_BOOT_SERVICES_APPLICATION: u32 = 0x8000_0003;
pub const EV_EFI_BOOT_SERVICES_DRIVER: u32 = 0x8000_0004;
pub const EV_EFI_RUNTIME_SERVICES_DRIVER: u32 = 0x8000_0005;
pub const EV_EFI_ACTION: u32 = 0x8000_0007;
pub const EV_EFI_PLATFORM_FIRMWARE_BLOB: u32 = 0x8000_0008;
pub const EV_EFI_PLATFORM_FIRMWARE_BLOB2: u32 = 0x8000_000A;
pub const EV_EFI_VARIABLE_BOOT2: u32 = 0x8000_000C;
pub const EV_EFI_HCRTM_EVENT: u32 = 0x8000_0010;
pub const EV_EFI_VARIABLE_AUTHORITY: u32 = 0x8000_00E0;

/// Every event type of PFP §10.4.1 with its name.
const EVENT_TYPE_NAMES: &[(u32, &str)] = &[
    (0x0000_0000, "EV_PREBOOT_CERT"),
    (EV_POST_CODE, "EV_POST_CODE"),
    (0x0000_0002, "EV_UNUSED"),
    (EV_NO_ACTION, "EV_NO_ACTION"),
    (EV_SEPARATOR, "EV_SEPARATOR"),
    (EV_ACTION, "EV_ACTION"),
    (0x0000_0006, "EV_EVENT_TAG"),
    (EV_S_CRTM_CONTENTS, "EV_S_CRTM_CONTENTS"),
    (EV_S_CRTM_VERSION, "EV_S_CRTM_VERSION"),
    (0x0000_0009, "EV_CPU_MICROCODE"),
    (0x0000_000A, "EV_PLATFORM_CONFIG_FLAGS"),
    (0x0000_000B, "EV_TABLE_OF_DEVICES"),
    (0x0000_000C, "EV_COMPACT_HASH"),
    (EV_IPL, "EV_IPL"),
    (0x0000_000E, "EV_IPL_PARTITION_DATA"),
    (0x0000_000F, "EV_NONHOST_CODE"),
    (0x0000_0010, "EV_NONHOST_CONFIG"),
    (0x0000_0011, "EV_NONHOST_INFO"),
    (0x0000_0012, "EV_OMIT_BOOT_DEVICE_EVENTS"),
    (0x8000_0000, "EV_EFI_EVENT_BASE"),
    (
        EV_EFI_VARIABLE_DRIVER_CONFIG,
        "EV_EFI_VARIABLE_DRIVER_CONFIG",
    ),
    (EV_EFI_VARIABLE_BOOT, "EV_EFI_VARIABLE_BOOT"),
    (
        EV_EFI_BOOT_SERVICES_APPLICATION,
        "EV_EFI_BOOT_SERVICES_APPLICATION",
    ),
    (EV_EFI_BOOT_SERVICES_DRIVER, "EV_EFI_BOOT_SERVICES_DRIVER"),
    (
        EV_EFI_RUNTIME_SERVICES_DRIVER,
        "EV_EFI_RUNTIME_SERVICES_DRIVER",
    ),
    (0x8000_0006, "EV_EFI_GPT_EVENT"),
    (EV_EFI_ACTION, "EV_EFI_ACTION"),
    (
        EV_EFI_PLATFORM_FIRMWARE_BLOB,
        "EV_EFI_PLATFORM_FIRMWARE_BLOB",
    ),
    (0x8000_0009, "EV_EFI_HANDOFF_TABLES"),
    (
        EV_EFI_PLATFORM_FIRMWARE_BLOB2,
        "EV_EFI_PLATFORM_FIRMWARE_BLOB2",
    ),
    (0x8000_000B, "EV_EFI_HANDOFF_TABLES2"),
    (EV_EFI_VARIABLE_BOOT2, "EV_EFI_VARIABLE_BOOT2"),
    (EV_EFI_HCRTM_EVENT, "EV_EFI_HCRTM_EVENT"),
    (EV_EFI_VARIABLE_AUTHORITY, "EV_EFI_VARIABLE_AUTHORITY"),
];

/// The name of a PFP event type, e.g. `EV_SEPARATOR`; `None` for values the PFP
/// does not define (vendors use some; they are data, not errors).
pub fn event_type_name(event_type: u32) -> Option<&'static str> {
    EVENT_TYPE_NAMES
        .iter()
        .find(|(v, _)| *v == event_type)
        .map(|(_, n)| *n)
}

/// `TCG_EfiSpecIDEvent.signature` of a crypto-agile log (PFP §10.4.5.1).
const SPEC_ID_EVENT03: &[u8; 16] = b"Spec ID Event03\0";
/// `TCG_EfiStartupLocalityEvent.Signature` (PFP §10.4.5.3).
const STARTUP_LOCALITY: &[u8; 16] = b"StartupLocality\0";
/// PCR indices a PC Client TPM has (PFP §3.3.4): 0–23.
const PCR_COUNT: u32 = 24;
/// Size of a legacy `TCG_PCR_EVENT` header: pcrIndex, eventType, SHA-1 digest,
/// eventDataSize.
const LEGACY_HEADER_LEN: usize = 4 + 4 + 20 + 4;

/// A read that ran past the end of its input, in the input's own offsets.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("at byte {offset}: truncated {what}: needs {need} bytes, {left} left")]
pub struct Truncation {
    /// Byte offset (from the start of the log or list) where the field begins.
    pub offset: usize,
    /// The field that did not fit, in the format's own terms.
    pub what: &'static str,
    pub need: u64,
    pub left: usize,
}

/// Why a firmware event log was refused. Every variant names the byte offset.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum LogError {
    #[error("the event log is empty")]
    Empty,
    #[error(transparent)]
    Truncated(#[from] Truncation),
    #[error("at byte {offset}: malformed Spec ID event: {reason}")]
    BadSpecId { offset: usize, reason: &'static str },
    #[error(
        "at byte {offset}: the Spec ID event gives {alg} a {size}-byte digest, \
         but {alg} digests are {expected} bytes"
    )]
    DigestSizeMismatch {
        offset: usize,
        alg: HashAlg,
        size: u16,
        expected: usize,
    },
    #[error(
        "at byte {offset}: digest algorithm {alg:#06x} is not in the Spec ID event's \
         table, so its size is unknown"
    )]
    UnknownAlgorithm { offset: usize, alg: u16 },
    #[error(
        "at byte {offset}: digest count {count} exceeds the {max} algorithms of the \
         Spec ID event"
    )]
    TooManyDigests {
        offset: usize,
        count: u32,
        max: usize,
    },
    #[error("at byte {offset}: a second digest for algorithm {alg:#06x} in one event")]
    DuplicateDigest { offset: usize, alg: u16 },
    #[error("at byte {offset}: PCR index {pcr} is out of range 0..=23")]
    PcrOutOfRange { offset: usize, pcr: u32 },
}

/// A little-endian reader over a borrowed slice; offsets in errors are `base + pos`
/// so a sub-reader over one event's data still names positions in the whole log.
pub(crate) struct LeReader<'a> {
    buf: &'a [u8],
    pos: usize,
    base: usize,
}

impl<'a> LeReader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Self::with_base(buf, 0)
    }

    pub(crate) fn with_base(buf: &'a [u8], base: usize) -> Self {
        Self { buf, pos: 0, base }
    }

    /// Offset of the next byte, in the outer input's terms.
    pub(crate) fn offset(&self) -> usize {
        self.base.saturating_add(self.pos)
    }

    pub(crate) fn left(&self) -> usize {
        self.buf.len() - self.pos
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.left() == 0
    }

    /// The bytes read since `mark`, a value of [`Self::mark`].
    pub(crate) fn mark(&self) -> usize {
        self.pos
    }

    pub(crate) fn since(&self, mark: usize) -> &'a [u8] {
        self.buf.get(mark..self.pos).unwrap_or(&[])
    }

    pub(crate) fn take(&mut self, n: usize, what: &'static str) -> Result<&'a [u8], Truncation> {
        if n > self.left() {
            return Err(Truncation {
                offset: self.offset(),
                what,
                need: n as u64,
                left: self.left(),
            });
        }
        let out = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(out)
    }

    /// Takes a length that came from the input as a wider integer; the check
    /// happens in u64 so a huge value cannot wrap on a 32-bit target.
    pub(crate) fn take_len(&mut self, n: u64, what: &'static str) -> Result<&'a [u8], Truncation> {
        match usize::try_from(n) {
            Ok(n) if n <= self.left() => self.take(n, what),
            _ => Err(Truncation {
                offset: self.offset(),
                what,
                need: n,
                left: self.left(),
            }),
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        what: &'static str,
    ) -> Result<[u8; N], Truncation> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, Truncation> {
        Ok(self.array::<1>(what)?[0])
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, Truncation> {
        self.array(what).map(u16::from_le_bytes)
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, Truncation> {
        self.array(what).map(u32::from_le_bytes)
    }

    pub(crate) fn u64(&mut self, what: &'static str) -> Result<u64, Truncation> {
        self.array(what).map(u64::from_le_bytes)
    }
}

/// One row of the Spec ID event's algorithm table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecAlgorithm {
    /// TPM_ALG_ID as logged.
    pub id: u16,
    /// `None` for an algorithm this crate cannot compute: its digests are parsed
    /// (the table gives their size) but its bank is not replayed.
    pub alg: Option<HashAlg>,
    pub digest_size: u16,
}

/// `TCG_EfiSpecIDEvent` (PFP §10.4.5.1): what a crypto-agile log declares about itself.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SpecId {
    /// 0 = client, 1 = server.
    pub platform_class: u32,
    pub spec_version_minor: u8,
    pub spec_version_major: u8,
    pub spec_errata: u8,
    /// 1 = UINTN is 32 bits, 2 = 64 bits (matters for some event data layouts).
    pub uintn_size: u8,
    pub algorithms: Vec<SpecAlgorithm>,
    pub vendor_info: Vec<u8>,
}

impl SpecId {
    fn algorithm(&self, id: u16) -> Option<&SpecAlgorithm> {
        self.algorithms.iter().find(|a| a.id == id)
    }

    /// Parses the event data of the first record; `base` is its offset in the log.
    fn parse(data: &[u8], base: usize) -> Result<Self, LogError> {
        let mut r = LeReader::with_base(data, base);
        let signature = r.take(16, "Spec ID signature")?;
        if signature != SPEC_ID_EVENT03 {
            return Err(LogError::BadSpecId {
                offset: base,
                reason: "signature is not \"Spec ID Event03\"",
            });
        }
        let platform_class = r.u32("platformClass")?;
        let spec_version_minor = r.u8("specVersionMinor")?;
        let spec_version_major = r.u8("specVersionMajor")?;
        let spec_errata = r.u8("specErrata")?;
        let uintn_size = r.u8("uintnSize")?;
        let count_offset = r.offset();
        let count = r.u32("numberOfAlgorithms")?;
        if count == 0 {
            return Err(LogError::BadSpecId {
                offset: count_offset,
                reason: "numberOfAlgorithms is 0",
            });
        }
        // Each table row is 4 bytes: refuse before allocating for a huge count.
        let table_len = u64::from(count) * 4;
        if table_len > r.left() as u64 {
            return Err(Truncation {
                offset: r.offset(),
                what: "Spec ID algorithm table",
                need: table_len,
                left: r.left(),
            }
            .into());
        }
        let mut algorithms: Vec<SpecAlgorithm> = Vec::with_capacity(count as usize);
        for _ in 0..count {
            let row_offset = r.offset();
            let id = r.u16("algorithmId")?;
            let digest_size = r.u16("digestSize")?;
            if algorithms.iter().any(|a| a.id == id) {
                return Err(LogError::BadSpecId {
                    offset: row_offset,
                    reason: "an algorithm is listed twice",
                });
            }
            if digest_size == 0 {
                return Err(LogError::BadSpecId {
                    offset: row_offset,
                    reason: "an algorithm has digestSize 0",
                });
            }
            let alg = HashAlg::from_tpm_alg(id);
            if let Some(alg) = alg {
                // A wrong size for a known hash would desynchronise every later
                // record, and replay would extend the wrong bytes.
                if usize::from(digest_size) != alg.size() {
                    return Err(LogError::DigestSizeMismatch {
                        offset: row_offset,
                        alg,
                        size: digest_size,
                        expected: alg.size(),
                    });
                }
            }
            algorithms.push(SpecAlgorithm {
                id,
                alg,
                digest_size,
            });
        }
        let vendor_info_size = r.u8("vendorInfoSize")?;
        let vendor_info = r
            .take(usize::from(vendor_info_size), "vendorInfo")?
            .to_vec();
        // tpm2-tools finds the next record after vendorInfo, go-attestation after
        // eventDataSize; bytes between them would make the two disagree.
        if !r.is_empty() {
            return Err(LogError::BadSpecId {
                offset: r.offset(),
                reason: "bytes after vendorInfo",
            });
        }
        Ok(Self {
            platform_class,
            spec_version_minor,
            spec_version_major,
            spec_errata,
            uintn_size,
            algorithms,
            vendor_info,
        })
    }
}

/// Which of the two PFP log formats a log is in.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// `TCG_PCR_EVENT` records only, SHA-1 digests (TPM 1.2 era firmware).
    Legacy,
    /// A Spec ID header, then `TCG_PCR_EVENT2` records with one digest per bank.
    CryptoAgile { spec: SpecId },
}

/// One measurement record, borrowing its digests and data from the log's
/// bytes: a log is parsed on every appraisal, and copying each record's
/// pieces out made the parse the PDP's largest source of allocations.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event<'a> {
    /// Position in the log, counting the Spec ID header as event 0.
    pub index: usize,
    /// Byte offset of the record in the log, for findings a person can check.
    pub offset: usize,
    pub pcr: u32,
    pub event_type: u32,
    /// Digests of algorithms this crate knows, in log order.
    pub digests: Vec<(HashAlg, &'a [u8])>,
    /// Digests of algorithms the Spec ID table lists but this crate cannot compute:
    /// kept so nothing in the evidence is silently dropped.
    pub unknown_digests: Vec<(u16, &'a [u8])>,
    pub data: &'a [u8],
}

/// A UEFI variable measurement (`UEFI_VARIABLE_DATA`, PFP §10.4.6.6).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EfiVariable<'a> {
    pub guid: EfiGuid,
    pub name: String,
    pub data: &'a [u8],
}

/// A UEFI GUID as stored in memory (first three groups little-endian).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EfiGuid(pub [u8; 16]);

impl fmt::Display for EfiGuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = &self.0;
        write!(
            f,
            "{:08x}-{:04x}-{:04x}-{:02x}{:02x}-",
            u32::from_le_bytes([g[0], g[1], g[2], g[3]]),
            u16::from_le_bytes([g[4], g[5]]),
            u16::from_le_bytes([g[6], g[7]]),
            g[8],
            g[9]
        )?;
        g[10..].iter().try_for_each(|b| write!(f, "{b:02x}"))
    }
}

impl<'a> Event<'a> {
    /// The digest this event carries for `alg`, if any.
    pub fn digest(&self, alg: HashAlg) -> Option<&'a [u8]> {
        self.digests
            .iter()
            .find(|(a, _)| *a == alg)
            .map(|&(_, d)| d)
    }

    pub fn type_name(&self) -> Option<&'static str> {
        event_type_name(self.event_type)
    }

    /// The locality of `TPM2_Startup` from a `TCG_EfiStartupLocalityEvent`
    /// (PFP §10.4.5.3): an EV_NO_ACTION whose 17 bytes are the signature and a u8.
    pub fn startup_locality(&self) -> Option<u8> {
        match self.data.split_first_chunk::<16>() {
            Some((sig, [locality]))
                if self.event_type == EV_NO_ACTION && sig == STARTUP_LOCALITY =>
            {
                Some(*locality)
            }
            _ => None,
        }
    }

    /// The variable of an EV_EFI_VARIABLE_* event, if its data is well formed.
    pub fn efi_variable(&self) -> Option<EfiVariable<'a>> {
        if !matches!(
            self.event_type,
            EV_EFI_VARIABLE_DRIVER_CONFIG
                | EV_EFI_VARIABLE_BOOT
                | EV_EFI_VARIABLE_BOOT2
                | EV_EFI_VARIABLE_AUTHORITY
        ) {
            return None;
        }
        let mut r = LeReader::new(self.data);
        let guid = EfiGuid(r.array("VariableName").ok()?);
        let name_chars = r.u64("UnicodeNameLength").ok()?;
        let data_len = r.u64("VariableDataLength").ok()?;
        let name = r.take_len(name_chars.checked_mul(2)?, "name").ok()?;
        let data = r.take_len(data_len, "data").ok()?;
        Some(EfiVariable {
            guid,
            name: utf16le_lossy(name),
            data,
        })
    }

    /// A one-line human description of the event data, for display; `None` when
    /// the type carries nothing readable (or the data does not parse).
    pub fn describe(&self) -> Option<String> {
        match self.event_type {
            EV_NO_ACTION => {
                if let Some(locality) = self.startup_locality() {
                    return Some(format!("StartupLocality {locality}"));
                }
                // Spec ID, NvIndexInstance, SP800-155 events: name the signature.
                let sig = self.data.get(..16)?;
                printable_text(sig)
            }
            EV_SEPARATOR => Some(match self.data {
                [0, 0, 0, 0] => "separator".to_owned(),
                [0xFF, 0xFF, 0xFF, 0xFF] => "separator (error)".to_owned(),
                other => format!("separator {}", crate::digest::hex(other)),
            }),
            EV_EFI_VARIABLE_DRIVER_CONFIG
            | EV_EFI_VARIABLE_BOOT
            | EV_EFI_VARIABLE_BOOT2
            | EV_EFI_VARIABLE_AUTHORITY => {
                let var = self.efi_variable()?;
                Some(format!(
                    "{}:{} ({} bytes)",
                    var.guid,
                    var.name,
                    var.data.len()
                ))
            }
            EV_EFI_ACTION | EV_ACTION | EV_IPL | EV_S_CRTM_VERSION | EV_EFI_HCRTM_EVENT => {
                printable_text(self.data)
            }
            EV_POST_CODE | EV_S_CRTM_CONTENTS | EV_EFI_PLATFORM_FIRMWARE_BLOB => {
                // Either a string ("ACPI DATA") or UEFI_PLATFORM_FIRMWARE_BLOB.
                printable_text(self.data).or_else(|| {
                    let mut r = LeReader::new(self.data);
                    let base = r.u64("BlobBase").ok()?;
                    let len = r.u64("BlobLength").ok()?;
                    Some(format!("firmware blob at {base:#x}, {len} bytes"))
                })
            }
            EV_EFI_PLATFORM_FIRMWARE_BLOB2 => {
                let mut r = LeReader::new(self.data);
                let desc_len = r.u8("BlobDescriptionSize").ok()?;
                let desc = r.take(usize::from(desc_len), "BlobDescription").ok()?;
                let base = r.u64("BlobBase").ok()?;
                let len = r.u64("BlobLength").ok()?;
                let desc = printable_text(desc).unwrap_or_default();
                Some(format!("firmware blob {desc} at {base:#x}, {len} bytes"))
            }
            EV_EFI_BOOT_SERVICES_APPLICATION
            | EV_EFI_BOOT_SERVICES_DRIVER
            | EV_EFI_RUNTIME_SERVICES_DRIVER => {
                // UEFI_IMAGE_LOAD_EVENT (PFP §10.4.6.5); the digest is the PE
                // Authenticode hash, not a hash of these bytes.
                let mut r = LeReader::new(self.data);
                let location = r.u64("ImageLocationInMemory").ok()?;
                let len = r.u64("ImageLengthInMemory").ok()?;
                Some(format!("image at {location:#x}, {len} bytes"))
            }
            _ => None,
        }
    }
}

/// Decodes UTF-16LE, replacing unpaired surrogates; an odd trailing byte is dropped.
fn utf16le_lossy(bytes: &[u8]) -> String {
    let units: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]))
        .collect();
    String::from_utf16_lossy(&units)
}

/// The data as text if it is printable ASCII (GRUB, shim, firmware strings) or
/// printable UTF-16LE (systemd-boot, S-CRTM versions), without trailing NULs.
fn printable_text(data: &[u8]) -> Option<String> {
    let is_ascii_text = |b: &u8| (0x20..0x7F).contains(b) || matches!(b, b'\t' | b'\n' | b'\r');
    let ascii = trim_trailing(data, |b| *b == 0);
    if ascii.iter().all(is_ascii_text) {
        return Some(String::from_utf8_lossy(ascii).into_owned());
    }
    if data.len().is_multiple_of(2) {
        let text = utf16le_lossy(data);
        let text = text.trim_end_matches('\0');
        if !text.is_empty()
            && text
                .chars()
                .all(|c| !c.is_control() || matches!(c, '\t' | '\n' | '\r'))
            && !text.contains(char::REPLACEMENT_CHARACTER)
        {
            return Some(text.to_owned());
        }
    }
    None
}

fn trim_trailing(data: &[u8], pred: impl Fn(&u8) -> bool) -> &[u8] {
    let end = data.iter().rposition(|b| !pred(b)).map_or(0, |i| i + 1);
    &data[..end]
}

/// A parsed firmware event log, borrowing from the bytes it was parsed from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EventLog<'a> {
    pub format: LogFormat,
    /// All records in log order, the Spec ID header included (as event 0).
    pub events: Vec<Event<'a>>,
}

impl<'a> EventLog<'a> {
    /// Parses a log in either format. A first record that is EV_NO_ACTION with
    /// "Spec ID Event03" makes it crypto-agile; anything else (including the older
    /// "Spec ID Event00/02" headers of SHA-1 logs) is read as legacy.
    pub fn parse(bytes: &'a [u8]) -> Result<EventLog<'a>, LogError> {
        if bytes.is_empty() {
            return Err(LogError::Empty);
        }
        let mut r = LeReader::new(bytes);
        let first = read_legacy_event(&mut r, 0)?;
        let is_crypto_agile =
            first.event_type == EV_NO_ACTION && first.data.starts_with(SPEC_ID_EVENT03);
        if !is_crypto_agile {
            let mut events = vec![first];
            while !r.is_empty() {
                let event = read_legacy_event(&mut r, events.len())?;
                events.push(event);
            }
            return Ok(EventLog {
                format: LogFormat::Legacy,
                events,
            });
        }

        if first.pcr != 0 || first.digests.iter().any(|(_, d)| d.iter().any(|b| *b != 0)) {
            return Err(LogError::BadSpecId {
                offset: 0,
                reason: "the header record must be PCR 0 with a zero digest",
            });
        }
        let spec = SpecId::parse(first.data, LEGACY_HEADER_LEN)?;
        let mut events = vec![first];
        while !r.is_empty() {
            let event = read_event2(&mut r, events.len(), &spec)?;
            events.push(event);
        }
        Ok(EventLog {
            format: LogFormat::CryptoAgile { spec },
            events,
        })
    }

    /// The banks a replay computes: the Spec ID algorithms this crate knows, or
    /// SHA-1 for a legacy log.
    pub fn banks(&self) -> Vec<HashAlg> {
        match &self.format {
            LogFormat::Legacy => vec![HashAlg::Sha1],
            LogFormat::CryptoAgile { spec } => {
                spec.algorithms.iter().filter_map(|a| a.alg).collect()
            }
        }
    }

    /// Recomputes the PCR values the log claims (tpm-evidence.md §7.4; the same
    /// rules as go-attestation `replayPCR` and tpm2-tools `foreach_digest2`).
    pub fn replay(&self) -> Replay {
        self.replay_banks(&self.banks())
    }

    /// [`Self::replay`] restricted to `wanted` (those of them the log has): the
    /// values of these banks are the same as in the full replay, and the other
    /// banks are absent. Appraisal needs only the quoted banks.
    pub fn replay_banks(&self, wanted: &[HashAlg]) -> Replay {
        let banks: Vec<HashAlg> = self
            .banks()
            .into_iter()
            .filter(|b| wanted.contains(b))
            .collect();
        let mut values: BTreeMap<(HashAlg, u32), Vec<u8>> = BTreeMap::new();
        // PCR 0's reset value depends on the locality of TPM2_Startup, which
        // firmware records only in an EV_NO_ACTION before PCR 0's first extend.
        let mut pcr0_locality: Option<u8> = None;
        let mut pcr0_extended = false;
        for event in &self.events {
            if event.event_type == EV_NO_ACTION {
                // Never extended: it records facts, not measurements.
                if event.pcr == 0 && !pcr0_extended && pcr0_locality.is_none() {
                    pcr0_locality = event.startup_locality();
                }
                continue;
            }
            if event.pcr == 0 && !pcr0_extended {
                pcr0_extended = true;
                // An H-CRTM sequence (_TPM_Hash_Start, TPM Library Part 1 §34.3)
                // resets PCR 0 to locality 4 before the H-CRTM digest is extended;
                // tpm2-tools replays it this way (UNCONFIRMED against hardware).
                if event.event_type == EV_EFI_HCRTM_EVENT {
                    pcr0_locality = Some(4);
                }
            }
            for (alg, digest) in &event.digests {
                if !banks.contains(alg) {
                    continue;
                }
                let pcr = values
                    .entry((*alg, event.pcr))
                    .or_insert_with(|| initial_value(*alg, event.pcr, pcr0_locality));
                alg.extend(pcr, digest);
            }
        }
        if let Some(locality) = pcr0_locality {
            for alg in &banks {
                values
                    .entry((*alg, 0))
                    .or_insert_with(|| initial_value(*alg, 0, Some(locality)));
            }
        }
        Replay { values }
    }
}

/// PCR reset values (PFP §3.3.4 / TPM PC Client PTP): 17–22 are the DRTM PCRs and
/// read all-ones until a dynamic launch; PCR 0 ends in the startup locality.
fn initial_value(alg: HashAlg, pcr: u32, pcr0_locality: Option<u8>) -> Vec<u8> {
    let mut value = if (17..=22).contains(&pcr) {
        vec![0xFF; alg.size()]
    } else {
        vec![0; alg.size()]
    };
    if pcr == 0 {
        if let (Some(locality), Some(last)) = (pcr0_locality, value.last_mut()) {
            *last = locality;
        }
    }
    value
}

fn check_pcr(offset: usize, pcr: u32, event_type: u32) -> Result<(), LogError> {
    // EV_NO_ACTION is never extended, so its PCR index is only a label.
    if pcr >= PCR_COUNT && event_type != EV_NO_ACTION {
        return Err(LogError::PcrOutOfRange { offset, pcr });
    }
    Ok(())
}

/// `TCG_PCR_EVENT` (PFP §10.2.1).
fn read_legacy_event<'a>(r: &mut LeReader<'a>, index: usize) -> Result<Event<'a>, LogError> {
    let offset = r.offset();
    let pcr = r.u32("pcrIndex")?;
    let event_type = r.u32("eventType")?;
    let digest = r.take(20, "SHA-1 digest")?;
    let size = r.u32("eventDataSize")?;
    let data = r.take_len(u64::from(size), "event data")?;
    check_pcr(offset, pcr, event_type)?;
    Ok(Event {
        index,
        offset,
        pcr,
        event_type,
        digests: vec![(HashAlg::Sha1, digest)],
        unknown_digests: Vec::new(),
        data,
    })
}

/// `TCG_PCR_EVENT2` (PFP §10.2.2).
fn read_event2<'a>(
    r: &mut LeReader<'a>,
    index: usize,
    spec: &SpecId,
) -> Result<Event<'a>, LogError> {
    let offset = r.offset();
    let pcr = r.u32("pcrIndex")?;
    let event_type = r.u32("eventType")?;
    let count_offset = r.offset();
    let count = r.u32("digest count")?;
    // Each bank appears at most once, so the table bounds the count (and the
    // allocation below).
    if count as usize > spec.algorithms.len() {
        return Err(LogError::TooManyDigests {
            offset: count_offset,
            count,
            max: spec.algorithms.len(),
        });
    }
    let mut digests: Vec<(HashAlg, &[u8])> = Vec::with_capacity(count as usize);
    let mut unknown_digests: Vec<(u16, &[u8])> = Vec::new();
    for _ in 0..count {
        let alg_offset = r.offset();
        let id = r.u16("digest algorithm")?;
        let entry = spec.algorithm(id).ok_or(LogError::UnknownAlgorithm {
            offset: alg_offset,
            alg: id,
        })?;
        let seen = match entry.alg {
            Some(alg) => digests.iter().any(|(a, _)| *a == alg),
            None => unknown_digests.iter().any(|(u, _)| *u == id),
        };
        if seen {
            return Err(LogError::DuplicateDigest {
                offset: alg_offset,
                alg: id,
            });
        }
        let digest = r.take(usize::from(entry.digest_size), "digest")?;
        match entry.alg {
            Some(alg) => digests.push((alg, digest)),
            None => unknown_digests.push((id, digest)),
        }
    }
    let size = r.u32("eventSize")?;
    let data = r.take_len(u64::from(size), "event data")?;
    check_pcr(offset, pcr, event_type)?;
    Ok(Event {
        index,
        offset,
        pcr,
        event_type,
        digests,
        unknown_digests,
        data,
    })
}

/// Replayed PCR values per (bank, PCR index), for the PCRs the log touches.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Replay {
    values: BTreeMap<(HashAlg, u32), Vec<u8>>,
}

impl Replay {
    pub fn get(&self, bank: HashAlg, pcr: u32) -> Option<&[u8]> {
        self.values.get(&(bank, pcr)).map(Vec::as_slice)
    }

    /// `(bank, pcr, value)` in bank then PCR order.
    pub fn iter(&self) -> impl Iterator<Item = (HashAlg, u32, &[u8])> {
        self.values
            .iter()
            .map(|((bank, pcr), v)| (*bank, *pcr, v.as_slice()))
    }

    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    pub fn as_map(&self) -> &BTreeMap<(HashAlg, u32), Vec<u8>> {
        &self.values
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::{from_hex, hex};

    const SHA1: u16 = 0x0004;
    const SHA256: u16 = 0x000B;

    fn legacy_event(pcr: u32, event_type: u32, digest: &[u8; 20], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&pcr.to_le_bytes());
        out.extend_from_slice(&event_type.to_le_bytes());
        out.extend_from_slice(digest);
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    fn spec_id_data(algs: &[(u16, u16)], signature: &[u8; 16]) -> Vec<u8> {
        let mut d = signature.to_vec();
        d.extend_from_slice(&0u32.to_le_bytes()); // platformClass
        d.extend_from_slice(&[0, 2, 0, 2]); // minor, major, errata, uintnSize
        d.extend_from_slice(&(algs.len() as u32).to_le_bytes());
        for (id, size) in algs {
            d.extend_from_slice(&id.to_le_bytes());
            d.extend_from_slice(&size.to_le_bytes());
        }
        d.push(0); // vendorInfoSize
        d
    }

    fn header(algs: &[(u16, u16)]) -> Vec<u8> {
        legacy_event(
            0,
            EV_NO_ACTION,
            &[0; 20],
            &spec_id_data(algs, SPEC_ID_EVENT03),
        )
    }

    fn event2(pcr: u32, event_type: u32, digests: &[(u16, Vec<u8>)], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(&pcr.to_le_bytes());
        out.extend_from_slice(&event_type.to_le_bytes());
        out.extend_from_slice(&(digests.len() as u32).to_le_bytes());
        for (id, d) in digests {
            out.extend_from_slice(&id.to_le_bytes());
            out.extend_from_slice(d);
        }
        out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        out.extend_from_slice(data);
        out
    }

    /// An event whose digests are the hashes of its data in SHA-1 and SHA-256.
    fn measured(pcr: u32, event_type: u32, data: &[u8]) -> Vec<u8> {
        event2(
            pcr,
            event_type,
            &[
                (SHA1, HashAlg::Sha1.digest(data)),
                (SHA256, HashAlg::Sha256.digest(data)),
            ],
            data,
        )
    }

    fn sha1_of(data: &[u8]) -> [u8; 20] {
        let mut out = [0u8; 20];
        out.copy_from_slice(&HashAlg::Sha1.digest(data));
        out
    }

    fn agile_log() -> Vec<u8> {
        let mut log = header(&[(SHA1, 20), (SHA256, 32)]);
        log.extend(measured(0, EV_S_CRTM_VERSION, b"1.0"));
        log.extend(measured(7, EV_SEPARATOR, &[0; 4]));
        log.extend(measured(
            4,
            EV_EFI_ACTION,
            b"Calling EFI Application from Boot Option",
        ));
        log.extend(measured(7, EV_SEPARATOR, &[0; 4]));
        log
    }

    fn legacy_log() -> Vec<u8> {
        let mut log = legacy_event(0, EV_S_CRTM_VERSION, &sha1_of(b"v"), b"v");
        log.extend(legacy_event(4, EV_SEPARATOR, &sha1_of(&[0; 4]), &[0; 4]));
        log.extend(legacy_event(0, EV_NO_ACTION, &[0; 20], b"ignored"));
        log.extend(legacy_event(4, EV_ACTION, &sha1_of(b"act"), b"act"));
        log
    }

    /// Offsets at which a prefix of `log` is itself a complete log.
    fn boundaries(log: &EventLog, len: usize) -> Vec<usize> {
        let mut b: Vec<usize> = log.events.iter().skip(1).map(|e| e.offset).collect();
        b.push(len);
        b
    }

    #[test]
    fn crypto_agile_parse_and_replay() {
        let bytes = agile_log();
        let log = EventLog::parse(&bytes).unwrap();
        let LogFormat::CryptoAgile { spec } = &log.format else {
            panic!("not crypto-agile")
        };
        assert_eq!(spec.algorithms.len(), 2);
        assert_eq!(log.events.len(), 5);
        assert_eq!(
            log.events[1].offset,
            32 + spec_id_data(&[(SHA1, 20), (SHA256, 32)], SPEC_ID_EVENT03).len()
        );
        assert_eq!(log.events[3].type_name(), Some("EV_EFI_ACTION"));

        let replay = log.replay();
        // Recomputed by hand from the definition, not through `HashAlg::extend`.
        for alg in [HashAlg::Sha1, HashAlg::Sha256] {
            let zero = vec![0; alg.size()];
            let sep = alg.digest(&[0; 4]);
            let once = alg.digest_parts(&[&zero, &sep]);
            let twice = alg.digest_parts(&[&once, &sep]);
            assert_eq!(replay.get(alg, 7), Some(twice.as_slice()));
            let crtm = alg.digest_parts(&[&zero, &alg.digest(b"1.0")]);
            assert_eq!(replay.get(alg, 0), Some(crtm.as_slice()));
        }
        // Only touched PCRs appear: 0, 4, 7 in two banks.
        assert_eq!(replay.len(), 6);
        assert_eq!(replay.get(HashAlg::Sha256, 1), None);

        // One bank alone replays to the same values; a bank the log lacks is absent.
        let sha256 = log.replay_banks(&[HashAlg::Sha256, HashAlg::Sm3]);
        let expected: Vec<_> = replay
            .iter()
            .filter(|(bank, _, _)| *bank == HashAlg::Sha256)
            .collect();
        assert_eq!(sha256.iter().collect::<Vec<_>>(), expected);
        assert!(log.replay_banks(&[]).is_empty());
    }

    #[test]
    fn legacy_parse_and_replay() {
        let bytes = legacy_log();
        let log = EventLog::parse(&bytes).unwrap();
        assert_eq!(log.format, LogFormat::Legacy);
        assert_eq!(log.events.len(), 4);
        let replay = log.replay();
        let zero = [0u8; 20];
        let pcr0 = HashAlg::Sha1.digest_parts(&[&zero, &sha1_of(b"v")]);
        assert_eq!(replay.get(HashAlg::Sha1, 0), Some(pcr0.as_slice()));
        let pcr4 = HashAlg::Sha1.digest_parts(&[&zero, &sha1_of(&[0; 4])]);
        let pcr4 = HashAlg::Sha1.digest_parts(&[&pcr4, &sha1_of(b"act")]);
        assert_eq!(replay.get(HashAlg::Sha1, 4), Some(pcr4.as_slice()));
        assert_eq!(replay.len(), 2);
    }

    #[test]
    fn older_spec_id_headers_are_legacy() {
        let mut bytes = legacy_event(
            0,
            EV_NO_ACTION,
            &[0; 20],
            &spec_id_data(&[(SHA1, 20)], b"Spec ID Event02\0"),
        );
        bytes.extend(legacy_event(1, EV_SEPARATOR, &sha1_of(&[0; 4]), &[0; 4]));
        let log = EventLog::parse(&bytes).unwrap();
        assert_eq!(log.format, LogFormat::Legacy);
        assert_eq!(log.events.len(), 2);
    }

    #[test]
    fn startup_locality_sets_pcr0_reset_value() {
        let mut bytes = header(&[(SHA1, 20), (SHA256, 32)]);
        let mut locality = STARTUP_LOCALITY.to_vec();
        locality.push(3);
        bytes.extend(event2(
            0,
            EV_NO_ACTION,
            &[(SHA1, vec![0; 20]), (SHA256, vec![0; 32])],
            &locality,
        ));
        bytes.extend(measured(0, EV_S_CRTM_VERSION, b"abc"));
        let log = EventLog::parse(&bytes).unwrap();
        assert_eq!(log.events[1].startup_locality(), Some(3));
        assert_eq!(
            log.events[1].describe().as_deref(),
            Some("StartupLocality 3")
        );
        let replay = log.replay();
        // Python: sha256(bytes(31) + b"\x03" + sha256(b"abc").digest()).hexdigest()
        let expected =
            from_hex("e2bf6737520fc19e9be2993af864834bfb33b00c3fa7e3da44509c90cfd6a247").unwrap();
        assert_eq!(replay.get(HashAlg::Sha256, 0), Some(expected.as_slice()));
        // Python: sha1(bytes(19) + b"\x03" + sha1(b"abc").digest()).hexdigest()
        let expected = from_hex("acacc3dc6d7d4e11d6f022098ccf6d8c1929e540").unwrap();
        assert_eq!(replay.get(HashAlg::Sha1, 0), Some(expected.as_slice()));
    }

    #[test]
    fn startup_locality_alone_yields_pcr0() {
        let mut bytes = header(&[(SHA256, 32)]);
        let mut locality = STARTUP_LOCALITY.to_vec();
        locality.push(3);
        bytes.extend(event2(0, EV_NO_ACTION, &[], &locality));
        let replay = EventLog::parse(&bytes).unwrap().replay();
        let mut expected = vec![0; 32];
        expected[31] = 3;
        assert_eq!(replay.get(HashAlg::Sha256, 0), Some(expected.as_slice()));
        assert_eq!(replay.len(), 1);
    }

    #[test]
    fn drtm_pcrs_start_all_ones() {
        let mut bytes = header(&[(SHA256, 32)]);
        bytes.extend(event2(17, EV_ACTION, &[(SHA256, vec![1; 32])], b""));
        let replay = EventLog::parse(&bytes).unwrap().replay();
        let expected = HashAlg::Sha256.digest_parts(&[&[0xFF; 32], &[1; 32]]);
        assert_eq!(replay.get(HashAlg::Sha256, 17), Some(expected.as_slice()));
    }

    #[test]
    fn unknown_spec_algorithm_is_parsed_but_not_replayed() {
        let mut bytes = header(&[(SHA256, 32), (0x0099, 10)]);
        bytes.extend(event2(
            5,
            EV_ACTION,
            &[(0x0099, vec![7; 10]), (SHA256, vec![1; 32])],
            b"x",
        ));
        let log = EventLog::parse(&bytes).unwrap();
        assert_eq!(
            log.events[1].unknown_digests,
            vec![(0x0099, &[7u8; 10][..])]
        );
        assert_eq!(log.banks(), vec![HashAlg::Sha256]);
        let replay = log.replay();
        assert_eq!(replay.len(), 1);
        assert!(replay.get(HashAlg::Sha256, 5).is_some());
    }

    #[test]
    fn refuses_algorithm_not_in_table() {
        let mut bytes = header(&[(SHA256, 32)]);
        let at = bytes.len() + 12;
        bytes.extend(event2(5, EV_ACTION, &[(SHA1, vec![1; 20])], b""));
        assert_eq!(
            EventLog::parse(&bytes),
            Err(LogError::UnknownAlgorithm {
                offset: at,
                alg: SHA1
            })
        );
    }

    #[test]
    fn refuses_digest_count_above_table() {
        let mut bytes = header(&[(SHA256, 32)]);
        let at = bytes.len() + 8;
        bytes.extend(event2(
            5,
            EV_ACTION,
            &[(SHA256, vec![1; 32]), (SHA256, vec![1; 32])],
            b"",
        ));
        assert_eq!(
            EventLog::parse(&bytes),
            Err(LogError::TooManyDigests {
                offset: at,
                count: 2,
                max: 1
            })
        );
        // Huge count: refused before anything is allocated.
        let mut bytes = header(&[(SHA256, 32)]);
        bytes.extend(5u32.to_le_bytes());
        bytes.extend(EV_ACTION.to_le_bytes());
        bytes.extend(u32::MAX.to_le_bytes());
        assert!(matches!(
            EventLog::parse(&bytes),
            Err(LogError::TooManyDigests { .. })
        ));
    }

    #[test]
    fn refuses_duplicate_digest() {
        let mut bytes = header(&[(SHA1, 20), (SHA256, 32)]);
        bytes.extend(event2(
            5,
            EV_ACTION,
            &[(SHA256, vec![1; 32]), (SHA256, vec![1; 32])],
            b"",
        ));
        assert!(matches!(
            EventLog::parse(&bytes),
            Err(LogError::DuplicateDigest { alg: SHA256, .. })
        ));
    }

    #[test]
    fn refuses_event_size_past_end() {
        let mut bytes = agile_log();
        let last_size_at = bytes.len() - 4 - 4;
        bytes[last_size_at..last_size_at + 4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert_eq!(
            EventLog::parse(&bytes),
            Err(LogError::Truncated(Truncation {
                offset: last_size_at + 4,
                what: "event data",
                need: u64::from(u32::MAX),
                left: 4
            }))
        );
    }

    #[test]
    fn refuses_bad_spec_id() {
        // A known algorithm with the wrong size.
        let bytes = header(&[(SHA256, 20)]);
        assert!(matches!(
            EventLog::parse(&bytes),
            Err(LogError::DigestSizeMismatch {
                alg: HashAlg::Sha256,
                size: 20,
                ..
            })
        ));
        for algs in [&[][..], &[(SHA1, 20), (SHA1, 20)][..], &[(0x0099, 0)][..]] {
            assert!(matches!(
                EventLog::parse(&header(algs)),
                Err(LogError::BadSpecId { .. })
            ));
        }
        // A huge algorithm count is a truncation, not an allocation.
        let mut data = spec_id_data(&[(SHA1, 20)], SPEC_ID_EVENT03);
        data[24..28].copy_from_slice(&u32::MAX.to_le_bytes());
        let bytes = legacy_event(0, EV_NO_ACTION, &[0; 20], &data);
        assert!(matches!(
            EventLog::parse(&bytes),
            Err(LogError::Truncated(_))
        ));
        // Trailing bytes inside the Spec ID event.
        let mut data = spec_id_data(&[(SHA1, 20)], SPEC_ID_EVENT03);
        data.push(0);
        let bytes = legacy_event(0, EV_NO_ACTION, &[0; 20], &data);
        assert!(matches!(
            EventLog::parse(&bytes),
            Err(LogError::BadSpecId { .. })
        ));
        // A header record with a non-zero digest.
        let bytes = legacy_event(
            0,
            EV_NO_ACTION,
            &[1; 20],
            &spec_id_data(&[(SHA1, 20)], SPEC_ID_EVENT03),
        );
        assert!(matches!(
            EventLog::parse(&bytes),
            Err(LogError::BadSpecId { offset: 0, .. })
        ));
    }

    #[test]
    fn refuses_pcr_out_of_range_and_empty() {
        assert_eq!(EventLog::parse(&[]), Err(LogError::Empty));
        let bytes = legacy_event(24, EV_ACTION, &[0; 20], b"");
        assert_eq!(
            EventLog::parse(&bytes),
            Err(LogError::PcrOutOfRange { offset: 0, pcr: 24 })
        );
    }

    #[test]
    fn every_truncation_is_refused() {
        for bytes in [agile_log(), legacy_log()] {
            let full = EventLog::parse(&bytes).unwrap();
            let ok_at = boundaries(&full, bytes.len());
            for len in 0..bytes.len() {
                let result = EventLog::parse(&bytes[..len]);
                if ok_at.contains(&len) {
                    let log = result.unwrap();
                    assert_eq!(log.events[..], full.events[..log.events.len()]);
                } else {
                    assert!(result.is_err(), "prefix of {len} bytes accepted");
                }
            }
        }
    }

    #[test]
    fn describes_event_data() {
        let mut var = from_hex("61dfe48bca93d211aa0d00e098032b8c").unwrap();
        var.extend(10u64.to_le_bytes());
        var.extend(1u64.to_le_bytes());
        var.extend("SecureBoot".encode_utf16().flat_map(u16::to_le_bytes));
        var.push(1);
        let mut bytes = header(&[(SHA256, 32)]);
        bytes.extend(event2(7, EV_EFI_VARIABLE_DRIVER_CONFIG, &[], &var));
        bytes.extend(event2(7, EV_SEPARATOR, &[], &[0; 4]));
        bytes.extend(event2(
            4,
            EV_EFI_ACTION,
            &[],
            b"Calling EFI Application from Boot Option",
        ));
        let cmdline: Vec<u8> = "initrd=\\initrd quiet\0"
            .encode_utf16()
            .flat_map(u16::to_le_bytes)
            .collect();
        bytes.extend(event2(12, EV_IPL, &[], &cmdline));
        bytes.extend(event2(8, EV_IPL, &[], b"grub_cmd: linux /vmlinuz\0"));
        bytes.extend(event2(1, EV_EFI_VARIABLE_BOOT, &[], &[1, 2]));
        let log = EventLog::parse(&bytes).unwrap();
        let texts: Vec<Option<String>> = log.events.iter().map(Event::describe).collect();
        assert_eq!(
            texts,
            vec![
                Some("Spec ID Event03".to_owned()),
                Some("8be4df61-93ca-11d2-aa0d-00e098032b8c:SecureBoot (1 bytes)".to_owned()),
                Some("separator".to_owned()),
                Some("Calling EFI Application from Boot Option".to_owned()),
                Some("initrd=\\initrd quiet".to_owned()),
                Some("grub_cmd: linux /vmlinuz".to_owned()),
                None,
            ]
        );
        let var = log.events[1].efi_variable().unwrap();
        assert_eq!((var.name.as_str(), var.data), ("SecureBoot", &[1u8][..]));
    }

    #[test]
    fn names_every_event_type() {
        assert_eq!(EVENT_TYPE_NAMES.len(), 34);
        for (value, name) in EVENT_TYPE_NAMES {
            assert_eq!(event_type_name(*value), Some(*name));
        }
        assert_eq!(event_type_name(0x8000_00E1), None);
        assert_eq!(hex(&[0xab]), "ab");
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(log) = EventLog::parse(&bytes) {
                let _ = log.replay();
                log.events.iter().for_each(|e| { let _ = e.describe(); });
            }
        }

        #[test]
        fn corrupted_logs_never_panic(at in 0usize..400, value in proptest::num::u8::ANY) {
            let mut bytes = agile_log();
            let at = at % bytes.len();
            bytes[at] = value;
            if let Ok(log) = EventLog::parse(&bytes) {
                let _ = log.replay();
                log.events.iter().for_each(|e| { let _ = e.describe(); });
            }
        }
    }
}
