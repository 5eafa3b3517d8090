//! Appraisal end to end on simulated boots: the measured-boot simulator writes the
//! event log and IMA list, a SOFTWARE AK (testnet::soft_ak) signs quotes of the
//! PCRs they produce, and `policy::appraise` decides. The paths here need
//! evidence a real TPM cannot be made to produce on demand (rewound counters,
//! altered logs); `swtpm_appraisal.rs` runs the same profiles on a real swtpm.

use policy::appraisal::{appraise, Area, Challenge, DeviceState, Evidence};
use policy::reference::{CompiledReference, ReferenceValues};
use policy::tpm::{parse_selection, PcrSelection};
use policy::Verdict;
use std::path::Path;
use testnet::simulator::{Measurements, Profile};
use testnet::soft_ak::SoftAk;

const SELECTION: &str = "sha256:0,1,2,3,4,5,6,7,8,9,10";

fn profile(name: &str) -> Profile {
    Profile::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("profiles/{name}.toml")))
        .unwrap()
}

fn good_reference() -> CompiledReference {
    profile("good-terminal")
        .reference_values()
        .unwrap()
        .compile()
        .unwrap()
}

struct Device {
    ak: SoftAk,
    m: Measurements,
    selection: Vec<PcrSelection>,
}

impl Device {
    fn boot(name: &str) -> Self {
        Device {
            ak: SoftAk::generate(),
            m: profile(name).measure().unwrap(),
            selection: parse_selection(SELECTION).unwrap(),
        }
    }

    /// Quotes after `ima` IMA entries and appraises entries `from..ima`.
    fn attest(
        &mut self,
        nonce: &[u8],
        from: usize,
        ima: usize,
        reference: &CompiledReference,
        prior: Option<&DeviceState>,
    ) -> policy::Appraisal {
        let values = self.m.pcr_values_after(ima);
        let (attest, signature) = self.ak.quote(nonce, &self.selection, &values);
        let ima_bytes = self.m.ima_range(from, ima);
        let evidence = Evidence {
            attest: &attest,
            signature: &signature,
            event_log: &self.m.event_log,
            ima: &ima_bytes,
            ima_offset: from,
        };
        let challenge = Challenge {
            nonce,
            selection: &self.selection,
            allow_sha1: false,
        };
        appraise(
            &self.ak.public(),
            &evidence,
            &challenge,
            reference,
            prior,
            1_800_000_000,
        )
    }

    fn attest_all(&mut self, reference: &CompiledReference) -> policy::Appraisal {
        let n = self.m.ima_entries();
        self.attest(b"nonce-0001", 0, n, reference, None)
    }
}

fn show(a: &policy::Appraisal) -> String {
    a.findings.iter().map(|f| format!("{f}\n")).collect()
}

#[test]
fn good_terminal_and_good_vm_are_allowed() {
    let r = good_reference();
    let a = Device::boot("good-terminal").attest_all(&r);
    assert_eq!(a.verdict, Verdict::Allow, "{}", show(&a));
    let state = a.next_state.expect("genuine evidence is remembered");
    assert_eq!(state.key_applications_seen.len(), 3);

    let vm = profile("good-vm");
    let r = vm.reference_values().unwrap().compile().unwrap();
    let a = Device::boot("good-vm").attest_all(&r);
    assert_eq!(a.verdict, Verdict::Allow, "{}", show(&a));
}

#[test]
fn tampered_kernel_is_isolated_naming_the_kernel_event() {
    let a = Device::boot("tampered-kernel").attest_all(&good_reference());
    assert_eq!(a.verdict, Verdict::Isolate, "{}", show(&a));
    let f = a
        .findings
        .iter()
        .find(|f| f.area == Area::Kernel)
        .expect("a kernel finding");
    assert_eq!(f.pcr, Some(9));
    assert!(f.message.contains("/boot/vmlinuz-6.1.0-27-amd64"), "{f}");
    assert!(f.expected.is_some() && f.seen.is_some());
    assert_eq!(a.findings.len(), 1, "nothing else differs: {}", show(&a));
}

#[test]
fn tampered_key_application_is_isolated_naming_the_file() {
    let a = Device::boot("tampered-keyapp").attest_all(&good_reference());
    assert_eq!(a.verdict, Verdict::Isolate, "{}", show(&a));
    let f = a
        .findings
        .iter()
        .find(|f| f.path.as_deref() == Some("/usr/sbin/nginx") && f.seen.is_some())
        .expect("a finding on nginx");
    assert!(f.message.contains("modified file"), "{f}");
    // A modified key application also does not count as the key application.
    assert!(a
        .findings
        .iter()
        .any(|f| f.message.contains("key application")));
}

#[test]
fn unknown_application_is_isolated() {
    let a = Device::boot("unknown-app").attest_all(&good_reference());
    assert_eq!(a.verdict, Verdict::Isolate, "{}", show(&a));
    assert!(a.findings.iter().any(|f| f.path.as_deref()
        == Some("/home/user/.local/bin/cryptominer")
        && f.message.contains("unknown")));
}

