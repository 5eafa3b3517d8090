//! The Linux IMA measurement list (`binary_runtime_measurements`) and PCR 10 replay.
//!
//! Record layout from `security/integrity/ima/ima_fs.c` (`ima_measurements_show`),
//! field encodings from `ima_template_lib.c`, template hashes from `ima_crypto.c`
//! (`ima_calc_field_array_hash_tfm`) and violations from `ima_api.c` /
//! `ima_queue.c`. The list is host-endian; we read little-endian (x86, arm64, and
//! any kernel booted with `ima_canonical_fmt`).
//!
//! A verifier re-attesting a machine receives only the entries added since the
//! last quote: [`ImaEntries`] parses a list incrementally and [`replay`] continues
//! from the PCR values of the previous round.

use std::borrow::Cow;
use std::collections::BTreeMap;

use crate::digest::{hex, Digest, HashAlg, MAX_DIGEST_LEN};
use crate::eventlog::{LeReader, Truncation};

/// `CONFIG_IMA_MEASURE_PCR_IDX`'s default: the PCR IMA extends unless a policy
/// rule says `pcr=`.
pub const IMA_PCR: u32 = 10;
/// Longest template name accepted (the kernel's are at most a few dozen bytes).
pub const MAX_TEMPLATE_NAME_LEN: usize = 255;
/// `IMA_EVENT_NAME_LEN_MAX`: the "ima" template's file name limit; its template
/// hash pads the name with zeros to one more than this.
pub const IMA_EVENT_NAME_LEN_MAX: usize = 255;
/// `IMA_TEMPLATE_NUM_FIELDS_MAX` (`ima.h`): no template has more fields.
pub const MAX_FIELDS: usize = 15;

/// The template that produced an entry (`ima_template.c`, `builtin_templates`).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Template {
    /// "ima": d|n, with its own binary layout (no template data length).
    Ima,
    /// "ima-ng": d-ng|n-ng.
    ImaNg,
    /// "ima-sig": d-ng|n-ng|sig.
    ImaSig,
    /// "ima-buf": d-ng|n-ng|buf.
    ImaBuf,
    /// Any other name (ima-ngv2, ima-modsig, evm-sig, custom `ima_template_fmt`).
    Other(String),
}

impl Template {
    pub fn from_name(name: &str) -> Self {
        Self::from_name_bytes(name.as_bytes())
    }

    /// The name as logged; a name that is not UTF-8 is converted lossily (and
    /// can only be an unknown template).
    fn from_name_bytes(name: &[u8]) -> Self {
        match name {
            b"ima" => Self::Ima,
            b"ima-ng" => Self::ImaNg,
            b"ima-sig" => Self::ImaSig,
            b"ima-buf" => Self::ImaBuf,
            other => Self::Other(utf8_lossy(other).into_owned()),
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Ima => "ima",
            Self::ImaNg => "ima-ng",
            Self::ImaSig => "ima-sig",
            Self::ImaBuf => "ima-buf",
            Self::Other(name) => name,
        }
    }

    /// The field IDs of the built-in templates, in order; `None` for a template
    /// whose fields we cannot know (a custom format).
    pub fn field_ids(&self) -> Option<&'static [&'static str]> {
        Some(match self {
            Self::Ima => &["d", "n"],
            Self::ImaNg => &["d-ng", "n-ng"],
            Self::ImaSig => &["d-ng", "n-ng", "sig"],
            Self::ImaBuf => &["d-ng", "n-ng", "buf"],
            Self::Other(name) => match name.as_str() {
                "ima-ngv2" => &["d-ngv2", "n-ng"],
                "ima-sigv2" => &["d-ngv2", "n-ng", "sig"],
                "ima-modsig" => &["d-ng", "n-ng", "sig", "d-modsig", "modsig"],
                "evm-sig" => &[
                    "d-ng",
                    "n-ng",
                    "evmsig",
                    "xattrnames",
                    "xattrlengths",
                    "xattrvalues",
                    "iuid",
                    "igid",
                    "imode",
                ],
                _ => return None,
            },
        })
    }
}

/// Why an IMA list (or its replay) was refused. Offsets are into the list bytes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ImaError {
    #[error(transparent)]
    Truncated(#[from] Truncation),
    #[error("at byte {offset}: template name length {len} is outside 1..=255")]
    TemplateNameLength { offset: usize, len: u32 },
    #[error("at byte {offset}: \"ima\" template file name length {len} exceeds 255")]
    FileNameTooLong { offset: usize, len: u32 },
    #[error("at byte {offset}: template data holds more than {MAX_FIELDS} fields")]
    TooManyFields { offset: usize },
    #[error("at byte {offset}: template {template} has {found} fields, expected {expected}")]
    FieldCount {
        offset: usize,
        template: String,
        found: usize,
        expected: usize,
    },
    #[error("at byte {offset}: malformed {field} field: {reason}")]
    BadField {
        offset: usize,
        field: &'static str,
        reason: &'static str,
    },
    #[error("cannot skip {wanted} entries: the list holds {found}")]
    SkipPastEnd { wanted: usize, found: usize },
    #[error(
        "entry {index} at byte {offset}: template digest {logged} is not the SHA-1 \
         of its template data ({computed}): the list was altered"
    )]
    TemplateDigestMismatch {
        index: usize,
        offset: usize,
        logged: String,
        computed: String,
    },
    #[error("start value for the {bank} bank: {reason}")]
    BadStart { bank: HashAlg, reason: &'static str },
}

