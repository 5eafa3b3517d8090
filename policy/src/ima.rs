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

use std::collections::BTreeMap;

use crate::digest::{hex, HashAlg};
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
        match name {
            "ima" => Self::Ima,
            "ima-ng" => Self::ImaNg,
            "ima-sig" => Self::ImaSig,
            "ima-buf" => Self::ImaBuf,
            other => Self::Other(other.to_owned()),
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
        self.template_digest.iter().all(|b| *b == 0)
    }

    /// The template hash in `alg` (`ima_calc_field_array_hash_tfm`): the hash of
    /// the serialized fields, which for "ima" is `d | name zero-padded to 256`.
    pub fn template_hash(&self, alg: HashAlg) -> Vec<u8> {
        if self.template == Template::Ima {
            let (d, name) = ima_template_parts(&self.template_data);
            let mut padded = [0u8; IMA_EVENT_NAME_LEN_MAX + 1];
            // Parsing bounded the name to 255 bytes; `min` keeps this total.
            let n = name.len().min(IMA_EVENT_NAME_LEN_MAX);
            padded[..n].copy_from_slice(&name[..n]);
            alg.digest_parts(&[d, &padded])
        } else {
            alg.digest(&self.template_data)
        }
    }

    /// Whether the logged template digest is the SHA-1 of the template data
    /// (violations carry zeros, which no data hashes to, and are exempt).
    pub fn template_digest_matches(&self) -> bool {
        self.is_violation() || self.template_hash(HashAlg::Sha1) == self.template_digest
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
        let template = Template::from_name(&String::from_utf8_lossy(name));
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

    fn read_entry(&mut self) -> Result<ImaEntry, ImaError> {
        let raw = self.read_raw()?;
        let mut entry = ImaEntry {
            index: self.next_index,
            offset: raw.offset,
            pcr: raw.pcr,
            template_digest: raw.template_digest,
            template: raw.template,
            template_data: raw.template_data.to_vec(),
            digest: None,
            path: None,
            signature: None,
            buffer: None,
        };
        if entry.template == Template::Ima {
            let (d, name) = ima_template_parts(raw.template_data);
            entry.digest = Some(("sha1".to_owned(), d.to_vec()));
            entry.path = Some(String::from_utf8_lossy(name).into_owned());
        } else {
            interpret_fields(&mut entry, raw.template_data, raw.data_offset)?;
        }
        Ok(entry)
    }
}

impl Iterator for ImaEntries<'_> {
    type Item = Result<ImaEntry, ImaError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.failed || self.reader.is_empty() {
            return None;
        }
        let entry = self.read_entry();
        match &entry {
            Ok(_) => self.next_index += 1,
            Err(_) => self.failed = true,
        }
        Some(entry)
    }
}

/// Splits `u32 len | bytes` fields and fills the entry from the ones it knows.
fn interpret_fields(entry: &mut ImaEntry, data: &[u8], base: usize) -> Result<(), ImaError> {
    let mut r = LeReader::with_base(data, base);
    let mut fields: Vec<(usize, &[u8])> = Vec::new();
    while !r.is_empty() {
        if fields.len() == MAX_FIELDS {
            return Err(ImaError::TooManyFields { offset: r.offset() });
        }
        let len = r.u32("template field length")?;
        let offset = r.offset();
        fields.push((offset, r.take_len(u64::from(len), "template field")?));
    }
    let Some(ids) = entry.template.field_ids() else {
        return Ok(());
    };
    if fields.len() != ids.len() {
        return Err(ImaError::FieldCount {
            offset: base,
            template: entry.template.name().to_owned(),
            found: fields.len(),
            expected: ids.len(),
        });
    }
    for (id, (offset, field)) in ids.iter().zip(fields) {
        match *id {
            "d-ng" | "d-ngv2" => entry.digest = Some(parse_digest_ng(field, offset)?),
            "n-ng" => {
                let path = field.strip_suffix(&[0]).unwrap_or(field);
                entry.path = Some(String::from_utf8_lossy(path).into_owned());
            }
            "sig" => entry.signature = (!field.is_empty()).then(|| field.to_vec()),
            "buf" => entry.buffer = Some(field.to_vec()),
            _ => {}
        }
    }
    Ok(())
}

/// d-ng (`ima_eventdigest_init_common`): `algo ":" NUL digest`; d-ngv2 puts a
/// digest type first (`"ima:sha256:" NUL digest`).
fn parse_digest_ng(field: &[u8], offset: usize) -> Result<(String, Vec<u8>), ImaError> {
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
    let hash_name = algo.rsplit(':').next().unwrap_or(algo);
    if let Some(alg) = HashAlg::from_name(hash_name) {
        if digest.len() != alg.size() {
            return Err(bad("digest length does not match its algorithm"));
        }
    }
    if digest.is_empty() {
        return Err(bad("empty digest"));
    }
    Ok((algo.to_owned(), digest.to_vec()))
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
}

impl Default for ReplayOptions {
    fn default() -> Self {
        Self {
            pcr: IMA_PCR,
            hashing: BankHashing::PerBank,
        }
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

/// [`replay`] with a choice of PCR and bank hashing. Every entry's logged SHA-1
/// template digest is checked against its data first: a mismatch means the list
/// was altered after the kernel wrote it, and is an error.
pub fn replay_with(
    entries: &[ImaEntry],
    banks: &[HashAlg],
    start: Option<&BTreeMap<HashAlg, Vec<u8>>>,
    options: ReplayOptions,
) -> Result<BTreeMap<HashAlg, Vec<u8>>, ImaError> {
    // A map, so a bank named twice is still extended once per entry.
    let mut pcrs: BTreeMap<HashAlg, Vec<u8>> = BTreeMap::new();
    for bank in banks {
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
        pcrs.insert(*bank, value);
    }

    for entry in entries {
        if entry.is_violation() {
            // ima_queue.c: a violation invalidates the PCR with all-ones so that
            // no later quote can match a list that hides the event.
            if entry.pcr == options.pcr {
                for (bank, value) in pcrs.iter_mut() {
                    bank.extend(value, &vec![0xFF; bank.size()]);
                }
            }
            continue;
        }
        let sha1 = entry.template_hash(HashAlg::Sha1);
        if sha1 != entry.template_digest {
            return Err(ImaError::TemplateDigestMismatch {
                index: entry.index,
                offset: entry.offset,
                logged: hex(&entry.template_digest),
                computed: hex(&sha1),
            });
        }
        if entry.pcr != options.pcr {
            continue;
        }
        for (bank, value) in pcrs.iter_mut() {
            let digest = match (bank, options.hashing) {
                (HashAlg::Sha1, _) => sha1.clone(),
                (_, BankHashing::PerBank) => entry.template_hash(*bank),
                (_, BankHashing::PaddedSha1) => {
                    let mut padded = sha1.clone();
                    padded.resize(bank.size(), 0);
                    padded
                }
            };
            bank.extend(value, &digest);
        }
    }
    Ok(pcrs)
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
