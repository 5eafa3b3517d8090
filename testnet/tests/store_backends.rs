//! The store's one code path on both backends: a SQLite file and a real
//! PostgreSQL server (started for the test on a free loopback port).

use policy::appraisal::DeviceState;
use policy::{HashAlg, Verdict};
use testnet::postgres::Postgres;
use tnc_proto::attestation::Role;
use tnc_server::devices::DeviceRecord;
use tnc_server::store::{AttestationWrite, DecisionWrite, EvidenceWrite, Store};

async fn exercise(url: &str) {
    let store = Store::open(url).await.unwrap();
    // Users.
    assert!(store.add_user("alice", "$argon2id$h", 1).await.unwrap());
    assert!(!store.add_user("alice", "$argon2id$other", 2).await.unwrap());
    assert_eq!(
        store.password_hash("alice").await.unwrap().as_deref(),
        Some("$argon2id$h")
    );
    // A decision with a device, an attestation, evidence and audit entries.
    let mut state = DeviceState {
        reset_count: 3,
        ima_entries: 6,
        ..DeviceState::default()
    };
    state.pcr10.insert(HashAlg::Sha256, vec![0x5A; 32]);
    let device = DeviceRecord {
        device_id: [9; 32],
        role: Role::Terminal,
        ek_certificate: vec![0x30, 0x82, 0, 1],
        ak_name: vec![0, 11, 1, 2],
        ak_public: vec![7; 88],
        state: Some(state.clone()),
        last_verdict: Some(Verdict::Allow),
        last_seen: 100,
        enrolled_at: 100,
        user: Some("alice".into()),
        host: Some("hv-2".into()),
        drift: 3,
    };
    let findings = vec!["TPM quote and logs match".to_string()];
    let audit = vec![
        (
            "enroll",
            "09".repeat(32),
            "terminal AK enrolled".to_string(),
        ),
        ("verdict", "09".repeat(32), "allow: ok".to_string()),
    ];
    let credential = tnc_server::store::CredentialWrite {
        ticket_id: vec![0xc7; 16],
        device_id: [9; 32],
        user: Some("alice".into()),
        role: "terminal".into(),
        serial: "01ab".into(),
        certificate_sha256: "cd".repeat(32),
        not_after: 3700,
    };
    store
        .commit_decision(&DecisionWrite {
            at: 100,
            device: Some(&device),
            attestation: Some(AttestationWrite {
                device_id: [9; 32],
                verdict: Verdict::Allow,
                findings: &findings,
                counters: Some((3, 0, 12345)),
            }),
            audit: &audit,
            evidence: Some(EvidenceWrite {
                device_id: [9; 32],
                event_log: b"event log",
                ima: b"first six",
                ima_offset: 0,
                ima_end: 6,
            }),
            credential: Some(&credential),
            revoke: None,
        })
        .await
        .unwrap();
    // An incremental attestation appends to the kept IMA entries.
    store
        .commit_decision(&DecisionWrite {
            at: 200,
            device: Some(&device),
            attestation: None,
            audit: &[("verdict", "09".repeat(32), "allow: again".to_string())],
            evidence: Some(EvidenceWrite {
                device_id: [9; 32],
                event_log: b"event log",
                ima: b" and two more",
                ima_offset: 6,
                ima_end: 8,
            }),
            credential: None,
            revoke: None,
        })
        .await
        .unwrap();
    let got = store.device(&[9; 32]).await.unwrap().unwrap();
    assert_eq!(got.state, Some(state));
    assert_eq!(
        (got.user.as_deref(), got.host.as_deref(), got.drift),
        (Some("alice"), Some("hv-2"), 3)
    );
    let listed = store.device_summaries(None, None).await.unwrap();
    assert_eq!(
        (
            listed[0].user.as_deref(),
            listed[0].host.as_deref(),
            listed[0].drift
        ),
        (Some("alice"), Some("hv-2"), 3)
    );
    let kept = store.evidence(&[9; 32]).await.unwrap().unwrap();
    assert_eq!(kept.ima, b"first six and two more");
    assert_eq!((kept.ima_from, kept.ima_entries), (0, 8));
    // Appended as a chunk of its own, not rewritten.
    assert_eq!(store.ima_chunks(&[9; 32]).await.unwrap(), 2);
    assert_eq!(store.attestations(&[9; 32], 5).await.unwrap().len(), 1);
    // The credential issued with the first decision.
    assert_eq!(
        store.credentials(&[9; 32]).await.unwrap(),
        vec![(100, "01ab".to_string(), 3700, Some("alice".to_string()))]
    );
    // Policy versions.
    assert!(store
        .seed_policy(Role::Vm, "name = \"vm\"", 5)
        .await
        .unwrap()
        .is_some());
    assert!(store
        .seed_policy(Role::Vm, "name = \"vm\"", 6)
        .await
        .unwrap()
        .is_none());
    assert_eq!(store.policy_versions().await.unwrap().len(), 1);
    // Peer text with a NUL (PostgreSQL text refuses NUL) is stored readable.
    store
        .audit(300, "verdict", "peer", "path /usr/bin/a\0b")
        .await
        .unwrap();
    // The audit chain: 3 decision entries, 1 policy load, 1 more; then tampered.
    assert_eq!(store.verify_audit().await.unwrap(), Ok(5));
    store
        .execute_raw("UPDATE audit SET detail = 'isolate: edited' WHERE seq = 2")
        .await
        .unwrap();
    assert_eq!(store.verify_audit().await.unwrap().unwrap_err().seq, 2);
    continuous_trust(&store, &device, &findings).await;
    store.close().await;
    // Reopening runs no migration twice and keeps the data.
    let again = Store::open(url).await.unwrap();
    assert_eq!(again.devices().await.unwrap().len(), 1);
    again.close().await;
}

