//! Appraisal: from a device's evidence, the challenge it answered, reference
//! values and what the last appraisal of the same device remembered, to a verdict
//! with findings. A pure function: the caller passes `now` and stores the state.
//!
//! Nothing is taken on faith. The quote is verified first (AK, signature, nonce,
//! selection); then the event log and the IMA list are *replayed* and must
//! reproduce the quoted PCR digest (never PCR values read separately from the
//! quote: that is a race, see tpm2-tools #2376, Keylime #585); only then are the
//! events compared with reference values. Evidence that is not genuine means
//! *no access*; genuine evidence of a state the reference values do not allow
//! means *isolate*; missing reference values are findings, never silence.

use crate::digest::{hex, HashAlg};
use crate::eventlog::{EventLog, Replay, EV_IPL, EV_NO_ACTION};
use crate::ima::{self, ImaEntries, ImaRecord};
use crate::quote::{verify_quote, QuoteExpectation, VerifiedQuote};
use crate::reference::{
    CompiledIma, CompiledReference, CMDLINE_PCR, CMDLINE_PREFIX, IMA_PCR, KERNEL_PCR,
};
use crate::tpm::{pcr_digest, PcrSelection, PcrValues, Public, Signature};
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

/// The decision, ordered from best to worst.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Allow,
    /// Genuine evidence of a state the policy does not allow: quarantine.
    Isolate,
    /// Evidence that cannot be trusted: no access at all.
    NoAccess,
}

impl Verdict {
    pub fn name(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Isolate => "isolate",
            Self::NoAccess => "no access",
        }
    }

    /// The verdict as metrics labels and the admin API's JSON spell it:
    /// one word each (allow, isolate, no-access).
    pub fn label(self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Isolate => "isolate",
            Self::NoAccess => "no-access",
        }
    }

    /// The verdict [`Verdict::name`] names ("no-access" also accepted).
    pub fn from_name(name: &str) -> Option<Self> {
        match name {
            "allow" => Some(Self::Allow),
            "isolate" => Some(Self::Isolate),
            "no access" | "no-access" => Some(Self::NoAccess),
            _ => None,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What part of the evidence a finding is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Area {
    Quote,
    Counters,
    EventLog,
    Ima,
    Replay,
    Boot,
    Kernel,
    CommandLine,
    Application,
    Reference,
}

/// One observation, with what it implies for the verdict and the details an
/// operator needs to check it: PCR, event, path, expected and seen digest.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finding {
    /// The verdict this finding alone implies (`Allow` for information).
    pub severity: Verdict,
    pub area: Area,
    pub message: String,
    pub pcr: Option<u32>,
    /// Event index in the event log, or entry index in the IMA list.
    pub event: Option<usize>,
    pub path: Option<String>,
    pub expected: Option<String>,
    pub seen: Option<String>,
}

impl Finding {
    fn new(severity: Verdict, area: Area, message: impl Into<String>) -> Self {
        Self {
            severity,
            area,
            message: message.into(),
            pcr: None,
            event: None,
            path: None,
            expected: None,
            seen: None,
        }
    }

    fn pcr(mut self, pcr: u32) -> Self {
        self.pcr = Some(pcr);
        self
    }

    fn event(mut self, index: usize) -> Self {
        self.event = Some(index);
        self
    }

    fn path(mut self, path: &str) -> Self {
        self.path = Some(path.to_string());
        self
    }

    fn expected(mut self, e: impl Into<String>) -> Self {
        self.expected = Some(e.into());
        self
    }

    fn seen(mut self, s: impl Into<String>) -> Self {
        self.seen = Some(s.into());
        self
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[{}] {}", self.severity, self.message)?;
        if let Some(p) = self.pcr {
            write!(f, "; PCR {p}")?;
        }
        if let Some(e) = self.event {
            write!(f, "; event {e}")?;
        }
        if let Some(p) = &self.path {
            write!(f, "; path {p}")?;
        }
        if let Some(e) = &self.expected {
            write!(f, "; expected {e}")?;
        }
        if let Some(s) = &self.seen {
            write!(f, "; seen {s}")?;
        }
        Ok(())
    }
}

/// What the device sent.
#[derive(Clone, Copy, Debug)]
pub struct Evidence<'a> {
    /// TPMS_ATTEST as signed (no size prefix).
    pub attest: &'a [u8],
    /// TPMT_SIGNATURE.
    pub signature: &'a [u8],
    /// The whole UEFI event log.
    pub event_log: &'a [u8],
    /// IMA entries from entry `ima_offset` on (the whole list when 0).
    pub ima: &'a [u8],
    pub ima_offset: usize,
}