#[test]
fn missing_reference_values_are_never_allow() {
    let mut r: ReferenceValues = profile("good-terminal").reference_values().unwrap();
    r.kernel = None;
    let a = Device::boot("good-terminal").attest_all(&r.compile().unwrap());
    assert_eq!(a.verdict, Verdict::Isolate);
    assert!(
        a.findings.iter().any(|f| f.area == Area::Reference),
        "{}",
        show(&a)
    );
    let empty = ReferenceValues::from_toml("").unwrap().compile().unwrap();
    let a = Device::boot("good-terminal").attest_all(&empty);
    assert_eq!(a.verdict, Verdict::Isolate);
    assert_eq!(
        a.findings
            .iter()
            .filter(|f| f.area == Area::Reference)
            .count(),
        3
    );
}

#[test]
fn wrong_nonce_foreign_ak_and_altered_log_get_no_access() {
    let r = good_reference();
    let mut d = Device::boot("good-terminal");
    let n = d.m.ima_entries();
    // A quote for another nonce (replayed from an earlier session).
    let values = d.m.pcr_values();
    let (attest, signature) = d.ak.quote(b"old-nonce", &d.selection, &values);
    let challenge = Challenge {
        nonce: b"fresh-nonce",
        selection: &d.selection,
        allow_sha1: false,
    };
    let ev = Evidence {
        attest: &attest,
        signature: &signature,
        event_log: &d.m.event_log,
        ima: &d.m.ima,
        ima_offset: 0,
    };
    let a = appraise(&d.ak.public(), &ev, &challenge, &r, None, 0);
    assert_eq!(a.verdict, Verdict::NoAccess);
    assert!(a.findings[0].message.contains("nonce"), "{}", show(&a));
    assert!(a.next_state.is_none());

    // Signed by another key than the enrolled AK.
    let other = SoftAk::generate();
    let challenge = Challenge {
        nonce: b"old-nonce",
        selection: &d.selection,
        allow_sha1: false,
    };
    let a = appraise(&other.public(), &ev, &challenge, &r, None, 0);
    assert_eq!(a.verdict, Verdict::NoAccess);
    assert_eq!(a.findings[0].area, Area::Quote);

    // The log edited after the fact: one digest changed.
    let mut log = d.m.event_log.clone();
    let i = log.len() - 40;
    log[i] ^= 0xFF;
    let ev = Evidence {
        event_log: &log,
        ..ev
    };
    let a = appraise(&d.ak.public(), &ev, &challenge, &r, None, 0);
    assert_eq!(a.verdict, Verdict::NoAccess, "{}", show(&a));
    assert!(
        matches!(a.findings[0].area, Area::Replay | Area::EventLog),
        "{}",
        show(&a)
    );

    // An IMA entry dropped from the list.
    let partial = d.m.ima_range(0, n - 1);
    let ev = Evidence {
        event_log: &d.m.event_log,
        ima: &partial,
        ..ev
    };
    let a = appraise(&d.ak.public(), &ev, &challenge, &r, None, 0);
    assert_eq!(a.verdict, Verdict::NoAccess);
    assert_eq!(a.findings[0].area, Area::Replay);
}

#[test]
fn incremental_ima_reboot_and_rewound_counters() {
    let r = good_reference();
    let mut d = Device::boot("good-terminal");
    let n = d.m.ima_entries();
    // First attestation: boot_aggregate and two files.
    let a1 = d.attest(b"n1", 0, 3, &r, None);
    let s1 = a1.next_state.clone().expect("state");
    assert_eq!(s1.ima_entries, 3);
    // Not all key applications have run yet.
    assert_eq!(a1.verdict, Verdict::Isolate, "{}", show(&a1));
    // Second: only the new entries, continuing PCR 10.
    let a2 = d.attest(b"n2", 3, n, &r, Some(&s1));
    assert_eq!(a2.verdict, Verdict::Allow, "{}", show(&a2));
    let s2 = a2.next_state.unwrap();
    assert_eq!(s2.ima_entries, n);
    // A client that resends from the start is refused: the list must continue.
    let a = d.attest(b"n3", 0, n, &r, Some(&s2));
    assert_eq!(a.verdict, Verdict::NoAccess);
    assert!(a.findings[0].message.contains("continue"), "{}", show(&a));

    // A rewound TPM clock (an old quote or a rolled-back TPM).
    d.ak.clock.clock = 10;
    let a = d.attest(b"n4", n, n, &r, Some(&s2));
    assert_eq!(a.verdict, Verdict::NoAccess);
    assert_eq!(a.findings[0].area, Area::Counters);

    // A reboot: reset count up, the whole IMA list again from entry 0.
    d.ak.clock.reset_count += 1;
    let a = d.attest(b"n5", 0, n, &r, Some(&s2));
    assert_eq!(a.verdict, Verdict::Allow, "{}", show(&a));
    assert!(a.findings.iter().any(|f| f.message.contains("rebooted")));
}

