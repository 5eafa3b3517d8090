//! The admin API against a running PDP: who is let in (401 without a
//! certificate, 403 for a certificate that names no admin role and for a
//! read-only caller that acts, the TLS handshake refused for another CA),
//! bad requests (400 with what was wrong), the device list and detail after
//! a real login, actions written to the audit log, and the event stream.

use hyper::Method;
use std::sync::Arc;
use testnet::e2e::{soft_device, write_host_files, PdpOptions, TestPdp};
use tnc_client::agent::{login, tls_client_config, Agent};
use tnc_proto::admin::{self as api, AdminRole};
use tnc_proto::attestation::Role;
use tnc_server::admin::client::{AdminClient, ClientError};

async fn pdp() -> TestPdp {
    let profile = testnet::e2e::profile("good-terminal").unwrap();
    TestPdp::start_raw(
        &[(Role::Terminal, &profile)],
        (Vec::new(), Vec::new()),
        PdpOptions {
            admin: true,
            ..PdpOptions::default()
        },
    )
    .await
    .unwrap()
}

/// One login of a software terminal enrolled as `name`; its verdict.
async fn log_in(pdp: &TestPdp, name: &str) -> String {
    let profile = testnet::e2e::profile("good-terminal").unwrap();
    let measurements = Arc::new(profile.measure().unwrap());
    let device = soft_device(pdp, Role::Terminal, name, &measurements)
        .await
        .unwrap();
    let dir = testnet::swtpm::scratch_dir(&format!("admin-{name}")).unwrap();
    let os = tnc_client::os::OsFacts::collect(&write_host_files(&dir).unwrap(), false).unwrap();
    let mut agent = Agent::with_collector(os, Box::new(device()));
    let outcome = login(
        pdp.addr,
        "localhost",
        tls_client_config(&pdp.tls.ca).unwrap(),
        &mut agent,
        None,
    )
    .await
    .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    outcome.verdict_name().to_string()
}