/// What the verifier asked for.
#[derive(Clone, Copy, Debug)]
pub struct Challenge<'a> {
    pub nonce: &'a [u8],
    pub selection: &'a [PcrSelection],
    /// Accept quotes signed over SHA-1 (`QuoteExpectation::allow_sha1`).
    pub allow_sha1: bool,
}

/// What one appraisal remembers for the next one of the same device.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DeviceState {
    pub reset_count: u32,
    pub restart_count: u32,
    pub clock: u64,
    /// IMA entries appraised so far (the next evidence starts there).
    pub ima_entries: usize,
    /// PCR 10 per bank after those entries.
    pub pcr10: BTreeMap<HashAlg, Vec<u8>>,
    /// Key applications measured since boot.
    pub key_applications_seen: BTreeSet<String>,
    /// IMA entries of this boot that the policy did not allow (unknown or
    /// modified files, violations). The list only grows and each round sees
    /// only new entries, so these are appraised again every round against
    /// the current reference values, until they are allowed or the device
    /// reboots. At most [`MAX_FLAGGED_ENTRIES`] are kept (then the device
    /// stays isolated until reboot; see `overflowed`).
    pub ima_flagged: Vec<FlaggedEntry>,
    /// More entries were flagged than kept: the device is not allowed again
    /// before it reboots.
    pub ima_flagged_overflow: bool,
    /// When (caller's clock, seconds) this state was appraised.
    pub appraised_at: u64,
}

/// Flagged IMA entries a device state carries at most.
pub const MAX_FLAGGED_ENTRIES: usize = 256;

/// An IMA entry the policy did not allow when it was appraised.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlaggedEntry {
    pub index: usize,
    pub path: String,
    /// The file digest as logged (empty for a violation).
    pub digest: Vec<u8>,
    /// Measured while open for writing: its contents are unknown for good.
    pub violation: bool,
}

/// The outcome.
#[derive(Clone, Debug)]
pub struct Appraisal {
    pub verdict: Verdict,
    pub findings: Vec<Finding>,
    /// The state to store for the next appraisal: present only when the evidence
    /// was genuine (quote verified, logs replayed to it).
    pub next_state: Option<DeviceState>,
    pub quote: Option<VerifiedQuote>,
}

impl Appraisal {
    fn from(
        findings: Vec<Finding>,
        next_state: Option<DeviceState>,
        quote: Option<VerifiedQuote>,
    ) -> Self {
        let verdict = findings
            .iter()
            .map(|f| f.severity)
            .max()
            .unwrap_or(Verdict::Allow);
        Self {
            verdict,
            findings,
            next_state,
            quote,
        }
    }

    fn refuse(finding: Finding) -> Self {
        Self::from(vec![finding], None, None)
    }
}

/// PCR reset values (TPM PC Client profile): 0 except PCRs 17-22 (all ones until
/// a dynamic launch).
fn reset_value(bank: HashAlg, pcr: u32) -> Vec<u8> {
    let byte = if (17..=22).contains(&pcr) { 0xFF } else { 0 };
    vec![byte; bank.size()]
}