/// A store written by the schema before the IMA chunk table (migration 5)
/// keeps its IMA entries through the upgrade, and grows by chunks after it;
/// a new list (a reboot) replaces them. Leaves the store empty of evidence.
async fn upgrade_keeps_ima(url: &str) {
    let old = Store::open_at_version(url, 5).await.unwrap();
    let blob = |hex: &str| match url.starts_with("sqlite://") {
        true => format!("X'{hex}'"),
        false => format!("'\\x{hex}'::bytea"),
    };
    let id = "ab".repeat(32);
    old.execute_raw(&format!(
        "INSERT INTO evidence (device_id, at, event_log, event_log_sha256, ima, ima_from, ima_entries)
         VALUES ({}, 10, {}, '{}', {}, 0, 3)",
        blob(&id),
        blob("6c6f67"),
        policy::digest::hex(&HashAlg::Sha256.digest(b"log")),
        blob("6669727374")
    ))
    .await
    .unwrap();
    old.close().await;
    let store = Store::open(url).await.unwrap();
    let device = [0xab; 32];
    let kept = store.evidence(&device).await.unwrap().unwrap();
    assert_eq!((kept.ima.as_slice(), kept.ima_entries), (&b"first"[..], 3));
    assert_eq!(kept.event_log, b"log");
    assert_eq!(store.ima_chunks(&device).await.unwrap(), 1);
    for (at, ima, from, end) in [(20, &b" second"[..], 3, 5), (30, b" third", 5, 6)] {
        store
            .commit_decision(&DecisionWrite {
                at,
                device: None,
                attestation: None,
                audit: &[],
                evidence: Some(EvidenceWrite {
                    device_id: device,
                    event_log: b"log",
                    ima,
                    ima_offset: from,
                    ima_end: end,
                }),
                credential: None,
                revoke: None,
            })
            .await
            .unwrap();
    }
    let kept = store.evidence(&device).await.unwrap().unwrap();
    assert_eq!(kept.ima, b"first second third");
    assert_eq!((kept.ima_from, kept.ima_entries, kept.at), (0, 6, 30));
    assert_eq!(store.ima_chunks(&device).await.unwrap(), 3);
    // A reboot: the list starts over from entry 0.
    store
        .commit_decision(&DecisionWrite {
            at: 40,
            device: None,
            attestation: None,
            audit: &[],
            evidence: Some(EvidenceWrite {
                device_id: device,
                event_log: b"new boot",
                ima: b"again",
                ima_offset: 0,
                ima_end: 2,
            }),
            credential: None,
            revoke: None,
        })
        .await
        .unwrap();
    let kept = store.evidence(&device).await.unwrap().unwrap();
    assert_eq!((kept.ima.as_slice(), kept.ima_entries), (&b"again"[..], 2));
    assert_eq!(kept.event_log, b"new boot");
    assert_eq!(store.ima_chunks(&device).await.unwrap(), 1);
    store.execute_raw("DELETE FROM ima_chunks").await.unwrap();
    store.execute_raw("DELETE FROM evidence").await.unwrap();
    store.close().await;
}