/// One measurement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImaEntry {
    /// Position in the whole list (counting entries skipped by incremental parsing),
    /// so findings name the same entry across re-attestations.
    pub index: usize,
    /// Byte offset of the record in the bytes parsed.
    pub offset: usize,
    pub pcr: u32,
    /// The SHA-1 template hash as logged; all zeros marks a violation.
    pub template_digest: [u8; 20],
    pub template: Template,
    /// The template data exactly as in the file: for "ima", `d | u32 len | name`;
    /// for the others the `u32 len | field` sequence the template hash covers.
    pub template_data: Vec<u8>,
    /// From d / d-ng / d-ngv2: the algorithm prefix without its ':' (e.g.
    /// `sha256`, `ima:sha256` for d-ngv2) and the file digest. The "ima"
    /// template's d is reported as `sha1` (it is SHA-1, or MD5 zero-padded).
    pub digest: Option<(String, Vec<u8>)>,
    /// From n / n-ng: the path, NUL stripped, non-UTF-8 bytes replaced.
    pub path: Option<String>,
    /// From sig: the `security.ima` xattr (type 0x03 = EVM_IMA_XATTR_DIGSIG);
    /// `None` when the field is empty (the file had no signature).
    pub signature: Option<Vec<u8>>,
    /// From buf: the measured buffer (kexec command line, keys, ...).
    pub buffer: Option<Vec<u8>>,
}

impl ImaEntry {
    /// A ToMToU / open-writers violation (`ima_add_violation`): logged with a zero
    /// digest, extended into the TPM as all-ones.
    pub fn is_violation(&self) -> bool {
        is_violation(&self.template_digest)
    }

    /// The template hash in `alg` (`ima_calc_field_array_hash_tfm`): the hash of
    /// the serialized fields, which for "ima" is `d | name zero-padded to 256`.
    pub fn template_hash(&self, alg: HashAlg) -> Vec<u8> {
        template_hash(&self.template, &self.template_data, alg).to_vec()
    }

    /// Whether the logged template digest is the SHA-1 of the template data
    /// (violations carry zeros, which no data hashes to, and are exempt).
    pub fn template_digest_matches(&self) -> bool {
        self.as_record().template_digest_matches()
    }

    /// The entry as the borrowed form the streaming functions take.
    pub fn as_record(&self) -> ImaRecord<'_> {
        ImaRecord {
            index: self.index,
            offset: self.offset,
            pcr: self.pcr,
            template_digest: self.template_digest,
            template: self.template.clone(),
            template_data: &self.template_data,
            digest: self
                .digest
                .as_ref()
                .map(|(alg, d)| (alg.as_str(), d.as_slice())),
            path: self.path.as_deref().map(Cow::Borrowed),
            signature: self.signature.as_deref(),
            buffer: self.buffer.as_deref(),
        }
    }

    /// The raw fields of a non-"ima" template, in order.
    pub fn fields(&self) -> Option<Vec<&[u8]>> {
        if self.template == Template::Ima {
            return None;
        }
        let mut r = LeReader::new(&self.template_data);
        let mut fields = Vec::new();
        while !r.is_empty() {
            let len = r.u32("field length").ok()?;
            fields.push(r.take_len(u64::from(len), "field").ok()?);
        }
        Some(fields)
    }
}

/// One measurement borrowed from the list bytes: what [`ImaEntries::next_record`]
/// yields, so a long list can be parsed, replayed and compared in one pass
/// without a copy of each entry. Fields as in [`ImaEntry`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImaRecord<'a> {
    pub index: usize,
    pub offset: usize,
    pub pcr: u32,
    pub template_digest: [u8; 20],
    pub template: Template,
    pub template_data: &'a [u8],
    pub digest: Option<(&'a str, &'a [u8])>,
    /// Borrowed unless the path is not UTF-8 (then lossily converted).
    pub path: Option<Cow<'a, str>>,
    pub signature: Option<&'a [u8]>,
    pub buffer: Option<&'a [u8]>,
}

impl ImaRecord<'_> {
    /// See [`ImaEntry::is_violation`].
    pub fn is_violation(&self) -> bool {
        is_violation(&self.template_digest)
    }

    /// See [`ImaEntry::template_hash`]; the value is on the stack.
    pub fn template_hash(&self, alg: HashAlg) -> Digest {
        template_hash(&self.template, self.template_data, alg)
    }

    /// See [`ImaEntry::template_digest_matches`].
    pub fn template_digest_matches(&self) -> bool {
        self.check_template_digest().is_ok()
    }

    /// [`ImaError::TemplateDigestMismatch`] naming this entry if its logged
    /// template digest is not the SHA-1 of its data (violations are exempt).
    pub fn check_template_digest(&self) -> Result<(), ImaError> {
        if self.is_violation() {
            return Ok(());
        }
        let sha1 = self.template_hash(HashAlg::Sha1);
        self.compare_template_digest(&sha1)
    }

    fn compare_template_digest(&self, sha1: &[u8]) -> Result<(), ImaError> {
        if sha1 == self.template_digest {
            return Ok(());
        }
        Err(ImaError::TemplateDigestMismatch {
            index: self.index,
            offset: self.offset,
            logged: hex(&self.template_digest),
            computed: hex(sha1),
        })
    }

    /// The owned form.
    pub fn to_entry(&self) -> ImaEntry {
        ImaEntry {
            index: self.index,
            offset: self.offset,
            pcr: self.pcr,
            template_digest: self.template_digest,
            template: self.template.clone(),
            template_data: self.template_data.to_vec(),
            digest: self.digest.map(|(alg, d)| (alg.to_owned(), d.to_vec())),
            path: self.path.as_ref().map(|p| p.clone().into_owned()),
            signature: self.signature.map(<[u8]>::to_vec),
            buffer: self.buffer.map(<[u8]>::to_vec),
        }
    }
}

/// `String::from_utf8_lossy`, with the faster validation of `from_utf8` first
/// (paths are nearly always UTF-8; this runs once per entry).
fn utf8_lossy(bytes: &[u8]) -> Cow<'_, str> {
    match std::str::from_utf8(bytes) {
        Ok(text) => Cow::Borrowed(text),
        Err(_) => String::from_utf8_lossy(bytes),
    }
}

fn is_violation(template_digest: &[u8; 20]) -> bool {
    template_digest.iter().all(|b| *b == 0)
}