/// Appraises `evidence` from the device whose AK is `ak`.
pub fn appraise(
    ak: &Public,
    evidence: &Evidence<'_>,
    challenge: &Challenge<'_>,
    reference: &CompiledReference,
    prior: Option<&DeviceState>,
    now: u64,
) -> Appraisal {
    // 1. The quote: made by this AK, for this nonce, over the PCRs asked for.
    let signature = match Signature::parse(evidence.signature) {
        Ok(s) => s,
        Err(e) => {
            return Appraisal::refuse(Finding::new(
                Verdict::NoAccess,
                Area::Quote,
                format!("quote signature does not parse: {e}"),
            ))
        }
    };
    let expectation = QuoteExpectation {
        nonce: challenge.nonce,
        selection: Some(challenge.selection),
        pcr_values: None,
        allow_sha1: challenge.allow_sha1,
    };
    let quote = match verify_quote(ak, evidence.attest, &signature, &expectation) {
        Ok(q) => q,
        Err(e) => {
            return Appraisal::refuse(Finding::new(Verdict::NoAccess, Area::Quote, e.to_string()))
        }
    };
    let mut findings = Vec::new();

    // 2. TPM counters against the last appraisal: a reboot is noticed, a rewind
    //    (an old quote, or a TPM whose state was rolled back) is refused.
    let clock = &quote.attest.clock_info;
    let mut continuing = prior;
    if let Some(p) = prior {
        if clock.reset_count < p.reset_count
            || (clock.reset_count == p.reset_count
                && (clock.restart_count < p.restart_count || clock.clock < p.clock))
        {
            return Appraisal::refuse(
                Finding::new(
                    Verdict::NoAccess,
                    Area::Counters,
                    "TPM counters went backwards since the last attestation: replayed or rolled-back evidence",
                )
                .expected(format!(
                    "reset >= {}, restart >= {}, clock >= {}",
                    p.reset_count, p.restart_count, p.clock
                ))
                .seen(format!(
                    "reset {}, restart {}, clock {}",
                    clock.reset_count, clock.restart_count, clock.clock
                )),
            );
        }
        if clock.reset_count > p.reset_count {
            findings.push(
                Finding::new(
                    Verdict::Allow,
                    Area::Counters,
                    "the device rebooted since the last attestation",
                )
                .expected(format!("reset count {}", p.reset_count))
                .seen(format!("reset count {}", clock.reset_count)),
            );
            continuing = None;
        }
    }

    // 3. The event log, replayed.
    let log = match EventLog::parse(evidence.event_log) {
        Ok(l) => l,
        Err(e) => {
            return Appraisal::refuse(Finding::new(
                Verdict::NoAccess,
                Area::EventLog,
                format!("event log does not parse: {e}"),
            ))
        }
    };
    // Only the quoted banks are compared with the quote; boot_aggregate may
    // need one more (see `BootPcrs`).
    let quoted_banks: Vec<HashAlg> = quote
        .quote
        .pcr_select
        .iter()
        .filter_map(|s| HashAlg::from_tpm_alg(s.hash))
        .collect();
    let boot_pcrs = BootPcrs {
        replay: log.replay_banks(&quoted_banks),
        replayed: &quoted_banks,
        log: &log,
    };

    // 4. The IMA list, continuing where the last appraisal stopped.
    let expected_offset = continuing.map_or(0, |p| p.ima_entries);
    if evidence.ima_offset != expected_offset {
        return Appraisal::refuse(
            Finding::new(
                Verdict::NoAccess,
                Area::Ima,
                "the IMA list does not continue where the last attestation ended",
            )
            .expected(format!("entries from {expected_offset}"))
            .seen(format!("entries from {}", evidence.ima_offset)),
        );
    }
    let ima_banks: Vec<HashAlg> = challenge
        .selection
        .iter()
        .filter(|s| s.pcrs.contains(&IMA_PCR))
        .filter_map(|s| HashAlg::from_tpm_alg(s.hash))
        .collect();
    // Why skipping the SHA-1 template digest check (when no sha1 bank is
    // replayed) accepts nothing an attacker could not get accepted anyway: the
    // logged digest is an unkeyed SHA-1 of data in the same record, so whoever
    // alters the data can rewrite it; the check never authenticated an entry.
    // What does is the entry's template data hashed into a quoted bank and the
    // replay reproducing the quoted PCR digest (step 5). The logged digest is
    // read for one thing, the all-zero violation mark, and that is tied to the
    // quote too: a violation is extended as all-ones, so zeroing or un-zeroing
    // a digest changes the replayed PCR. So when a list passes without the
    // check, the same list with its digests recomputed passes with it, with
    // the same findings. After a mismatch the check runs, to name the entry.
    let options = ima::ReplayOptions {
        check_template_digests: false,
        ..ima::ReplayOptions::default()
    };
    let start = continuing.map(|p| &p.pcr10);
    // One pass: parse, extend and compare each entry; none is kept. Findings
    // are held apart and only reported once the replay matched the quote.
    let mut replay = ima::ImaReplay::new(&ima_banks, start, options);
    let mut ima_check = ImaAppraisal::new(
        reference,
        &boot_pcrs,
        continuing.map(|p| &p.key_applications_seen),
    );
    let mut ima_entries = ImaEntries::new(evidence.ima).starting_at_index(evidence.ima_offset);
    let mut new_entries = 0;
    while let Some(record) = ima_entries.next_record() {
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                return Appraisal::refuse(Finding::new(
                    Verdict::NoAccess,
                    Area::Ima,
                    format!("IMA list does not parse: {e}"),
                ))
            }
        };
        new_entries += 1;
        // A replay error is reported once the whole list parsed: parse errors
        // come first.
        if let Ok(r) = &mut replay {
            if let Err(e) = r.extend(&record) {
                replay = Err(e);
            }
        }
        ima_check.entry(&record);
    }
    let pcr10 = match replay {
        Ok(r) => r.finish(),
        Err(e) => {
            return Appraisal::refuse(Finding::new(Verdict::NoAccess, Area::Ima, e.to_string()))
        }
    };

    // 5. The replays must reproduce the quoted PCR digest.
    let mut values = PcrValues::new();
    for sel in &quote.quote.pcr_select {
        let Some(bank) = HashAlg::from_tpm_alg(sel.hash) else {
            continue;
        };
        for &pcr in &sel.pcrs {
            let v = if pcr == IMA_PCR {
                pcr10.get(&bank).cloned()
            } else {
                boot_pcrs.get(bank, pcr).map(<[u8]>::to_vec)
            };
            values.insert(bank, pcr, v.unwrap_or_else(|| reset_value(bank, pcr)));
        }
    }
    let digest = pcr_digest(quote.sig_hash, &quote.quote.pcr_select, &values);
    if !matches!(&digest, Ok(d) if *d == quote.quote.pcr_digest) {
        // The template digest check skipped above names the entry altered, if
        // its logged digest was left as the kernel wrote it.
        let checked = ImaEntries::new(evidence.ima)
            .starting_at_index(evidence.ima_offset)
            .check_template_digests();
        if let Err(e) = checked {
            return Appraisal::refuse(Finding::new(Verdict::NoAccess, Area::Ima, e.to_string()));
        }
        return Appraisal::refuse(match digest {
            Ok(d) => Finding::new(
                Verdict::NoAccess,
                Area::Replay,
                "the event log and IMA list do not reproduce the quoted PCRs: evidence altered, or measured outside the logs",
            )
            .expected(hex(&quote.quote.pcr_digest))
            .seen(hex(&d)),
            Err(e) => Finding::new(
                Verdict::NoAccess,
                Area::Replay,
                format!("cannot compute the PCR digest: {e}"),
            ),
        });
    }

    // From here on the evidence is genuine: it is what the TPM measured.
    let bank = reference.source.bank;
    let quoted = |pcr: u32| {
        quote
            .quote
            .pcr_select
            .iter()
            .any(|s| s.hash == bank.tpm_alg() && s.pcrs.contains(&pcr))
    };
    appraise_boot(&log, reference, bank, &quoted, &mut findings);
    appraise_kernel(&log, reference, bank, &quoted, &mut findings);
    // Entries flagged in earlier rounds of this boot, appraised again
    // against the current reference values.
    let mut flagged = Vec::new();
    let mut overflow = false;
    if let Some(p) = continuing {
        overflow = p.ima_flagged_overflow;
        for f in &p.ima_flagged {
            let allowed_now = !f.violation
                && reference.ima.as_ref().is_some_and(|ima| {
                    ima.excluded_prefixes
                        .iter()
                        .any(|x| f.path.starts_with(x.as_str()))
                        || ima
                            .allow
                            .get(f.path.as_str())
                            .is_some_and(|a| a.contains(&f.digest))
                });
            if allowed_now {
                continue;
            }
            findings.push(
                Finding::new(
                    Verdict::Isolate,
                    Area::Application,
                    if f.violation {
                        "earlier in this boot: IMA violation (contents unknown)"
                    } else {
                        "earlier in this boot: file digest not in the reference values"
                    },
                )
                .pcr(IMA_PCR)
                .event(f.index)
                .path(&f.path)
                .seen(hex(&f.digest)),
            );
            flagged.push(f.clone());
        }
        if overflow {
            findings.push(Finding::new(
                Verdict::Isolate,
                Area::Application,
                format!(
                    "more than {MAX_FLAGGED_ENTRIES} IMA entries were not allowed earlier in this boot: not allowed again before a reboot"
                ),
            ));
        }
    }
    let (seen_apps, new_flagged) = ima_check.finish(&quoted, &mut findings);
    for f in new_flagged {
        if flagged.len() < MAX_FLAGGED_ENTRIES {
            flagged.push(f);
        } else {
            overflow = true;
        }
    }

    let next = DeviceState {
        reset_count: clock.reset_count,
        restart_count: clock.restart_count,
        clock: clock.clock,
        ima_entries: evidence.ima_offset + new_entries,
        pcr10,
        key_applications_seen: seen_apps,
        ima_flagged: flagged,
        ima_flagged_overflow: overflow,
        appraised_at: now,
    };
    Appraisal::from(findings, Some(next), Some(quote))
}