/// Revocations, re-assessment requests and stale devices on `store`, where
/// device 09… holds ticket c7… (until 3700) from its first decision.
async fn continuous_trust(store: &Store, device: &DeviceRecord, findings: &[String]) {
    let id = [9u8; 32];
    let isolate = |at, revoke| DecisionWrite {
        at,
        device: Some(device),
        attestation: Some(AttestationWrite {
            device_id: id,
            verdict: Verdict::Isolate,
            findings,
            counters: None,
        }),
        audit: &[],
        evidence: None,
        credential: None,
        revoke,
    };
    // A decision that is not allow revokes the unexpired tickets, once.
    assert_eq!(store.last_revocation_seq().await.unwrap(), 0);
    store
        .commit_decision(&isolate(400, Some("isolate: file x")))
        .await
        .unwrap();
    let revoked = store.revocations_after(0, 10).await.unwrap();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    let r = &revoked[0];
    assert_eq!(
        (r.at, r.device.as_str(), r.ticket.as_str(), r.not_after),
        (
            400,
            "09".repeat(32).as_str(),
            "c7".repeat(16).as_str(),
            3700
        )
    );
    assert_eq!(r.certificate_sha256, "cd".repeat(32));
    assert_eq!(r.reason, "isolate: file x");
    assert_eq!(
        store.ticket_revocation(&[0xc7; 16]).await.unwrap().as_ref(),
        Some(r)
    );
    assert_eq!(store.ticket_revocation(&[0xc8; 16]).await.unwrap(), None);
    store
        .commit_decision(&isolate(401, Some("isolate: again")))
        .await
        .unwrap();
    assert_eq!(store.revocations_after(0, 10).await.unwrap().len(), 1);
    assert_eq!(store.revoke_device(&id, 402, "operator").await.unwrap(), 0);
    assert_eq!(
        store
            .revoke_device(&[8; 32], 402, "operator")
            .await
            .unwrap(),
        0
    );
    // New tickets: an expired one is not revoked, the other is, by hand.
    for (ticket, not_after) in [([0xd1u8; 16], 450), ([0xd2; 16], 5000)] {
        let c = tnc_server::store::CredentialWrite {
            ticket_id: ticket.to_vec(),
            not_after,
            device_id: id,
            user: None,
            role: "terminal".into(),
            serial: "02".into(),
            certificate_sha256: "ef".repeat(32),
        };
        store
            .commit_decision(&DecisionWrite {
                at: 403,
                device: Some(device),
                attestation: None,
                audit: &[],
                evidence: None,
                credential: Some(&c),
                revoke: None,
            })
            .await
            .unwrap();
    }
    assert_eq!(store.revoke_device(&id, 500, "operator").await.unwrap(), 1);
    let all = store.revocations_after(0, 10).await.unwrap();
    assert_eq!(all.len(), 2);
    assert_eq!(all[1].ticket, "d2".repeat(16));
    assert!(all[1].seq > all[0].seq);
    assert_eq!(
        store.revocations_after(all[0].seq, 10).await.unwrap(),
        &all[1..]
    );
    assert_eq!(store.revocations_of(&id).await.unwrap()[0], all[1]);
    assert_eq!(store.last_revocation_seq().await.unwrap(), all[1].seq);
    // The operator's re-assessment requests, in order.
    assert_eq!(store.last_reassess_seq().await.unwrap(), 0);
    let a = store.request_reassessment(Some(&id), 600).await.unwrap();
    let b = store.request_reassessment(None, 601).await.unwrap();
    let reqs = store.reassess_requests_after(0).await.unwrap();
    assert_eq!(
        reqs,
        vec![
            tnc_server::store::ReassessRequest {
                seq: a,
                device: Some(id)
            },
            tnc_server::store::ReassessRequest {
                seq: b,
                device: None
            }
        ]
    );
    assert_eq!(store.reassess_requests_after(a).await.unwrap().len(), 1);
    assert_eq!(store.last_reassess_seq().await.unwrap(), b);
    // Stale: allowed (the record says so) and last seen at 100.
    let limits = [(Role::Terminal, 600u64)].into();
    assert!(store.mark_stale(650, &limits).await.unwrap().is_empty());
    let stale = store.mark_stale(1000, &limits).await.unwrap();
    assert_eq!(stale.len(), 1, "{stale:?}");
    assert_eq!((stale[0].device, stale[0].last_seen), (id, 100));
    assert!(store.mark_stale(1001, &limits).await.unwrap().is_empty());
    let d = store.device(&id).await.unwrap().unwrap();
    assert_eq!(d.last_verdict, Some(Verdict::Isolate));
    let last = &store.attestations(&id, 1).await.unwrap()[0];
    assert_eq!(last.verdict, "isolate");
    assert!(
        last.findings[0].starts_with("stale: not attested for 900 s"),
        "{last:?}"
    );
    // The periodic re-assessment's lease: one owner at a time, renewed by
    // it, taken over once expired.
    assert!(store.take_lease(&id, "pdp-a", 1000, 1100).await.unwrap());
    assert!(!store.take_lease(&id, "pdp-b", 1050, 1150).await.unwrap());
    assert!(store.take_lease(&id, "pdp-a", 1090, 1190).await.unwrap());
    assert!(!store.take_lease(&id, "pdp-b", 1190, 1290).await.unwrap());
    assert!(store.take_lease(&id, "pdp-b", 1191, 1291).await.unwrap());
    assert!(!store.take_lease(&id, "pdp-a", 1200, 1300).await.unwrap());
    assert_eq!(
        store.lease(&id).await.unwrap(),
        Some(("pdp-b".to_string(), 1291))
    );
    // Subscribers' acknowledgements only move forward.
    assert!(store.record_ack("gw-1", "gateway", 5, 1300).await.unwrap());
    assert!(!store.record_ack("gw-1", "gateway", 3, 1301).await.unwrap());
    assert!(store.record_ack("gw-1", "gateway", 6, 1302).await.unwrap());
    assert_eq!(
        store.subscribers().await.unwrap(),
        vec![("gw-1".to_string(), "gateway".to_string(), 6, 1302)]
    );
    // A gateway's one-time token: a wrong one, then the right one once,
    // and not after it expired; a new one replaces an unused one.
    let token = store.new_enrolment_token("gw-1", 100, 2000).await.unwrap();
    let hash = |t: &str| -> [u8; 32] { HashAlg::Sha256.digest(t.as_bytes()).try_into().unwrap() };
    assert!(!store
        .take_enrolment_token("gw-1", &hash("wrong"), 2001)
        .await
        .unwrap());
    assert!(!store
        .take_enrolment_token("gw-2", &hash(&token), 2001)
        .await
        .unwrap());
    assert!(store
        .take_enrolment_token("gw-1", &hash(&token), 2001)
        .await
        .unwrap());
    assert!(!store
        .take_enrolment_token("gw-1", &hash(&token), 2002)
        .await
        .unwrap());
    let late = store.new_enrolment_token("gw-1", 100, 3000).await.unwrap();
    let replaced = store.new_enrolment_token("gw-1", 100, 3000).await.unwrap();
    assert!(!store
        .take_enrolment_token("gw-1", &hash(&late), 3001)
        .await
        .unwrap());
    assert!(!store
        .take_enrolment_token("gw-1", &hash(&replaced), 3101)
        .await
        .unwrap());
    // A reason with a NUL (a path from a peer's IMA list) is stored.
    testnet::e2e::held_ticket(store, 0x77).await.unwrap();
    assert_eq!(
        store
            .revoke_device(&[0x77; 32], 1400, "isolate: /tmp/a\0b")
            .await
            .unwrap(),
        1
    );
}