fn template_hash(template: &Template, data: &[u8], alg: HashAlg) -> Digest {
    if *template == Template::Ima {
        let (d, name) = ima_template_parts(data);
        let mut padded = [0u8; IMA_EVENT_NAME_LEN_MAX + 1];
        // Parsing bounded the name to 255 bytes; `min` keeps this total.
        let n = name.len().min(IMA_EVENT_NAME_LEN_MAX);
        padded[..n].copy_from_slice(&name[..n]);
        alg.hash_parts(&[d, &padded])
    } else {
        alg.hash_parts(&[data])
    }
}

/// Splits "ima" template data into d and the name (layout checked at parse time).
fn ima_template_parts(data: &[u8]) -> (&[u8], &[u8]) {
    let (d, rest) = data.split_at(data.len().min(20));
    (d, rest.get(4..).unwrap_or(&[]))
}

/// A parsed measurement list (or the tail of one).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ImaList {
    pub entries: Vec<ImaEntry>,
}

impl ImaList {
    pub fn parse(bytes: &[u8]) -> Result<ImaList, ImaError> {
        ImaEntries::new(bytes)
            .collect::<Result<Vec<_>, _>>()
            .map(|entries| ImaList { entries })
    }

    /// Parses `bytes` but keeps only the entries after the first `skip_entries`
    /// (checked for layout, not interpreted), e.g. when the verifier already
    /// appraised them in an earlier round.
    pub fn parse_from(bytes: &[u8], skip_entries: usize) -> Result<ImaList, ImaError> {
        let mut entries = ImaEntries::new(bytes);
        entries.skip_entries(skip_entries)?;
        entries
            .collect::<Result<Vec<_>, _>>()
            .map(|entries| ImaList { entries })
    }
}

/// A streaming parser: yields entries one at a time and stops after an error.
/// As an iterator it yields owned [`ImaEntry`]s; [`Self::next_record`] yields
/// the borrowed [`ImaRecord`]s and allocates nothing for the built-in templates.
pub struct ImaEntries<'a> {
    reader: LeReader<'a>,
    next_index: usize,
    failed: bool,
}

/// A record split into its parts, borrowed from the input.
struct RawRecord<'a> {
    offset: usize,
    data_offset: usize,
    pcr: u32,
    template_digest: [u8; 20],
    template: Template,
    template_data: &'a [u8],
}

impl<'a> ImaEntries<'a> {
    pub fn new(bytes: &'a [u8]) -> Self {
        Self {
            reader: LeReader::new(bytes),
            next_index: 0,
            failed: false,
        }
    }

    /// Numbers entries from `first_index`: for a tail sent alone by a client that
    /// already reported that many entries.
    pub fn starting_at_index(mut self, first_index: usize) -> Self {
        self.next_index = first_index;
        self
    }

    /// Byte offset of the next record.
    pub fn offset(&self) -> usize {
        self.reader.offset()
    }

    /// Steps over `n` records without allocating for them.
    pub fn skip_entries(&mut self, n: usize) -> Result<(), ImaError> {
        for skipped in 0..n {
            if self.reader.is_empty() {
                return Err(ImaError::SkipPastEnd {
                    wanted: n,
                    found: skipped,
                });
            }
            if let Err(e) = self.read_raw() {
                self.failed = true;
                return Err(e);
            }
            self.next_index += 1;
        }
        Ok(())
    }

    /// The next entry, borrowed from the input; `None` at the end or after an
    /// error. The same entries, errors and numbering as the iterator.
    pub fn next_record(&mut self) -> Option<Result<ImaRecord<'a>, ImaError>> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let record = self.read_record();
        match &record {
            Ok(_) => self.next_index += 1,
            Err(_) => self.failed = true,
        }
        Some(record)
    }

    /// Checks the logged SHA-1 template digest of every remaining entry: the
    /// first altered one (or a parse error) is the error. For naming the entry
    /// after a replay without the check failed to reproduce a quote, and for
    /// tools that report on a list (the check is cheap to skip in appraisal;
    /// see [`ReplayOptions::check_template_digests`]).
    pub fn check_template_digests(mut self) -> Result<(), ImaError> {
        while let Some(record) = self.next_record() {
            record?.check_template_digest()?;
        }
        Ok(())
    }

    /// `ima_measurements_show`: pcr, template digest, name, [data length], data.
    fn read_raw(&mut self) -> Result<RawRecord<'a>, ImaError> {
        let r = &mut self.reader;
        let offset = r.offset();
        let pcr = r.u32("PCR index")?;
        let template_digest = r.array::<20>("template digest")?;
        let name_offset = r.offset();
        let name_len = r.u32("template name length")?;
        if name_len == 0 || name_len as usize > MAX_TEMPLATE_NAME_LEN {
            return Err(ImaError::TemplateNameLength {
                offset: name_offset,
                len: name_len,
            });
        }
        let name = r.take(name_len as usize, "template name")?;
        let template = Template::from_name_bytes(name);
        let data_offset = r.offset();
        let template_data = if template == Template::Ima {
            // The "ima" template has no data length: d is 20 raw bytes, then the
            // name as u32 strlen + bytes (IMA_SHOW_BINARY_OLD_STRING_FMT).
            let mark = r.mark();
            r.take(20, "\"ima\" template digest")?;
            let len_offset = r.offset();
            let len = r.u32("\"ima\" file name length")?;
            if len as usize > IMA_EVENT_NAME_LEN_MAX {
                return Err(ImaError::FileNameTooLong {
                    offset: len_offset,
                    len,
                });
            }
            r.take(len as usize, "\"ima\" file name")?;
            r.since(mark)
        } else {
            let len = r.u32("template data length")?;
            r.take_len(u64::from(len), "template data")?
        };
        Ok(RawRecord {
            offset,
            data_offset: if template == Template::Ima {
                data_offset
            } else {
                data_offset + 4
            },
            pcr,
            template_digest,
            template,
            template_data,
        })
    }

    fn read_record(&mut self) -> Result<ImaRecord<'a>, ImaError> {
        let raw = self.read_raw()?;
        let mut record = ImaRecord {
            index: self.next_index,
            offset: raw.offset,
            pcr: raw.pcr,
            template_digest: raw.template_digest,
            template: raw.template,
            template_data: raw.template_data,
            digest: None,
            path: None,
            signature: None,
            buffer: None,
        };
        if record.template == Template::Ima {
            let (d, name) = ima_template_parts(raw.template_data);
            record.digest = Some(("sha1", d));
            record.path = Some(utf8_lossy(name));
        } else {
            interpret_fields(&mut record, raw.data_offset)?;
        }
        Ok(record)
    }
}