fn missing_reference(area: Area, what: &str) -> Finding {
    Finding::new(
        Verdict::Isolate,
        Area::Reference,
        format!("no reference values for {what}: nothing is allowed without them"),
    )
    .seen(format!("{area:?}"))
}

fn not_quoted(pcr: u32, bank: HashAlg) -> Finding {
    Finding::new(
        Verdict::NoAccess,
        Area::Quote,
        format!("the quote does not cover PCR {pcr} in the {bank} bank, which the reference values appraise"),
    )
    .pcr(pcr)
}

fn event_label(log: &EventLog, index: usize) -> String {
    let e = &log.events[index];
    let name = e
        .type_name()
        .map_or_else(|| format!("{:#x}", e.event_type), str::to_string);
    match e.describe().filter(|d| !d.is_empty()) {
        Some(d) => format!("{name} ({d})"),
        None => name,
    }
}

fn appraise_boot(
    log: &EventLog,
    reference: &CompiledReference,
    bank: HashAlg,
    quoted: &dyn Fn(u32) -> bool,
    findings: &mut Vec<Finding>,
) {
    let Some((pcrs, table)) = &reference.boot else {
        findings.push(missing_reference(Area::Boot, "boot events"));
        return;
    };
    for &pcr in pcrs {
        if !quoted(pcr) {
            findings.push(not_quoted(pcr, bank));
        }
    }
    for (i, e) in log.events.iter().enumerate() {
        if e.event_type == EV_NO_ACTION || !pcrs.contains(&e.pcr) {
            continue;
        }
        let Some(seen) = e.digest(bank) else {
            findings.push(
                Finding::new(
                    Verdict::Isolate,
                    Area::Boot,
                    format!("boot event has no {bank} digest"),
                )
                .pcr(e.pcr)
                .event(e.index),
            );
            continue;
        };
        let allowed = table.get(&(e.pcr, e.event_type));
        if allowed.is_some_and(|a| a.contains_key(seen)) {
            continue;
        }
        let expected = match allowed {
            Some(a) => a
                .iter()
                .map(|(d, note)| {
                    if note.is_empty() {
                        hex(d)
                    } else {
                        format!("{} ({note})", hex(d))
                    }
                })
                .collect::<Vec<_>>()
                .join(" or "),
            None => "no event of this type in this PCR".to_string(),
        };
        findings.push(
            Finding::new(
                Verdict::Isolate,
                Area::Boot,
                format!(
                    "boot event not in the reference values: {}",
                    event_label(log, i)
                ),
            )
            .pcr(e.pcr)
            .event(e.index)
            .expected(expected)
            .seen(hex(seen)),
        );
    }
}