/// Decisions queued together are committed by one group: the same device
/// decided three times in it (PostgreSQL refuses an upsert that touches a
/// row twice in one statement) keeps the last record, its attestations
/// keep their order, and the audit chain stays whole. A current-thread
/// runtime: every decision is queued before the writer runs.
async fn one_group(url: &str) {
    let store = std::sync::Arc::new(Store::open(url).await.unwrap());
    let mut tasks = tokio::task::JoinSet::new();
    // Device 3 already has evidence that device 3's decision continues.
    let head = b"entry 0;".to_vec();
    store
        .commit_decision(&DecisionWrite {
            at: 5,
            device: None,
            attestation: None,
            audit: &[],
            evidence: Some(EvidenceWrite {
                device_id: [3; 32],
                event_log: b"log 3",
                ima: &head,
                ima_offset: 0,
                ima_end: 1,
            }),
            credential: None,
            revoke: None,
        })
        .await
        .unwrap();
    // (device, at, IMA entries from..to): device 1 starts a list and
    // continues it twice, device 2 starts one, device 3 continues its own.
    for (i, at, from, to) in [
        (1u8, 10u64, 0u64, 2u64),
        (2, 11, 0, 1),
        (1, 12, 2, 3),
        (3, 13, 1, 3),
        (1, 14, 3, 4),
    ] {
        let store = store.clone();
        tasks.spawn(async move {
            let device = DeviceRecord {
                device_id: [i; 32],
                role: Role::Vm,
                ek_certificate: vec![1],
                ak_name: vec![0, 11, i],
                ak_public: vec![4],
                state: None,
                last_verdict: Some(Verdict::Allow),
                last_seen: at,
                enrolled_at: 1,
                user: None,
                host: None,
                drift: 0,
            };
            let audit = [("verdict", format!("{i}"), format!("allow at {at}"))];
            let ima: Vec<u8> = (from..to)
                .flat_map(|n| format!("entry {n};").into_bytes())
                .collect();
            let log = format!("log {i}").into_bytes();
            store
                .commit_decision(&DecisionWrite {
                    at,
                    device: Some(&device),
                    attestation: Some(AttestationWrite {
                        device_id: [i; 32],
                        verdict: Verdict::Allow,
                        findings: &[],
                        counters: None,
                    }),
                    audit: &audit,
                    evidence: Some(EvidenceWrite {
                        device_id: [i; 32],
                        event_log: &log,
                        ima: &ima,
                        ima_offset: from,
                        ima_end: to,
                    }),
                    credential: None,
                    revoke: None,
                })
                .await
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap().unwrap();
    }
    assert_eq!(store.devices().await.unwrap().len(), 3);
    assert_eq!(store.device(&[1; 32]).await.unwrap().unwrap().last_seen, 14);
    let ats: Vec<i64> = store
        .attestations(&[1; 32], 10)
        .await
        .unwrap()
        .iter()
        .map(|a| a.at)
        .collect();
    assert_eq!(ats, [14, 12, 10]);
    assert_eq!(store.verify_audit().await.unwrap(), Ok(5));
    let details: Vec<String> = store
        .audit_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.detail)
        .collect();
    assert_eq!(
        details,
        [
            "allow at 10",
            "allow at 11",
            "allow at 12",
            "allow at 13",
            "allow at 14"
        ]
    );
    // Every list whole, in chunks: device 1's three, device 2's one,
    // device 3's two.
    for (i, entries, chunks) in [(1u8, 4, 3), (2, 1, 1), (3, 3, 2)] {
        let kept = store.evidence(&[i; 32]).await.unwrap().unwrap();
        let want: Vec<u8> = (0..entries)
            .flat_map(|n| format!("entry {n};").into_bytes())
            .collect();
        assert_eq!(kept.ima, want, "device {i}");
        assert_eq!(kept.ima_entries, entries, "device {i}");
        assert_eq!(kept.event_log, format!("log {i}").into_bytes());
        assert_eq!(
            store.ima_chunks(&[i; 32]).await.unwrap(),
            chunks,
            "device {i}"
        );
    }
    store.close().await;
}

/// Devices found by a prefix of their ID (a range of the index) and listed
/// with filters, the same on both backends.
async fn find_and_list(url: &str) {
    use tnc_server::store::FindDevice;
    let store = Store::open(url).await.unwrap();
    let mut ids = Vec::new();
    for (i, first) in [[0xab, 0x01], [0xab, 0x02], [0xac, 0x00], [0xff, 0xff]]
        .into_iter()
        .enumerate()
    {
        let mut id = [0x11u8; 32];
        id[..2].copy_from_slice(&first);
        ids.push(id);
        store
            .put_device(&DeviceRecord {
                device_id: id,
                role: if i == 2 { Role::Vm } else { Role::Terminal },
                ek_certificate: vec![i as u8],
                ak_name: vec![0, 11, i as u8],
                ak_public: vec![i as u8],
                state: None,
                last_verdict: Some(if i == 1 {
                    Verdict::Isolate
                } else {
                    Verdict::Allow
                }),
                last_seen: 100 + i as u64,
                enrolled_at: 50,
                user: None,
                host: None,
                drift: 0,
            })
            .await
            .unwrap();
    }
    assert_eq!(store.find_device("ab01").await.unwrap().device_id, ids[0]);
    assert_eq!(store.find_device("AB02").await.unwrap().device_id, ids[1]);
    assert_eq!(store.find_device("ac").await.unwrap().device_id, ids[2]);
    assert_eq!(store.find_device("f").await.unwrap().device_id, ids[3]);
    let whole = policy::digest::hex(&ids[3]);
    assert_eq!(store.find_device(&whole).await.unwrap().device_id, ids[3]);
    assert!(matches!(
        store.find_device("ab").await,
        Err(FindDevice::Ambiguous(_, 2))
    ));
    assert!(matches!(
        store.find_device("a").await,
        Err(FindDevice::Ambiguous(_, 3))
    ));
    assert!(matches!(
        store.find_device("ad").await,
        Err(FindDevice::None(_))
    ));
    assert!(matches!(
        store.find_device("zz").await,
        Err(FindDevice::None(_))
    ));
    let all = store.device_summaries(None, None).await.unwrap();
    assert_eq!(all.len(), 4);
    let vms = store.device_summaries(Some(Role::Vm), None).await.unwrap();
    assert_eq!(
        vms.iter().map(|d| d.device_id).collect::<Vec<_>>(),
        [ids[2]]
    );
    let isolated = store
        .device_summaries(Some(Role::Terminal), Some(Verdict::Isolate))
        .await
        .unwrap();
    assert_eq!(isolated.len(), 1);
    assert_eq!(isolated[0].device_id, ids[1]);
    store.close().await;
}

#[tokio::test]
async fn sqlite_store() {
    let dir = testnet::swtpm::scratch_dir("store-sqlite").unwrap();
    let url = format!("sqlite://{}", dir.join("tnc.db").display());
    upgrade_keeps_ima(&url).await;
    exercise(&url).await;
    one_group(&format!("sqlite://{}", dir.join("group.db").display())).await;
    find_and_list(&format!("sqlite://{}", dir.join("find.db").display())).await;
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn postgres_store() {
    let pg = Postgres::start().unwrap();
    upgrade_keeps_ima(&pg.url()).await;
    exercise(&pg.url()).await;
    let admin = Store::open(&pg.url()).await.unwrap();
    admin.execute_raw("CREATE DATABASE grouped").await.unwrap();
    admin.close().await;
    one_group(&pg.url().replace("/postgres", "/grouped")).await;
    let admin = Store::open(&pg.url()).await.unwrap();
    admin.execute_raw("CREATE DATABASE found").await.unwrap();
    admin.close().await;
    find_and_list(&pg.url().replace("/postgres", "/found")).await;
    drop(pg);
}