#[tokio::test]
async fn callers_without_an_admin_certificate_are_refused() {
    let pdp = pdp().await;
    let url = pdp.admin_url().unwrap();

    // No certificate: 401, and the answer says what to do.
    let anonymous = AdminClient::new(&url, &pdp.tls.ca, None).unwrap();
    let (status, body) = anonymous
        .call(Method::GET, "/v1/devices", None)
        .await
        .unwrap();
    assert_eq!(status, 401);
    let error: api::ApiError = serde_json::from_slice(&body).unwrap();
    assert!(error.error.contains("tnc-server admin issue"), "{error:?}");

    // A certificate of the same CA that names no admin role (an endpoint's
    // client certificate, say): 403.
    let ca = (
        std::fs::read_to_string(&pdp.tls.ca).unwrap(),
        std::fs::read_to_string(&pdp.tls.ca_key).unwrap(),
    );
    let endpoint = {
        let key = rcgen::KeyPair::from_pem(&ca.1).unwrap();
        let ca_params = {
            let mut p = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "testnet PDP CA");
            p.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
            p.key_usages = vec![
                rcgen::KeyUsagePurpose::KeyCertSign,
                rcgen::KeyUsagePurpose::CrlSign,
            ];
            p.self_signed(&key).unwrap()
        };
        tnc_server::certs::issue("device-7", vec!["device-7.test".into()], &(ca_params, key))
            .unwrap()
    };
    let (c, k) = (pdp.dir.join("endpoint.pem"), pdp.dir.join("endpoint.key"));
    std::fs::write(&c, endpoint.0.pem()).unwrap();
    tnc_server::certs::write_private(&k, endpoint.1.serialize_pem().as_bytes(), true).unwrap();
    let not_admin = AdminClient::new(&url, &pdp.tls.ca, Some((&c, &k))).unwrap();
    match not_admin.get::<Vec<api::Device>>("/v1/devices").await {
        Err(ClientError::Refused { status: 403, error }) => {
            assert!(error.contains("not an admin certificate"), "{error}")
        }
        other => panic!("{other:?}"),
    }

    // A certificate of another CA, even one saying tnc-admin-write: the
    // TLS handshake is refused.
    let other_ca = tnc_server::certs::new_ca("someone else's CA").unwrap();
    let other_dir = testnet::swtpm::scratch_dir("admin-other-ca").unwrap();
    std::fs::write(other_dir.join("ca.pem"), other_ca.0.pem()).unwrap();
    tnc_server::certs::write_private(
        &other_dir.join("ca.key"),
        other_ca.1.serialize_pem().as_bytes(),
        true,
    )
    .unwrap();
    let (cert, key) = tnc_server::certs::issue_admin(
        &other_ca.0.pem(),
        &other_ca.1.serialize_pem(),
        "mallory",
        AdminRole::ReadWrite,
        std::time::Duration::from_secs(3600),
    )
    .unwrap();
    std::fs::write(other_dir.join("mallory.pem"), cert).unwrap();
    tnc_server::certs::write_private(&other_dir.join("mallory.key"), key.as_bytes(), true).unwrap();
    let mallory = AdminClient::new(
        &url,
        &pdp.tls.ca,
        Some((
            &other_dir.join("mallory.pem"),
            &other_dir.join("mallory.key"),
        )),
    )
    .unwrap();
    let refused = mallory.call(Method::GET, "/v1/devices", None).await;
    assert!(
        matches!(
            refused,
            Err(ClientError::Tls { .. } | ClientError::Http(_) | ClientError::Connect { .. })
        ),
        "{refused:?}"
    );

    // Read-only: reads, and is refused every action.
    let reader = pdp.admin_client("reader", AdminRole::ReadOnly).unwrap();
    let me: api::WhoAmI = reader.get("/v1/whoami").await.unwrap();
    assert_eq!(
        me,
        api::WhoAmI {
            name: "reader".into(),
            role: AdminRole::ReadOnly
        }
    );
    assert!(reader.get::<Vec<api::Device>>("/v1/devices").await.is_ok());
    for path in [
        "/v1/reassess",
        "/v1/devices/00/revoke",
        "/v1/policies/terminal",
    ] {
        match reader
            .post::<_, api::ActionResult>(path, &api::RevokeRequest { reason: "x".into() })
            .await
        {
            Err(ClientError::Refused { status: 403, error }) => {
                assert!(error.contains("read-only"), "{path}: {error}")
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    let _ = std::fs::remove_dir_all(&other_dir);
    pdp.stop().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_400_with_what_was_wrong() {
    let pdp = pdp().await;
    let admin = pdp.admin_client("alice", AdminRole::ReadWrite).unwrap();
    assert_eq!(log_in(&pdp, "terminal").await, "allow");
    let device = admin.get::<Vec<api::Device>>("/v1/devices").await.unwrap()[0]
        .device
        .clone();
    let revoke = format!("/v1/devices/{device}/revoke");

    let cases: [(&str, &[u8], &str); 4] = [
        (&revoke, b"{\"reason\": ", "EOF"),
        (
            &revoke,
            b"{\"reason\": \"x\", \"force\": true}",
            "unknown field `force`",
        ),
        (&revoke, b"{}", "missing field `reason`"),
        (&revoke, b"{\"reason\": \"  \"}", "reason is empty"),
    ];
    for (path, body, says) in cases {
        let (status, answer) = admin
            .call(Method::POST, path, Some(body.to_vec()))
            .await
            .unwrap();
        let error: api::ApiError = serde_json::from_slice(&answer).unwrap();
        assert_eq!(status, 400, "{error:?}");
        assert!(error.error.contains(says), "{says}: {error:?}");
    }
    for (path, says) in [
        ("/v1/devices?colour=red", "colour"),
        ("/v1/devices?role=printer", "printer"),
        ("/v1/devices?verdict=maybe", "maybe"),
        ("/v1/audit?limit=0", "limit 0"),
        ("/v1/audit?limit=1001", "limit 1001"),
        ("/v1/revocations?subject=x", "subject"),
    ] {
        match admin.get::<serde_json::Value>(path).await {
            Err(ClientError::Refused { status: 400, error }) => {
                assert!(error.contains(says), "{path}: {error}")
            }
            other => panic!("{path}: {other:?}"),
        }
    }
    match admin
        .post::<_, api::ActionResult>(
            "/v1/policies/printer",
            &api::PolicyLoad {
                reference_values: String::new(),
            },
        )
        .await
    {
        Err(ClientError::Refused { status: 400, error }) => {
            assert!(error.contains("printer"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    match admin
        .post::<_, api::ActionResult>(
            "/v1/policies/terminal",
            &api::PolicyLoad {
                reference_values: "this is not = [toml".into(),
            },
        )
        .await
    {
        Err(ClientError::Refused { status: 400, error }) => {
            assert!(error.starts_with("reference_values"), "{error}")
        }
        other => panic!("{other:?}"),
    }
    match admin.get::<serde_json::Value>("/v1/devices/ffff").await {
        Err(ClientError::Refused { status: 404, error }) => assert!(error.contains("ffff")),
        other => panic!("{other:?}"),
    }
    match admin.get::<serde_json::Value>("/v1/nothing").await {
        Err(ClientError::Refused { status: 404, .. }) => {}
        other => panic!("{other:?}"),
    }
    // Nothing was revoked by the refused requests.
    assert!(admin
        .get::<Vec<api::Revocation>>("/v1/revocations")
        .await
        .unwrap()
        .is_empty());
    pdp.stop().await.unwrap();
}

#[tokio::test]
async fn devices_attestations_actions_and_events() {
    let pdp = pdp().await;
    let admin = pdp.admin_client("alice", AdminRole::ReadWrite).unwrap();

    // The event stream, open before the login.
    let mut stream = admin.send(Method::GET, "/v1/events", None).await.unwrap();
    assert_eq!(stream.status(), 200);
    assert_eq!(
        stream.headers()["content-type"].to_str().unwrap(),
        "text/event-stream"
    );

    assert_eq!(log_in(&pdp, "terminal").await, "allow");

    // The stream tells of the decision.
    let decided = tokio::time::timeout(std::time::Duration::from_secs(10), async {
        use http_body_util::BodyExt;
        let mut text = String::new();
        while let Some(frame) = stream.body_mut().frame().await {
            if let Ok(data) = frame.unwrap().into_data() {
                text.push_str(&String::from_utf8_lossy(&data));
            }
            if let Some(line) = text
                .lines()
                .filter_map(|l| l.strip_prefix("data: "))
                .find(|l| l.contains("\"decided\""))
            {
                return serde_json::from_str::<serde_json::Value>(line).unwrap();
            }
        }
        panic!("the stream ended: {text}");
    })
    .await
    .expect("a decided event within 10 s");
    assert_eq!(decided["verdict"], "allow");

    let devices: Vec<api::Device> = admin.get("/v1/devices").await.unwrap();
    assert_eq!(devices.len(), 1);
    let d = &devices[0];
    assert_eq!(d.role, "terminal");
    assert_eq!(d.last_verdict.as_deref(), Some("allow"));
    assert_eq!(decided["device"], d.device.as_str());
    // Filters.
    let none: Vec<api::Device> = admin.get("/v1/devices?verdict=isolate").await.unwrap();
    assert!(none.is_empty());
    // No access by either spelling (the store says "no access").
    pdp.store
        .put_device(&tnc_server::devices::DeviceRecord {
            device_id: [0xEE; 32],
            role: Role::Vm,
            ek_certificate: vec![1],
            ak_name: vec![0, 11, 1],
            ak_public: vec![2],
            state: None,
            last_verdict: Some(policy::Verdict::NoAccess),
            last_seen: 1,
            enrolled_at: 1,
            user: None,
            host: Some("hv-9".into()),
            drift: 2,
        })
        .await
        .unwrap();
    for v in ["no-access", "no%20access"] {
        let denied: Vec<api::Device> = admin
            .get(&format!("/v1/devices?verdict={v}"))
            .await
            .unwrap();
        assert_eq!(denied.len(), 1, "{v}");
        assert_eq!(denied[0].device, "ee".repeat(32));
        assert_eq!(denied[0].last_verdict.as_deref(), Some("no-access"));
    }
    admin
        .post::<_, api::ActionResult>(&format!("/v1/devices/{}/forget", "ee".repeat(32)), &())
        .await
        .unwrap();
    let vms: Vec<api::Device> = admin.get("/v1/devices?role=vm").await.unwrap();
    assert!(vms.is_empty());

    // The detail, by a prefix of the ID.
    let detail: api::DeviceDetail = admin
        .get(&format!("/v1/devices/{}", &d.device[..12]))
        .await
        .unwrap();
    assert_eq!(detail.device, *d);
    assert_eq!(detail.attestations.len(), 1);
    assert_eq!(detail.attestations[0].verdict, "allow");

    // Actions, each in the audit log under the admin's name.
    let done: api::ActionResult = admin
        .post(&format!("/v1/devices/{}/reassess", d.device), &())
        .await
        .unwrap();
    assert_eq!(
        done,
        api::ActionResult::ReassessRequested {
            device: Some(d.device.clone())
        }
    );
    let done: api::ActionResult = admin
        .post(
            &format!("/v1/devices/{}/revoke", d.device),
            &api::RevokeRequest {
                reason: "lost laptop".into(),
            },
        )
        .await
        .unwrap();
    // This PDP issues no tickets: nothing to revoke, and it says so.
    assert_eq!(
        done,
        api::ActionResult::Revoked {
            device: d.device.clone(),
            tickets: 0
        }
    );
    let policies: Vec<api::PolicyVersion> = admin.get("/v1/policies").await.unwrap();
    assert_eq!(policies.len(), 1);
    assert_eq!(policies[0].role, "terminal");
    // The terminal's current text again: nothing recorded; as the VMs'
    // reference values: their first version.
    let text = testnet::e2e::profile("good-terminal")
        .unwrap()
        .reference_values()
        .unwrap()
        .to_toml();
    let load = api::PolicyLoad {
        reference_values: text,
    };
    let same: api::ActionResult = admin.post("/v1/policies/terminal", &load).await.unwrap();
    assert_eq!(
        same,
        api::ActionResult::PolicyLoaded {
            role: "terminal".into(),
            version: None
        }
    );
    let vm: api::ActionResult = admin.post("/v1/policies/vm", &load).await.unwrap();
    assert!(
        matches!(&vm, api::ActionResult::PolicyLoaded { role, version: Some(_) } if role == "vm"),
        "{vm:?}"
    );
    let policies: Vec<api::PolicyVersion> = admin.get("/v1/policies").await.unwrap();
    assert_eq!(policies.len(), 2);
    let audit: Vec<api::AuditEntry> = admin.get("/v1/audit").await.unwrap();
    let reassess = audit
        .iter()
        .find(|e| e.kind == "device-reassess")
        .expect("the re-assessment in the audit log");
    assert_eq!(reassess.subject, d.device);
    assert!(reassess.detail.contains("by admin alice"), "{reassess:?}");
    assert!(
        audit.iter().any(|e| e.kind == "policy-load"
            && e.subject == "vm"
            && e.detail.ends_with("by admin alice")),
        "{audit:?}"
    );
    // About one subject.
    let about: Vec<api::AuditEntry> = admin
        .get(&format!("/v1/audit?subject={}", d.device))
        .await
        .unwrap();
    assert!(about.len() >= 2, "{about:?}");
    assert!(about.iter().all(|e| e.subject == d.device), "{about:?}");
    assert!(about.len() < audit.len());
    // Paging.
    let after: Vec<api::AuditEntry> = admin
        .get(&format!("/v1/audit?after={}&limit=1", audit[0].seq))
        .await
        .unwrap();
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].seq, audit[1].seq);
    assert!(pdp.store.verify_audit().await.unwrap().is_ok());

    let done: api::ActionResult = admin
        .post(&format!("/v1/devices/{}/forget", d.device), &())
        .await
        .unwrap();
    assert_eq!(
        done,
        api::ActionResult::Forgotten {
            device: d.device.clone()
        }
    );
    assert!(admin
        .get::<Vec<api::Device>>("/v1/devices")
        .await
        .unwrap()
        .is_empty());
    pdp.stop().await.unwrap();
}

/// Connections that never finish TLS: one address holds at most 16 (the
/// 17th is closed at once), and with every slot taken by 17 addresses the
/// PDP still stops at once.
#[tokio::test]
async fn silent_connections_are_bounded_and_do_not_hold_up_shutdown() {
    use tokio::io::AsyncReadExt;
    let pdp = pdp().await;
    let addr = pdp.admin_addr.unwrap();
    let connect_from = |last: u8| async move {
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket
            .bind(std::net::SocketAddr::from(([127, 0, 0, last], 0)))
            .unwrap();
        socket.connect(addr).await.unwrap()
    };
    let mut held = Vec::new();
    for _ in 0..16 {
        held.push(connect_from(2).await);
    }
    // Let the listener count them.
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let mut extra = connect_from(2).await;
    let mut byte = [0u8; 1];
    let closed = tokio::time::timeout(std::time::Duration::from_secs(3), extra.read(&mut byte))
        .await
        .expect("the 17th connection from one address is closed at once");
    assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
    // Another address still gets in: a real admin call works.
    let admin = pdp.admin_client("alice", AdminRole::ReadOnly).unwrap();
    assert!(admin.get::<Vec<api::Device>>("/v1/devices").await.is_ok());
    // Every one of the 256 slots taken, from 16 more addresses.
    for last in 3..19u8 {
        for _ in 0..16 {
            held.push(connect_from(last).await);
        }
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let started = std::time::Instant::now();
    tokio::time::timeout(std::time::Duration::from_secs(5), pdp.stop())
        .await
        .expect("the PDP stops with every admin slot taken")
        .unwrap();
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(held);
}

#[tokio::test]
async fn axums_own_errors_come_as_json_too() {
    let pdp = pdp().await;
    let admin = pdp.admin_client("alice", AdminRole::ReadWrite).unwrap();
    // A method the path does not take: 405, JSON, with Allow.
    let answer = admin
        .send(Method::DELETE, "/v1/devices", None)
        .await
        .unwrap();
    assert_eq!(answer.status(), 405);
    assert!(answer.headers().contains_key("allow"));
    let (status, body) = admin
        .call(Method::DELETE, "/v1/devices", None)
        .await
        .unwrap();
    assert_eq!(status, 405);
    let error: api::ApiError = serde_json::from_slice(&body).unwrap();
    assert!(error.error.contains("method"), "{error:?}");
    // A body over 1 MiB: 413, JSON.
    let (status, body) = admin
        .call(
            Method::POST,
            "/v1/policies/terminal",
            Some(vec![b' '; 2 << 20]),
        )
        .await
        .unwrap();
    assert_eq!(status, 413);
    let error: api::ApiError = serde_json::from_slice(&body).unwrap();
    assert!(error.error.contains("over"), "{error:?}");
    pdp.stop().await.unwrap();
}

/// Someone else's TLS client: Debian's `openssl s_client` with the admin
/// certificate gets the API's answer; without one, the 401.
#[tokio::test]
async fn openssl_s_client_with_an_admin_certificate_is_answered() {
    let pdp = pdp().await;
    // Writes admin-ops.pem / .key in the PDP's directory.
    let _ = pdp.admin_client("ops", AdminRole::ReadOnly).unwrap();
    let addr = pdp.admin_addr.unwrap().to_string();
    let (ca, dir) = (pdp.tls.ca.clone(), pdp.dir.clone());
    let ask = move |identity: bool| {
        let mut cmd = std::process::Command::new("openssl");
        cmd.args([
            "s_client",
            "-connect",
            &addr,
            "-quiet",
            "-ign_eof",
            "-verify_return_error",
        ])
        .arg("-CAfile")
        .arg(&ca);
        if identity {
            cmd.arg("-cert")
                .arg(dir.join("admin-ops.pem"))
                .arg("-key")
                .arg(dir.join("admin-ops.key"));
        }
        let mut child = cmd
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        use std::io::Write;
        child
            .stdin
            .take()
            .unwrap()
            .write_all(b"GET /v1/whoami HTTP/1.1\r\nHost: pdp\r\nConnection: close\r\n\r\n")
            .unwrap();
        String::from_utf8_lossy(&child.wait_with_output().unwrap().stdout).into_owned()
    };
    let answers = tokio::task::spawn_blocking(move || (ask(true), ask(false)))
        .await
        .unwrap();
    assert!(answers.0.starts_with("HTTP/1.1 200"), "{}", answers.0);
    assert!(
        answers.0.contains(r#"{"name":"ops","role":"read-only"}"#),
        "{}",
        answers.0
    );
    assert!(answers.1.starts_with("HTTP/1.1 401"), "{}", answers.1);
    assert!(
        answers.1.contains("tnc-server admin issue"),
        "{}",
        answers.1
    );
    pdp.stop().await.unwrap();
}

/// The OpenAPI document a running PDP serves: what `admin openapi` prints,
/// valid OpenAPI 3.1 to someone else's validator (openapi-spec-validator, in
/// the test venv), which does reject a broken one; and every operation in
/// it is routed (the router's own 404 and 405 never answer them).
#[tokio::test]
async fn the_openapi_document_is_served_valid_and_routed() {
    let pdp = pdp().await;
    assert_eq!(log_in(&pdp, "terminal").await, "allow");
    let admin = pdp.admin_client("alice", AdminRole::ReadWrite).unwrap();
    let doc: serde_json::Value = admin.get("/v1/openapi.json").await.unwrap();
    let printed: serde_json::Value =
        serde_json::from_str(&tnc_server::admin::openapi::json()).unwrap();
    assert_eq!(doc, printed);

    let python = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: `make test` (scripts/setup.sh) creates the venv",
        python.display()
    );
    let validate = |doc: &serde_json::Value| {
        let dir = testnet::swtpm::scratch_dir("openapi").unwrap();
        let file = dir.join("openapi.json");
        std::fs::write(&file, doc.to_string()).unwrap();
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import json, sys\n\
                 from openapi_spec_validator import validate\n\
                 validate(json.load(open(sys.argv[1])))",
            ])
            .arg(&file)
            .output()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, why) = validate(&doc);
    assert!(ok, "{why}");
    let mut broken = doc.clone();
    broken["paths"]["/v1/whoami"]["get"]["responses"] = serde_json::json!("none");
    assert!(!validate(&broken).0, "the validator accepts anything");

    let device: Vec<api::Device> = admin.get("/v1/devices").await.unwrap();
    let id = &device[0].device;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            let path = path.replace("{device}", id).replace("{role}", "nosuchrole");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            // Actions get a body they reject; forget last would drop the
            // device, so it gets one of another device.
            let (path, body) = match path.rsplit_once('/') {
                Some((_, "forget")) => (path.replace(id.as_str(), "ffffffffffff"), None),
                Some((_, "revoke")) | Some((_, "nosuchrole")) => {
                    (path.clone(), Some(b"{\"nonsense\": 1}".to_vec()))
                }
                _ => (path.clone(), None),
            };
            let answer = admin.send(method.clone(), &path, body).await.unwrap();
            let status = answer.status().as_u16();
            assert_ne!(status, 405, "{method} {path}");
            if status == 404 {
                use http_body_util::BodyExt;
                let text = answer.into_body().collect().await.unwrap().to_bytes();
                let text = String::from_utf8_lossy(&text);
                assert!(
                    !text.contains("in the admin API"),
                    "{method} {path}: {text}"
                );
            }
        }
    }
    pdp.stop().await.unwrap();
}