fn appraise_kernel(
    log: &EventLog,
    reference: &CompiledReference,
    bank: HashAlg,
    quoted: &dyn Fn(u32) -> bool,
    findings: &mut Vec<Finding>,
) {
    let (Some(images), Some(cmdlines)) = (&reference.kernel_images, &reference.cmdlines) else {
        findings.push(missing_reference(Area::Kernel, "the kernel"));
        return;
    };
    for pcr in [CMDLINE_PCR, KERNEL_PCR] {
        if !quoted(pcr) {
            findings.push(not_quoted(pcr, bank));
        }
    }
    let (mut kernels, mut lines) = (0, 0);
    for (i, e) in log.events.iter().enumerate() {
        if e.event_type == EV_NO_ACTION {
            continue;
        }
        let Some(seen) = e.digest(bank) else {
            continue;
        };
        if e.pcr == KERNEL_PCR {
            kernels += 1;
            if !images.contains(seen) {
                findings.push(
                    Finding::new(
                        Verdict::Isolate,
                        Area::Kernel,
                        format!(
                            "kernel or initrd not in the reference values: {}",
                            event_label(log, i)
                        ),
                    )
                    .pcr(e.pcr)
                    .event(e.index)
                    .expected(
                        images
                            .iter()
                            .map(|d| hex(d))
                            .collect::<Vec<_>>()
                            .join(" or "),
                    )
                    .seen(hex(seen)),
                );
            }
        } else if e.pcr == CMDLINE_PCR && e.event_type == EV_IPL {
            let text = String::from_utf8_lossy(e.data);
            let text = text.trim_end_matches('\0');
            let Some(cmdline) = text.strip_prefix(CMDLINE_PREFIX) else {
                continue;
            };
            lines += 1;
            // The text is only evidence if the quoted digest is its hash.
            if bank.digest(e.data) != seen {
                findings.push(
                    Finding::new(
                        Verdict::Isolate,
                        Area::CommandLine,
                        "kernel command line text does not match its measured digest",
                    )
                    .pcr(e.pcr)
                    .event(e.index)
                    .seen(hex(seen)),
                );
            } else if !cmdlines.contains(cmdline) {
                findings.push(
                    Finding::new(
                        Verdict::Isolate,
                        Area::CommandLine,
                        "kernel command line not in the reference values",
                    )
                    .pcr(e.pcr)
                    .event(e.index)
                    .expected(cmdlines.iter().cloned().collect::<Vec<_>>().join(" | "))
                    .seen(cmdline.to_string()),
                );
            }
        }
    }
    if kernels == 0 {
        findings.push(
            Finding::new(
                Verdict::Isolate,
                Area::Kernel,
                "the event log holds no kernel measurement",
            )
            .pcr(KERNEL_PCR),
        );
    }
    if lines == 0 && !cmdlines.is_empty() {
        findings.push(
            Finding::new(
                Verdict::Isolate,
                Area::CommandLine,
                "the event log holds no kernel command line",
            )
            .pcr(CMDLINE_PCR),
        );
    }
}