impl Iterator for ImaEntries<'_> {
    type Item = Result<ImaEntry, ImaError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.next_record()
            .map(|record| record.map(|r| r.to_entry()))
    }
}

/// Splits the record's `u32 len | bytes` fields and fills it from the ones it
/// knows; `base` is the offset of the template data in the list.
fn interpret_fields(record: &mut ImaRecord<'_>, base: usize) -> Result<(), ImaError> {
    let data = record.template_data;
    let mut r = LeReader::with_base(data, base);
    let mut fields: [(usize, &[u8]); MAX_FIELDS] = [(0, &[]); MAX_FIELDS];
    let mut count = 0;
    while !r.is_empty() {
        if count == MAX_FIELDS {
            return Err(ImaError::TooManyFields { offset: r.offset() });
        }
        let len = r.u32("template field length")?;
        let offset = r.offset();
        fields[count] = (offset, r.take_len(u64::from(len), "template field")?);
        count += 1;
    }
    let fields = &fields[..count];
    let Some(ids) = record.template.field_ids() else {
        return Ok(());
    };
    if fields.len() != ids.len() {
        return Err(ImaError::FieldCount {
            offset: base,
            template: record.template.name().to_owned(),
            found: fields.len(),
            expected: ids.len(),
        });
    }
    for (id, &(offset, field)) in ids.iter().zip(fields) {
        match *id {
            "d-ng" | "d-ngv2" => record.digest = Some(parse_digest_ng(field, offset)?),
            "n-ng" => {
                let path = field.strip_suffix(&[0]).unwrap_or(field);
                record.path = Some(utf8_lossy(path));
            }
            "sig" => record.signature = (!field.is_empty()).then_some(field),
            "buf" => record.buffer = Some(field),
            _ => {}
        }
    }
    Ok(())
}

/// d-ng (`ima_eventdigest_init_common`): `algo ":" NUL digest`; d-ngv2 puts a
/// digest type first (`"ima:sha256:" NUL digest`).
fn parse_digest_ng(field: &[u8], offset: usize) -> Result<(&str, &[u8]), ImaError> {
    let bad = |reason| ImaError::BadField {
        offset,
        field: "d-ng",
        reason,
    };
    let nul = field
        .iter()
        .position(|b| *b == 0)
        .ok_or_else(|| bad("no algorithm prefix"))?;
    let (prefix, digest) = (&field[..nul], &field[nul + 1..]);
    let algo = prefix
        .strip_suffix(b":")
        .filter(|a| !a.is_empty())
        .ok_or_else(|| bad("algorithm prefix does not end in ':'"))?;
    let algo = std::str::from_utf8(algo).map_err(|_| bad("algorithm name is not text"))?;
    let hash_name = match algo.bytes().rposition(|b| b == b':') {
        Some(colon) => &algo[colon + 1..],
        None => algo,
    };
    if let Some(alg) = HashAlg::from_name(hash_name) {
        if digest.len() != alg.size() {
            return Err(bad("digest length does not match its algorithm"));
        }
    }
    if digest.is_empty() {
        return Err(bad("empty digest"));
    }
    Ok((algo, digest))
}

/// How the kernel filled PCR banks other than SHA-1.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BankHashing {
    /// Linux ≥ 5.8 (UNCONFIRMED exact version): each bank gets the template data
    /// hashed with that bank's algorithm.
    #[default]
    PerBank,
    /// Older kernels: the SHA-1 template digest zero-padded into every bank.
    PaddedSha1,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReplayOptions {
    /// The PCR to replay; entries measured into other PCRs are checked but skipped.
    pub pcr: u32,
    pub hashing: BankHashing,
    /// Check every entry's logged SHA-1 template digest against its data, and
    /// fail naming the first altered entry (the default). When the sha1 bank is
    /// replayed, or in [`BankHashing::PaddedSha1`] mode, the SHA-1 is computed
    /// anyway and always checked. Off, an entry whose data was altered shows
    /// only as PCR values that do not match a quote; appraisal turns it off and
    /// names the entry with [`ImaEntries::check_template_digests`] after such a
    /// mismatch (`appraisal.rs` says why that is sound).
    pub check_template_digests: bool,
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            pcr: IMA_PCR,
            hashing: BankHashing::PerBank,
            check_template_digests: true,
        }
    }
}

/// All-ones, what a violation extends (sliced to the bank's size).
const ALL_ONES: [u8; MAX_DIGEST_LEN] = [0xFF; MAX_DIGEST_LEN];

/// A replay fed one entry at a time, for callers that walk the list once
/// ([`ImaEntries::next_record`]) instead of collecting it; [`replay_with`] is
/// this over a slice.
#[derive(Clone, Debug)]
pub struct ImaReplay {
    /// Each bank once (a bank named twice is still extended once per entry),
    /// with its running value.
    pcrs: Vec<(HashAlg, Vec<u8>)>,
    options: ReplayOptions,
    /// Whether each entry's SHA-1 template hash is computed (then it is also
    /// compared with the logged one).
    sha1: bool,
}

