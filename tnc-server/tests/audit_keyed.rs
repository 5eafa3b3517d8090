//! The keyed audit chain against someone who can write the database but
//! does not hold the key: a rewritten history, a downgrade to plain SM3,
//! entries dropped after an anchor; and a process without the key does not
//! extend a keyed chain.

use std::path::{Path, PathBuf};
use tnc_server::store::{verify_chain_keyed, AuditKey, Store};

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("audit-keyed-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn url(dir: &Path) -> String {
    format!("sqlite://{}", dir.join("tnc.db").display())
}

async fn append(store: &Store, from: u64, n: u64) {
    for i in from..from + n {
        store
            .audit(
                1_700_000_000 + i,
                "verdict",
                &format!("device-{i}"),
                "allow",
            )
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn a_history_rewritten_without_the_key_is_found() {
    let dir = scratch("rewrite");
    let key = AuditKey::create(&dir.join("audit.key"), 1).unwrap();
    let store = Store::open_keyed(&url(&dir), Some(key.clone()))
        .await
        .unwrap();
    append(&store, 1, 5).await;
    assert_eq!(store.verify_audit().await.unwrap(), Ok(5));
    let hashes: Vec<String> = store
        .audit_entries()
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.hash)
        .collect();
    assert!(
        hashes.iter().all(|h| h.starts_with("hmac-sm3:")),
        "{hashes:?}"
    );

    // The writer of the database drops entries 3 to 5 and writes its own
    // history on top of entry 2 with a key of its own: consistent under
    // that key, refused under the real one at the first rewritten entry.
    store
        .execute_raw("DELETE FROM audit WHERE seq >= 3")
        .await
        .unwrap();
    let forger_key = AuditKey::create(&dir.join("forger.key"), 1).unwrap();
    let forger = Store::open_keyed(&url(&dir), Some(forger_key.clone()))
        .await
        .unwrap();
    for i in 3..=5u64 {
        forger
            .audit(
                1_700_000_000 + i,
                "verdict",
                &format!("device-{i}"),
                "isolate",
            )
            .await
            .unwrap();
    }
    let entries = store.audit_entries().await.unwrap();
    assert_eq!(entries.len(), 5);
    let seen = store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(seen.seq, 3, "{seen}");
    assert!(seen.what.contains("history was edited"), "{seen}");
    // Only entries 3 to 5 changed hands: under the forger's key the
    // forged part checks, the real entries do not.
    assert_eq!(
        verify_chain_keyed(&entries, Some(&forger_key))
            .unwrap_err()
            .seq,
        1
    );

    // A downgrade: the whole log written again as plain SM3 from the
    // start (an unkeyed process may begin an empty chain).
    store.execute_raw("DELETE FROM audit").await.unwrap();
    let unkeyed = Store::open(&url(&dir)).await.unwrap();
    append(&unkeyed, 1, 5).await;
    assert_eq!(unkeyed.verify_audit().await.unwrap(), Ok(5));
    let seen = store.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(seen.seq, 1);
    assert!(seen.what.contains("not keyed"), "{seen}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn entries_dropped_after_an_anchor_are_found() {
    let dir = scratch("anchor");
    let key = AuditKey::create(&dir.join("audit.key"), 1).unwrap();
    let store = Store::open_keyed(&url(&dir), Some(key)).await.unwrap();
    append(&store, 1, 5).await;
    let anchor = store.audit_anchor(1_700_000_100).await.unwrap().unwrap();
    assert_eq!(anchor.seq, 5);
    // The anchor survives its own line format.
    let anchor = tnc_server::store::Anchor::newest(&anchor.line()).unwrap();
    assert_eq!(
        store.verify_audit_against(Some(&anchor)).await.unwrap(),
        Ok(5)
    );
    append(&store, 6, 1).await;
    assert_eq!(
        store.verify_audit_against(Some(&anchor)).await.unwrap(),
        Ok(6)
    );

    // Dropping the newest entries leaves a chain that verifies on its own:
    // only the anchor tells.
    store
        .execute_raw("DELETE FROM audit WHERE seq >= 4")
        .await
        .unwrap();
    assert_eq!(store.verify_audit().await.unwrap(), Ok(3));
    let seen = store
        .verify_audit_against(Some(&anchor))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(seen.seq, 4);
    assert!(seen.what.contains("entries 4 to 5 are gone"), "{seen}");

    // An anchored entry whose hash changed (a forger who rebuilt the chain
    // from entry 4 with the right length but without the key is caught by
    // the key first; the anchor also holds the hash).
    let edited = tnc_server::store::Anchor {
        hash: "hmac-sm3:00".into(),
        ..anchor
    };
    append(&store, 4, 2).await;
    let seen = store
        .verify_audit_against(Some(&edited))
        .await
        .unwrap()
        .unwrap_err();
    assert_eq!(seen.seq, 5);
    assert!(seen.what.contains("rewritten"), "{seen}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn a_key_added_later_covers_what_follows_and_is_needed_from_then_on() {
    let dir = scratch("later");
    let unkeyed = Store::open(&url(&dir)).await.unwrap();
    append(&unkeyed, 1, 3).await;
    let key = AuditKey::create(&dir.join("audit.key"), 4).unwrap();
    let keyed = Store::open_keyed(&url(&dir), Some(key)).await.unwrap();
    append(&keyed, 4, 2).await;
    assert_eq!(keyed.verify_audit().await.unwrap(), Ok(5));
    let hashes: Vec<bool> = keyed
        .audit_entries()
        .await
        .unwrap()
        .iter()
        .map(|e| e.hash.starts_with("hmac-sm3:"))
        .collect();
    assert_eq!(hashes, [false, false, false, true, true]);
    // Without the key the keyed part cannot be checked, and a process
    // without it does not extend the chain.
    let seen = unkeyed.verify_audit().await.unwrap().unwrap_err();
    assert_eq!(seen.seq, 4);
    assert!(seen.what.contains("verify with the key"), "{seen}");
    let refused = unkeyed
        .audit(1_700_000_010, "user-add", "mallory", "")
        .await;
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.to_string().contains("audit_key")),
        "{refused:?}"
    );
    assert_eq!(keyed.verify_audit().await.unwrap(), Ok(5));
    std::fs::remove_dir_all(&dir).unwrap();
}