/// The replayed boot PCRs, of the quoted banks only; boot_aggregate's bank is
/// replayed apart if it is not one of them.
struct BootPcrs<'a> {
    replay: Replay,
    /// The banks asked of `log.replay_banks`.
    replayed: &'a [HashAlg],
    log: &'a EventLog<'a>,
}

impl BootPcrs<'_> {
    fn get(&self, bank: HashAlg, pcr: u32) -> Option<&[u8]> {
        self.replay.get(bank, pcr)
    }

    /// boot_aggregate: the hash of PCRs 0-7 (kernels before 5.8) or 0-9, in the
    /// bank its d-ng prefix names, as IMA read them at initialisation.
    fn boot_aggregate_matches(&self, digest: Option<(&str, &[u8])>) -> Option<bool> {
        let (alg, digest) = digest?;
        let bank = HashAlg::from_name(alg)?;
        let other;
        let replay = if self.replayed.contains(&bank) {
            &self.replay
        } else {
            other = self.log.replay_banks(&[bank]);
            &other
        };
        let value = |pcr: u32| {
            replay
                .get(bank, pcr)
                .map_or_else(|| reset_value(bank, pcr), <[u8]>::to_vec)
        };
        let agg = |last: u32| {
            let parts: Vec<Vec<u8>> = (0..=last).map(value).collect();
            let refs: Vec<&[u8]> = parts.iter().map(Vec::as_slice).collect();
            bank.hash_parts(&refs)
        };
        Some(&*agg(7) == digest || &*agg(9) == digest)
    }
}

/// The IMA entries against the reference values, one at a time, so the list is
/// walked once; the findings are the caller's only if the replay matched.
struct ImaAppraisal<'a> {
    ima: Option<&'a CompiledIma>,
    /// The bank the reference values appraise.
    bank: HashAlg,
    boot: &'a BootPcrs<'a>,
    /// Key applications measured since boot, including earlier rounds.
    seen_apps: BTreeSet<String>,
    /// Key applications not in `seen_apps`: once 0, no path needs looking up.
    apps_unseen: usize,
    findings: Vec<Finding>,
    /// The entries behind `findings`, for the next rounds.
    flagged: Vec<FlaggedEntry>,
}