impl ImaReplay {
    /// Starts each of `banks` from zeros or from `start` (the values after the
    /// entries of an earlier round).
    pub fn new(
        banks: &[HashAlg],
        start: Option<&BTreeMap<HashAlg, Vec<u8>>>,
        options: ReplayOptions,
    ) -> Result<Self, ImaError> {
        let mut pcrs: Vec<(HashAlg, Vec<u8>)> = Vec::with_capacity(banks.len());
        for bank in banks {
            if pcrs.iter().any(|(b, _)| b == bank) {
                continue;
            }
            let value = match start {
                None => vec![0; bank.size()],
                Some(start) => {
                    let value = start.get(bank).ok_or(ImaError::BadStart {
                        bank: *bank,
                        reason: "missing",
                    })?;
                    if value.len() != bank.size() {
                        return Err(ImaError::BadStart {
                            bank: *bank,
                            reason: "wrong length",
                        });
                    }
                    value.clone()
                }
            };
            pcrs.push((*bank, value));
        }
        let sha1 = options.check_template_digests
            || options.hashing == BankHashing::PaddedSha1
            || pcrs.iter().any(|(b, _)| *b == HashAlg::Sha1);
        Ok(Self {
            pcrs,
            options,
            sha1,
        })
    }

    /// Extends `entry` into every bank, if it was measured into the replayed PCR.
    pub fn extend(&mut self, entry: &ImaRecord<'_>) -> Result<(), ImaError> {
        if entry.is_violation() {
            // ima_queue.c: a violation invalidates the PCR with all-ones so that
            // no later quote can match a list that hides the event.
            if entry.pcr == self.options.pcr {
                for (bank, value) in &mut self.pcrs {
                    bank.extend(value, &ALL_ONES[..bank.size()]);
                }
            }
            return Ok(());
        }
        let sha1 = if self.sha1 {
            let sha1 = entry.template_hash(HashAlg::Sha1);
            entry.compare_template_digest(&sha1)?;
            Some(sha1)
        } else {
            None
        };
        if entry.pcr != self.options.pcr {
            return Ok(());
        }
        let sha1 = || sha1.unwrap_or_else(|| entry.template_hash(HashAlg::Sha1));
        for (bank, value) in &mut self.pcrs {
            match (*bank, self.options.hashing) {
                (HashAlg::Sha1, _) => bank.extend(value, &sha1()),
                (_, BankHashing::PerBank) => bank.extend(value, &entry.template_hash(*bank)),
                (_, BankHashing::PaddedSha1) => {
                    let mut padded = [0u8; MAX_DIGEST_LEN];
                    padded[..20].copy_from_slice(&sha1());
                    bank.extend(value, &padded[..bank.size()]);
                }
            }
        }
        Ok(())
    }

    /// The values per bank after the entries extended so far.
    pub fn finish(self) -> BTreeMap<HashAlg, Vec<u8>> {
        self.pcrs.into_iter().collect()
    }
}

/// Replays PCR 10 in each of `banks` with per-bank template hashes, from zeros or
/// from `start` (the values after the entries of an earlier round).
pub fn replay(
    entries: &[ImaEntry],
    banks: &[HashAlg],
    start: Option<&BTreeMap<HashAlg, Vec<u8>>>,
) -> Result<BTreeMap<HashAlg, Vec<u8>>, ImaError> {
    replay_with(entries, banks, start, ReplayOptions::default())
}