#[test]
fn an_altered_ima_entry_is_no_access_and_named() {
    let r = good_reference();
    let d = Device::boot("good-terminal");
    let n = d.m.ima_entries();
    let mut ak = d.ak;
    let values = d.m.pcr_values_after(n);
    let (attest, signature) = ak.quote(b"n", &d.selection, &values);
    // Rename the web server in the list after the fact (same length).
    let mut ima = d.m.ima.clone();
    let at = ima
        .windows(15)
        .position(|w| w == b"/usr/sbin/nginx")
        .unwrap();
    ima[at + 10..at + 15].copy_from_slice(b"httpd");
    let ev = Evidence {
        attest: &attest,
        signature: &signature,
        event_log: &d.m.event_log,
        ima: &ima,
        ima_offset: 0,
    };
    let challenge = Challenge {
        nonce: b"n",
        selection: &d.selection,
        allow_sha1: false,
    };
    let a = appraise(&ak.public(), &ev, &challenge, &r, None, 0);
    assert_eq!(a.verdict, Verdict::NoAccess, "{}", show(&a));
    assert!(
        show(&a).contains("entry 2") || a.findings.iter().any(|f| f.event == Some(2)),
        "{}",
        show(&a)
    );
}

/// Learn mode: reference values learned from a good terminal's evidence allow
/// that terminal, and refuse a tampered kernel and a tampered key application
/// naming what changed.
#[test]
fn learned_reference_values_allow_the_source_and_refuse_changes() {
    let good = profile("good-terminal").measure().unwrap();
    let (learned, stats) = ReferenceValues::learn(
        "learned from terminal-1",
        policy::HashAlg::Sha256,
        &good.event_log,
        &good.ima,
    )
    .unwrap();
    assert!(
        stats.boot_events > 10 && stats.kernel_images >= 1,
        "{stats:?}"
    );
    assert_eq!(stats.cmdlines, 1, "{stats:?}");
    // Every file but boot_aggregate; /tmp/scratch.sh is under an excluded prefix.
    assert_eq!(
        (stats.files, stats.skipped),
        (good.ima_entries() - 2, 1),
        "{stats:?}"
    );
    // It round-trips through the TOML an operator reviews.
    let reference = ReferenceValues::from_toml(&learned.to_toml())
        .unwrap()
        .compile()
        .unwrap();
    let n = good.ima_entries();
    let mut d = Device::boot("good-terminal");
    let a = d.attest(b"learn-1", 0, n, &reference, None);
    assert_eq!(a.verdict, Verdict::Allow, "{:?}", a.findings);
    let mut d = Device::boot("tampered-kernel");
    let a = d.attest(b"learn-2", 0, d.m.ima_entries(), &reference, None);
    assert_eq!(a.verdict, Verdict::Isolate);
    assert!(
        a.findings.iter().any(|f| f.area == Area::Kernel),
        "{:?}",
        a.findings
    );
    let mut d = Device::boot("tampered-keyapp");
    let a = d.attest(b"learn-3", 0, d.m.ima_entries(), &reference, None);
    assert_eq!(a.verdict, Verdict::Isolate);
    assert!(
        a.findings
            .iter()
            .any(|f| f.area == Area::Application && f.path.is_some()),
        "{:?}",
        a.findings
    );
}

/// An entry the policy refused stays refused in later rounds of the same boot
/// (each round only sees new entries), until the reference values allow it.
#[test]
fn refused_ima_entries_stay_refused_until_allowed() {
    let mut d = Device::boot("unknown-app");
    let n = d.m.ima_entries();
    let good = good_reference();
    let first = d.attest(b"sticky-1", 0, n, &good, None);
    assert_eq!(first.verdict, Verdict::Isolate, "{:?}", first.findings);
    let state = first.next_state.unwrap();
    assert!(!state.ima_flagged.is_empty());
    // Nothing new since: still isolated, and the finding says why.
    let second = d.attest(b"sticky-2", n, n, &good, Some(&state));
    assert_eq!(second.verdict, Verdict::Isolate, "{:?}", second.findings);
    assert!(
        second
            .findings
            .iter()
            .any(|f| f.message.starts_with("earlier in this boot") && f.path.is_some()),
        "{:?}",
        second.findings
    );
    // Once the reference values allow the file, the device is allowed.
    let (learned, _) = ReferenceValues::learn(
        "allows the app",
        policy::HashAlg::Sha256,
        &d.m.event_log,
        &d.m.ima,
    )
    .unwrap();
    let learned = learned.compile().unwrap();
    let state = second.next_state.unwrap();
    let third = d.attest(b"sticky-3", n, n, &learned, Some(&state));
    assert_eq!(third.verdict, Verdict::Allow, "{:?}", third.findings);
    assert!(third.next_state.unwrap().ima_flagged.is_empty());
}