impl<'a> ImaAppraisal<'a> {
    fn new(
        reference: &'a CompiledReference,
        boot: &'a BootPcrs<'a>,
        seen_before: Option<&BTreeSet<String>>,
    ) -> Self {
        let ima = reference.ima.as_ref();
        let seen_apps = seen_before.cloned().unwrap_or_default();
        let apps_unseen = ima.map_or(0, |ima| {
            ima.key_applications
                .iter()
                .filter(|app| !seen_apps.contains(*app))
                .count()
        });
        Self {
            ima,
            bank: reference.source.bank,
            boot,
            seen_apps,
            apps_unseen,
            findings: Vec::new(),
            flagged: Vec::new(),
        }
    }

    fn entry(&mut self, e: &ImaRecord<'_>) {
        let Some(ima) = self.ima else {
            return;
        };
        let path = e.path.as_deref().unwrap_or("");
        if e.is_violation() {
            self.flagged.push(FlaggedEntry {
                index: e.index,
                path: path.to_string(),
                digest: Vec::new(),
                violation: true,
            });
            self.findings.push(
                Finding::new(
                    Verdict::Isolate,
                    Area::Application,
                    "IMA violation: a file was measured while open for writing (its contents are unknown)",
                )
                .pcr(e.pcr)
                .event(e.index)
                .path(path),
            );
            return;
        }
        if path == "boot_aggregate" {
            if self.boot.boot_aggregate_matches(e.digest) == Some(false) {
                self.findings.push(
                    Finding::new(
                        Verdict::NoAccess,
                        Area::Ima,
                        "boot_aggregate does not match the replayed boot PCRs: the IMA list belongs to another boot",
                    )
                    .event(e.index)
                    .seen(e.digest.map(|(_, d)| hex(d)).unwrap_or_default()),
                );
            }
            return;
        }
        if ima
            .excluded_prefixes
            .iter()
            .any(|p| path.starts_with(p.as_str()))
        {
            return;
        }
        let seen = e.digest.map_or(&[][..], |(_, d)| d);
        match ima.allow.get(path) {
            Some(allowed) if allowed.iter().any(|d| d.as_slice() == seen) => {
                if self.apps_unseen > 0
                    && ima.key_applications.contains(path)
                    && !self.seen_apps.contains(path)
                {
                    self.seen_apps.insert(path.to_string());
                    self.apps_unseen -= 1;
                }
            }
            Some(allowed) => {
                self.flag(e.index, path, seen);
                self.findings.push(
                    Finding::new(
                        Verdict::Isolate,
                        Area::Application,
                        "file digest not in the reference values: modified file",
                    )
                    .pcr(e.pcr)
                    .event(e.index)
                    .path(path)
                    .expected(
                        allowed
                            .iter()
                            .map(|d| hex(d))
                            .collect::<Vec<_>>()
                            .join(" or "),
                    )
                    .seen(hex(seen)),
                );
            }
            None => {
                self.flag(e.index, path, seen);
                self.findings.push(
                    Finding::new(
                        Verdict::Isolate,
                        Area::Application,
                        "unknown application: the path is not in the reference values",
                    )
                    .pcr(e.pcr)
                    .event(e.index)
                    .path(path)
                    .seen(hex(seen)),
                );
            }
        }
    }

    fn flag(&mut self, index: usize, path: &str, digest: &[u8]) {
        self.flagged.push(FlaggedEntry {
            index,
            path: path.to_string(),
            digest: digest.to_vec(),
            violation: false,
        });
    }

    /// Adds the findings to `findings`; returns the key applications seen
    /// and this round's flagged entries.
    fn finish(
        self,
        quoted: &dyn Fn(u32) -> bool,
        findings: &mut Vec<Finding>,
    ) -> (BTreeSet<String>, Vec<FlaggedEntry>) {
        let Some(ima) = self.ima else {
            findings.push(missing_reference(
                Area::Application,
                "runtime measurements (IMA)",
            ));
            return (self.seen_apps, Vec::new());
        };
        if !quoted(IMA_PCR) {
            findings.push(not_quoted(IMA_PCR, self.bank));
        }
        findings.extend(self.findings);
        for app in &ima.key_applications {
            if !self.seen_apps.contains(app) {
                findings.push(
                    Finding::new(
                        Verdict::Isolate,
                        Area::Application,
                        "key application has not been measured with an allowed digest since boot",
                    )
                    .path(app),
                );
            }
        }
        (self.seen_apps, self.flagged)
    }
}