/// [`replay`] with a choice of PCR, bank hashing and template digest check.
/// With the check (the default), every entry's logged SHA-1 template digest is
/// checked against its data first: a mismatch means the list was altered after
/// the kernel wrote it, and is an error.
pub fn replay_with(
    entries: &[ImaEntry],
    banks: &[HashAlg],
    start: Option<&BTreeMap<HashAlg, Vec<u8>>>,
    options: ReplayOptions,
) -> Result<BTreeMap<HashAlg, Vec<u8>>, ImaError> {
    let mut replay = ImaReplay::new(banks, start, options)?;
    for entry in entries {
        replay.extend(&entry.as_record())?;
    }
    Ok(replay.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::from_hex;

    fn d_ng(algo: &str, digest: &[u8]) -> Vec<u8> {
        let mut f = format!("{algo}:").into_bytes();
        f.push(0);
        f.extend_from_slice(digest);
        f
    }

    fn n_ng(path: &str) -> Vec<u8> {
        let mut f = path.as_bytes().to_vec();
        f.push(0);
        f
    }

    fn template_data(fields: &[&[u8]]) -> Vec<u8> {
        let mut data = Vec::new();
        for f in fields {
            data.extend_from_slice(&(f.len() as u32).to_le_bytes());
            data.extend_from_slice(f);
        }
        data
    }

    fn record(pcr: u32, digest: [u8; 20], name: &str, data: &[u8], with_len: bool) -> Vec<u8> {
        let mut out = pcr.to_le_bytes().to_vec();
        out.extend_from_slice(&digest);
        out.extend_from_slice(&(name.len() as u32).to_le_bytes());
        out.extend_from_slice(name.as_bytes());
        if with_len {
            out.extend_from_slice(&(data.len() as u32).to_le_bytes());
        }
        out.extend_from_slice(data);
        out
    }

    fn sha1(parts: &[&[u8]]) -> [u8; 20] {
        let mut out = [0u8; 20];
        out.copy_from_slice(&HashAlg::Sha1.digest_parts(parts));
        out
    }

    /// A well-formed entry of a d-ng-style template with a correct template digest.
    fn ng_entry(name: &str, fields: &[&[u8]]) -> Vec<u8> {
        let data = template_data(fields);
        record(IMA_PCR, sha1(&[&data]), name, &data, true)
    }

    fn ima_entry(d: [u8; 20], path: &str) -> Vec<u8> {
        let mut padded = path.as_bytes().to_vec();
        padded.resize(256, 0);
        let mut data = d.to_vec();
        data.extend_from_slice(&(path.len() as u32).to_le_bytes());
        data.extend_from_slice(path.as_bytes());
        record(IMA_PCR, sha1(&[&d, &padded]), "ima", &data, false)
    }

    fn violation() -> Vec<u8> {
        let data = template_data(&[&d_ng("sha256", &[0; 32]), &n_ng("/var/log/x")]);
        record(IMA_PCR, [0; 20], "ima-ng", &data, true)
    }

    fn sample_list() -> Vec<u8> {
        let mut list = ng_entry(
            "ima-ng",
            &[&d_ng("sha1", &[1; 20]), &n_ng("boot_aggregate")],
        );
        list.extend(ima_entry([2; 20], "/init"));
        list.extend(ng_entry(
            "ima-ng",
            &[&d_ng("sha256", &[3; 32]), &n_ng("/usr/bin/sh")],
        ));
        list.extend(ng_entry(
            "ima-ng",
            &[&d_ng("sm3", &[4; 32]), &n_ng("/usr/bin/ls")],
        ));
        list.extend(ng_entry(
            "ima-sig",
            &[
                &d_ng("sha256", &[5; 32]),
                &n_ng("/usr/bin/su"),
                &[3, 2, 4, 0xAA, 0xBB],
            ],
        ));
        list.extend(ng_entry(
            "ima-buf",
            &[
                &d_ng("sha256", &[6; 32]),
                &n_ng("kexec-cmdline"),
                b"root=/dev/sda1",
            ],
        ));
        list.extend(violation());
        list.extend(ng_entry(
            "ima-sig",
            &[&d_ng("sha256", &[7; 32]), &n_ng("/usr/bin/id"), b""],
        ));
        list
    }

    #[test]
    fn parses_every_template() {
        let bytes = sample_list();
        let list = ImaList::parse(&bytes).unwrap();
        let e = &list.entries;
        assert_eq!(e.len(), 8);
        assert_eq!(e[0].template, Template::ImaNg);
        assert_eq!(e[0].digest, Some(("sha1".to_owned(), vec![1; 20])));
        assert_eq!(e[0].path.as_deref(), Some("boot_aggregate"));
        assert_eq!(e[1].template, Template::Ima);
        assert_eq!(e[1].digest, Some(("sha1".to_owned(), vec![2; 20])));
        assert_eq!(e[1].path.as_deref(), Some("/init"));
        assert_eq!(e[2].digest, Some(("sha256".to_owned(), vec![3; 32])));
        assert_eq!(e[3].digest, Some(("sm3".to_owned(), vec![4; 32])));
        assert_eq!(e[4].template, Template::ImaSig);
        assert_eq!(e[4].signature.as_deref(), Some(&[3, 2, 4, 0xAA, 0xBB][..]));
        assert_eq!(e[5].template, Template::ImaBuf);
        assert_eq!(e[5].buffer.as_deref(), Some(&b"root=/dev/sda1"[..]));
        assert_eq!(e[5].path.as_deref(), Some("kexec-cmdline"));
        assert!(e[6].is_violation() && !e[5].is_violation());
        assert_eq!(e[7].signature, None);
        for (i, entry) in e.iter().enumerate() {
            assert_eq!(entry.index, i);
            assert!(entry.template_digest_matches());
        }
        assert_eq!(e[1].offset, bytes.len() - sample_list_tail_len(&bytes, 1));
        assert_eq!(e[4].fields().map(|f| f.len()), Some(3));
    }

    /// Bytes from entry `i` to the end, recomputed by re-parsing from that entry.
    fn sample_list_tail_len(bytes: &[u8], i: usize) -> usize {
        let mut it = ImaEntries::new(bytes);
        it.skip_entries(i).unwrap();
        bytes.len() - it.offset()
    }

    #[test]
    fn ima_template_hash_known_answer() {
        // Python: sha1(b"\x02"*20 + b"/init".ljust(256, b"\0")).hexdigest()
        let entry = &ImaList::parse(&ima_entry([2; 20], "/init"))
            .unwrap()
            .entries[0];
        assert_eq!(
            hex(&entry.template_hash(HashAlg::Sha1)),
            "d95fd2b8d2eb604a7ba50f5784229bdb05bfa11e"
        );
    }

    #[test]
    fn replay_known_answer() {
        // One ima-ng entry, then a violation. Python:
        //   data = pack("<I", 26) + b"sha1:\0" + b"\1"*20 + pack("<I", 15) + b"boot_aggregate\0"
        //   p = sha256(bytes(32) + sha256(data).digest()).digest()
        //   p = sha256(p + b"\xff"*32).hexdigest()
        let mut bytes = ng_entry(
            "ima-ng",
            &[&d_ng("sha1", &[1; 20]), &n_ng("boot_aggregate")],
        );
        bytes.extend(violation());
        let list = ImaList::parse(&bytes).unwrap();
        let pcrs = replay(&list.entries, &[HashAlg::Sha256], None).unwrap();
        assert_eq!(
            hex(&pcrs[&HashAlg::Sha256]),
            "12691ac5d0b20dc0fdd275c8e8c18c947c3216a0d844bff0810cf2b9cdf3d862"
        );
    }

    #[test]
    fn violation_extends_all_ones() {
        let list = ImaList::parse(&violation()).unwrap();
        let pcrs = replay(&list.entries, &[HashAlg::Sha1, HashAlg::Sha384], None).unwrap();
        for bank in [HashAlg::Sha1, HashAlg::Sha384] {
            let expected = bank.digest_parts(&[&vec![0; bank.size()], &vec![0xFF; bank.size()]]);
            assert_eq!(pcrs[&bank], expected);
        }
    }

    #[test]
    fn incremental_replay_equals_full_replay() {
        let bytes = sample_list();
        let banks = [
            HashAlg::Sha1,
            HashAlg::Sha256,
            HashAlg::Sm3,
            HashAlg::Sha256,
        ];
        let full = ImaList::parse(&bytes).unwrap();
        let all = replay(&full.entries, &banks, None).unwrap();
        assert_eq!(all.len(), 3);
        for split in 0..=full.entries.len() {
            let head = replay(&full.entries[..split], &banks, None).unwrap();
            let tail = ImaList::parse_from(&bytes, split).unwrap();
            assert_eq!(tail.entries[..], full.entries[split..]);
            assert_eq!(replay(&tail.entries, &banks, Some(&head)).unwrap(), all);
            // The same tail sent alone, numbered on from the earlier round.
            let offset = full.entries.get(split).map_or(bytes.len(), |e| e.offset);
            let alone: Vec<ImaEntry> = ImaEntries::new(&bytes[offset..])
                .starting_at_index(split)
                .collect::<Result<_, _>>()
                .unwrap();
            assert_eq!(
                alone.iter().map(|e| e.index).collect::<Vec<_>>(),
                tail.entries.iter().map(|e| e.index).collect::<Vec<_>>()
            );
        }
        assert_eq!(
            ImaList::parse_from(&bytes, 9),
            Err(ImaError::SkipPastEnd {
                wanted: 9,
                found: 8
            })
        );
    }

    #[test]
    fn per_bank_and_padded_sha1_differ_only_off_sha1() {
        let bytes = sample_list();
        let list = ImaList::parse(&bytes).unwrap();
        let banks = [HashAlg::Sha1, HashAlg::Sha256];
        let per_bank = replay(&list.entries, &banks, None).unwrap();
        let padded = ReplayOptions {
            hashing: BankHashing::PaddedSha1,
            ..ReplayOptions::default()
        };
        let old = replay_with(&list.entries, &banks, None, padded).unwrap();
        assert_eq!(per_bank[&HashAlg::Sha1], old[&HashAlg::Sha1]);
        assert_ne!(per_bank[&HashAlg::Sha256], old[&HashAlg::Sha256]);
        // Padded mode by hand for the first entry.
        let one = replay_with(&list.entries[..1], &[HashAlg::Sha256], None, padded).unwrap();
        let mut d = list.entries[0].template_digest.to_vec();
        d.resize(32, 0);
        assert_eq!(
            one[&HashAlg::Sha256],
            HashAlg::Sha256.digest_parts(&[&[0; 32], &d])
        );
        // Per-bank mode by hand: the bank's hash over the same template data.
        let one = replay(&list.entries[2..3], &[HashAlg::Sm3], None).unwrap();
        let d = HashAlg::Sm3.digest(&list.entries[2].template_data);
        assert_eq!(
            one[&HashAlg::Sm3],
            HashAlg::Sm3.digest_parts(&[&[0; 32], &d])
        );
    }

    #[test]
    fn other_pcrs_are_checked_but_not_extended() {
        let data = template_data(&[&d_ng("sha1", &[1; 20]), &n_ng("/x")]);
        let bytes = record(11, sha1(&[&data]), "ima-ng", &data, true);
        let list = ImaList::parse(&bytes).unwrap();
        let pcrs = replay(&list.entries, &[HashAlg::Sha1], None).unwrap();
        assert_eq!(pcrs[&HashAlg::Sha1], vec![0; 20]);
        let opts = ReplayOptions {
            pcr: 11,
            ..ReplayOptions::default()
        };
        assert_ne!(
            replay_with(&list.entries, &[HashAlg::Sha1], None, opts).unwrap()[&HashAlg::Sha1],
            vec![0; 20]
        );
    }

    #[test]
    fn detects_tampered_template_digest() {
        let mut bytes = sample_list();
        let list = ImaList::parse(&bytes).unwrap();
        let target = &list.entries[4];
        // Change the path inside the template data; the logged digest stays.
        let at = target.offset + 4 + 20 + 4 + "ima-sig".len() + 4 + 4 + 40 + 4 + 9;
        assert_eq!(bytes[at], b's');
        bytes[at] = b'x';
        let list = ImaList::parse(&bytes).unwrap();
        assert_eq!(list.entries[4].path.as_deref(), Some("/usr/bin/xu"));
        assert!(!list.entries[4].template_digest_matches());
        assert!(matches!(
            replay(&list.entries, &[HashAlg::Sha256], None),
            Err(ImaError::TemplateDigestMismatch { index: 4, .. })
        ));
        // Without the check (appraisal's mode when no sha1 bank is replayed) the
        // altered data still shows, as a PCR value the kernel never produced;
        // the explicit check then names the entry.
        let unchecked = ReplayOptions {
            check_template_digests: false,
            ..ReplayOptions::default()
        };
        let original = ImaList::parse(&sample_list()).unwrap();
        let genuine = replay(&original.entries, &[HashAlg::Sha256], None).unwrap();
        let altered = replay_with(&list.entries, &[HashAlg::Sha256], None, unchecked).unwrap();
        assert_ne!(altered, genuine);
        assert!(matches!(
            ImaEntries::new(&bytes).check_template_digests(),
            Err(ImaError::TemplateDigestMismatch { index: 4, .. })
        ));
        assert_eq!(
            ImaEntries::new(&sample_list()).check_template_digests(),
            Ok(())
        );
        // A replayed sha1 bank computes the SHA-1 anyway, and checks it.
        for hashing in [BankHashing::PerBank, BankHashing::PaddedSha1] {
            let opts = ReplayOptions {
                hashing,
                ..unchecked
            };
            assert!(matches!(
                replay_with(&list.entries, &[HashAlg::Sha1], None, opts),
                Err(ImaError::TemplateDigestMismatch { index: 4, .. })
            ));
        }
        let opts = ReplayOptions {
            hashing: BankHashing::PaddedSha1,
            ..unchecked
        };
        assert!(replay_with(&list.entries, &[HashAlg::Sha256], None, opts).is_err());
    }

    #[test]
    fn records_match_entries_and_stream_the_same_replay() {
        let bytes = sample_list();
        let list = ImaList::parse(&bytes).unwrap();
        let banks = [HashAlg::Sha1, HashAlg::Sha256, HashAlg::Sm3];
        let unchecked = ReplayOptions {
            check_template_digests: false,
            ..ReplayOptions::default()
        };
        let mut records = ImaEntries::new(&bytes);
        let mut streamed = ImaReplay::new(&banks[1..], None, unchecked).unwrap();
        let mut checked = ImaReplay::new(&banks, None, ReplayOptions::default()).unwrap();
        for entry in &list.entries {
            let record = records.next_record().unwrap().unwrap();
            assert_eq!(record, entry.as_record());
            assert_eq!(record.to_entry(), *entry);
            assert_eq!(
                &*record.template_hash(HashAlg::Sm3),
                &entry.template_hash(HashAlg::Sm3)[..]
            );
            streamed.extend(&record).unwrap();
            checked.extend(&record).unwrap();
        }
        assert!(records.next_record().is_none());
        let all = replay(&list.entries, &banks, None).unwrap();
        assert_eq!(checked.finish(), all);
        let mut some = all.clone();
        some.remove(&HashAlg::Sha1);
        assert_eq!(streamed.finish(), some);
        // A non-UTF-8 path is converted as before; a parse error ends the stream.
        let data = template_data(&[&d_ng("sha1", &[1; 20]), b"/x\xff\0"]);
        let mut bytes = record(IMA_PCR, sha1(&[&data]), "ima-ng", &data, true);
        bytes.push(1);
        let mut records = ImaEntries::new(&bytes);
        let record = records.next_record().unwrap().unwrap();
        assert_eq!(record.path.as_deref(), Some("/x\u{fffd}"));
        assert!(records.next_record().unwrap().is_err());
        assert!(records.next_record().is_none());
    }

    #[test]
    fn every_truncation_is_refused() {
        let bytes = sample_list();
        let full = ImaList::parse(&bytes).unwrap();
        let mut ok_at: Vec<usize> = full.entries.iter().map(|e| e.offset).collect();
        ok_at.push(bytes.len());
        for len in 0..bytes.len() {
            let result = ImaList::parse(&bytes[..len]);
            if ok_at.contains(&len) {
                let list = result.unwrap();
                assert_eq!(list.entries[..], full.entries[..list.entries.len()]);
            } else {
                assert!(result.is_err(), "prefix of {len} bytes accepted");
            }
        }
    }

    #[test]
    fn refuses_malformed_records() {
        // Template name lengths 0 and 256.
        for len in [0u32, 256] {
            let mut bytes = vec![10, 0, 0, 0];
            bytes.extend([0; 20]);
            bytes.extend(len.to_le_bytes());
            bytes.extend(vec![b'a'; len as usize]);
            assert_eq!(
                ImaList::parse(&bytes),
                Err(ImaError::TemplateNameLength { offset: 24, len })
            );
        }
        // "ima" file name over 255 bytes.
        let mut data = [2u8; 20].to_vec();
        data.extend(256u32.to_le_bytes());
        data.extend([b'a'; 256]);
        let bytes = record(10, [1; 20], "ima", &data, false);
        assert!(matches!(
            ImaList::parse(&bytes),
            Err(ImaError::FileNameTooLong { len: 256, .. })
        ));
        // Wrong number of fields for ima-sig.
        let bytes = ng_entry("ima-sig", &[&d_ng("sha1", &[1; 20]), &n_ng("/x")]);
        assert!(matches!(
            ImaList::parse(&bytes),
            Err(ImaError::FieldCount {
                found: 2,
                expected: 3,
                ..
            })
        ));
        // Too many fields for an unknown template.
        let sixteen = vec![&b"f"[..]; 16];
        assert!(matches!(
            ImaList::parse(&ng_entry("custom", &sixteen)),
            Err(ImaError::TooManyFields { .. })
        ));
        // An unknown template with a few fields is kept uninterpreted.
        let list = ImaList::parse(&ng_entry("custom", &sixteen[..3])).unwrap();
        assert_eq!(
            list.entries[0].template,
            Template::Other("custom".to_owned())
        );
        assert_eq!(list.entries[0].digest, None);
        // Bad d-ng fields: no prefix, wrong length for the algorithm.
        for d in [vec![1u8; 20], d_ng("sha256", &[1; 20]), d_ng("", &[1; 20])] {
            let bytes = ng_entry("ima-ng", &[&d, &n_ng("/x")]);
            assert!(matches!(
                ImaList::parse(&bytes),
                Err(ImaError::BadField { field: "d-ng", .. })
            ));
        }
        // A field length running past the template data.
        let mut data = template_data(&[&d_ng("sha1", &[1; 20])]);
        data.extend(100u32.to_le_bytes());
        let bytes = record(10, sha1(&[&data]), "ima-ng", &data, true);
        assert!(matches!(
            ImaList::parse(&bytes),
            Err(ImaError::Truncated(_))
        ));
        // Bad start values.
        assert!(matches!(
            replay(&[], &[HashAlg::Sha256], Some(&BTreeMap::new())),
            Err(ImaError::BadStart {
                reason: "missing",
                ..
            })
        ));
        let start = BTreeMap::from([(HashAlg::Sha256, vec![0; 20])]);
        assert!(matches!(
            replay(&[], &[HashAlg::Sha256], Some(&start)),
            Err(ImaError::BadStart {
                reason: "wrong length",
                ..
            })
        ));
    }

    #[test]
    fn ngv2_prefix_is_kept_whole() {
        let bytes = ng_entry("ima-ngv2", &[&d_ng("ima:sha256", &[9; 32]), &n_ng("/x")]);
        let list = ImaList::parse(&bytes).unwrap();
        assert_eq!(
            list.entries[0].digest,
            Some(("ima:sha256".to_owned(), vec![9; 32]))
        );
        assert!(from_hex("00").is_some());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::num::u8::ANY, 0..512)) {
            if let Ok(list) = ImaList::parse(&bytes) {
                let _ = replay(&list.entries, &HashAlg::ALL, None);
            }
        }

        #[test]
        fn corrupted_lists_never_panic(at in 0usize..2000, value in proptest::num::u8::ANY) {
            let mut bytes = sample_list();
            let at = at % bytes.len();
            bytes[at] = value;
            if let Ok(list) = ImaList::parse(&bytes) {
                let _ = replay(&list.entries, &HashAlg::ALL, None);
                let _ = list.entries.iter().map(ImaEntry::fields).count();
            }
        }
    }
}
