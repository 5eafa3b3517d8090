//! `testnet bench channel`: the ShangMi channel next to the standard one,
//! on one core.
//!
//! - Full TLS 1.3 handshakes in memory (no sockets; server authentication,
//!   no resumption): TLS_SM4_GCM_SM3 + curveSM2 + SM2 certificates against
//!   TLS13_AES_128_GCM_SHA256 + secp256r1 + ECDSA P-256 certificates. Client
//!   and server CPU are timed apart (one thread, so wall time is CPU time),
//!   next to the bound of each handshake's public-key operations (two key
//!   generations, two ECDH, one signature, two verifications: the
//!   CertificateVerify and the leaf's certificate), measured alone.
//! - Bulk transfer: 16 KiB records through a rustls pair in memory (seal on
//!   one side, open on the other, the same core) and over quinn on loopback,
//!   next to the raw speed of the same AEAD sealing and opening 16 KiB,
//!   raw and TLS timed in alternating slices.
//! - What credentials cost the PDP per allow.
//! - `connect` to the first byte: a terminal's integrity handshake asking
//!   for a pairing (the PDP delivers it to the serving VM over its control
//!   session), then the channel (TCP, strict ShangMi TLS with mutual
//!   certificates, ticket and pairing proofs) and one byte through it and
//!   back. Both devices attest with software AKs, so the TPM's time is
//!   measured on swtpm apart and added to the total.

use anyhow::Context;
use pki::tls::shangmi::{TLS_SM4_CCM_SM3, TLS_SM4_GCM_SM3};
use pki::tls::{client_config, server_config, Identity};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{CipherSuite, ClientConfig, RootCertStore, ServerConfig};
use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Seconds each handshake row is timed.
    #[arg(long, default_value_t = 2.0)]
    seconds: f64,
    /// MiB moved per bulk row.
    #[arg(long, default_value_t = 64)]
    mib: usize,
    /// `connect`s timed for the first-byte table (at least 1).
    #[arg(long, default_value_t = 30, value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    connects: usize,
}

struct Pki {
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
}

impl Pki {
    /// Every handshake a full one: no tickets, no resumption (a resumed
    /// handshake skips the certificate, the signature and both verifies).
    fn new(server: Arc<ServerConfig>, client: Arc<ClientConfig>) -> Self {
        let mut server = (*server).clone();
        server.send_tls13_tickets = 0;
        server.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        let mut client = (*client).clone();
        client.resumption = rustls::client::Resumption::disabled();
        Self {
            server: Arc::new(server),
            client: Arc::new(client),
        }
    }
}

/// The ShangMi pair: an SM2 CA from `pki::ca`, a server leaf, strict
/// providers restricted to `suite`.
fn shangmi(suite: CipherSuite) -> anyhow::Result<Pki> {
    let (ca, cert, key) =
        tnc_server::certs::sm2_server("bench SM2 CA", "localhost", &["localhost".to_string()])?;
    let pem = key.to_pem()?;
    let der = pki::ca::pem_or_der(pem.as_bytes())?;
    let identity = Identity {
        chain: vec![CertificateDer::from(cert)],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der)),
    };
    let mut roots = RootCertStore::empty();
    roots.add(CertificateDer::from(ca.certificate_der().to_vec()))?;
    let provider = only(pki::tls::shangmi::strict_provider(), suite, None);
    Ok(Pki::new(
        server_config(provider.clone(), identity, None)?,
        client_config(provider, roots, None)?,
    ))
}

/// The standard pair: ECDSA P-256 certificates (rcgen), secp256r1, ring's
/// `suite`.
fn standard(suite: CipherSuite) -> anyhow::Result<Pki> {
    let ca = tnc_server::certs::new_ca("bench CA")?;
    let (cert, key) = tnc_server::certs::issue("localhost", vec!["localhost".into()], &ca)?;
    let identity = Identity {
        chain: vec![cert.der().clone()],
        key: PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
    };
    let mut roots = RootCertStore::empty();
    roots.add(ca.0.der().clone())?;
    let provider = only(
        rustls::crypto::ring::default_provider(),
        suite,
        Some(rustls::NamedGroup::secp256r1),
    );
    Ok(Pki::new(
        server_config(provider.clone(), identity, None)?,
        client_config(provider, roots, None)?,
    ))
}

fn only(
    mut provider: CryptoProvider,
    suite: CipherSuite,
    group: Option<rustls::NamedGroup>,
) -> Arc<CryptoProvider> {
    provider.cipher_suites.retain(|s| s.suite() == suite);
    if let Some(g) = group {
        provider.kx_groups.retain(|k| k.name() == g);
    }
    Arc::new(provider)
}

/// One handshake in memory; (client time, server time).
fn handshake(
    p: &Pki,
) -> anyhow::Result<(
    Duration,
    Duration,
    rustls::ClientConnection,
    rustls::ServerConnection,
)> {
    let (mut tc, mut ts) = (Duration::ZERO, Duration::ZERO);
    let t = Instant::now();
    let mut c =
        rustls::ClientConnection::new(p.client.clone(), ServerName::try_from("localhost")?)?;
    tc += t.elapsed();
    let t = Instant::now();
    let mut s = rustls::ServerConnection::new(p.server.clone())?;
    ts += t.elapsed();
    let mut buf = Vec::with_capacity(8192);
    while c.is_handshaking() || s.is_handshaking() {
        let t = Instant::now();
        buf.clear();
        c.write_tls(&mut buf)?;
        tc += t.elapsed();
        let t = Instant::now();
        let mut r = &buf[..];
        while !r.is_empty() {
            s.read_tls(&mut r)?;
        }
        s.process_new_packets()?;
        buf.clear();
        s.write_tls(&mut buf)?;
        ts += t.elapsed();
        let t = Instant::now();
        let mut r = &buf[..];
        while !r.is_empty() {
            c.read_tls(&mut r)?;
        }
        c.process_new_packets()?;
        tc += t.elapsed();
    }
    // The client's Finished.
    let t = Instant::now();
    buf.clear();
    c.write_tls(&mut buf)?;
    tc += t.elapsed();
    let t = Instant::now();
    let mut r = &buf[..];
    while !r.is_empty() {
        s.read_tls(&mut r)?;
    }
    s.process_new_packets()?;
    ts += t.elapsed();
    Ok((tc, ts, c, s))
}

/// Mean of `f` over `seconds`.
fn per_op(seconds: f64, mut f: impl FnMut()) -> Duration {
    f();
    let start = Instant::now();
    let mut n = 0u32;
    while start.elapsed().as_secs_f64() < seconds {
        f();
        n += 1;
    }
    start.elapsed() / n.max(1)
}

/// The public-key work of one SM handshake, each operation alone.
fn sm2_bound(seconds: f64) -> Duration {
    use pki::tls::shangmi::TLS_SM2_ID;
    use sm2::dsa::signature::Signer as _;
    let key = pki::ca::Sm2Key::generate().unwrap();
    let peer = pki::ca::Sm2Key::generate().unwrap();
    let signer = sm2::dsa::SigningKey::new(TLS_SM2_ID, key.secret()).unwrap();
    let msg = [7u8; 130];
    let sig: sm2::dsa::Signature = signer.sign(&msg);
    let keygen = per_op(seconds / 4.0, || {
        std::hint::black_box(pki::ca::Sm2Key::generate().unwrap().public_sec1());
    });
    let peer_public = peer.public_key();
    let ecdh = per_op(seconds / 4.0, || {
        std::hint::black_box(elliptic_curve::ecdh::diffie_hellman(
            key.secret().to_nonzero_scalar(),
            peer_public.as_affine(),
        ));
    });
    let sign = per_op(seconds / 4.0, || {
        let s: sm2::dsa::Signature = signer.sign(&msg);
        std::hint::black_box(s);
    });
    // The two verifications as the handshake makes them (`pki::sm2_verify`):
    // CertificateVerify by the peer's own key, uncached; the certificate's
    // signature by the CA, a trust anchor whose comb is kept.
    let public = key.public_key();
    let new_key = per_op(seconds / 4.0, || {
        std::hint::black_box(
            pki::sm2_verify::verify_uncached(TLS_SM2_ID, &public, &msg, &sig).is_ok(),
        );
    });
    for _ in 0..2 {
        pki::sm2_verify::verify(TLS_SM2_ID, &public, &msg, &sig).unwrap();
    }
    let anchor = per_op(seconds / 4.0, || {
        std::hint::black_box(pki::sm2_verify::verify(TLS_SM2_ID, &public, &msg, &sig).is_ok());
    });
    2 * keygen + 2 * ecdh + sign + new_key + anchor
}

/// The same for ECDSA P-256 and secp256r1 ECDH through ring.
fn p256_bound(seconds: f64) -> Duration {
    use ring::agreement::{agree_ephemeral, EphemeralPrivateKey, UnparsedPublicKey, ECDH_P256};
    use ring::rand::SystemRandom;
    use ring::signature::{
        EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
    };
    let rng = SystemRandom::new();
    let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).unwrap();
    let key =
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng).unwrap();
    let msg = [7u8; 130];
    let sig = key.sign(&rng, &msg).unwrap();
    let peer = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
    let peer_pub = peer.compute_public_key().unwrap();
    let keygen = per_op(seconds / 4.0, || {
        let k = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        std::hint::black_box(k.compute_public_key().unwrap());
    });
    let ecdh = per_op(seconds / 4.0, || {
        let k = EphemeralPrivateKey::generate(&ECDH_P256, &rng).unwrap();
        let shared = agree_ephemeral(
            k,
            &UnparsedPublicKey::new(&ECDH_P256, peer_pub.as_ref()),
            |s| s.len(),
        );
        std::hint::black_box(shared.unwrap());
    }) - keygen;
    let sign = per_op(seconds / 4.0, || {
        std::hint::black_box(key.sign(&rng, &msg).unwrap());
    });
    let verify = per_op(seconds / 4.0, || {
        std::hint::black_box(
            ring::signature::UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, key.public_key())
                .verify(&msg, sig.as_ref())
                .is_ok(),
        );
    });
    2 * keygen + 2 * ecdh + sign + 2 * verify
}

/// Moves `bytes` (rounded up to 16 KiB records) client to server in 16 KiB
/// writes; MB/s.
fn bulk_tls(p: &Pki, bytes: usize) -> anyhow::Result<f64> {
    let (_, _, mut c, mut s) = handshake(p)?;
    let chunk = vec![0x5au8; 16 * 1024];
    let mut wire = Vec::with_capacity(20 * 1024);
    let mut sink = vec![0u8; 16 * 1024];
    let start = Instant::now();
    let mut moved = 0;
    while moved < bytes {
        c.writer().write_all(&chunk)?;
        wire.clear();
        c.write_tls(&mut wire)?;
        let mut r = &wire[..];
        while !r.is_empty() {
            s.read_tls(&mut r)?;
            s.process_new_packets()?;
            while let Ok(n) = s.reader().read(&mut sink) {
                if n == 0 {
                    break;
                }
                moved += n;
            }
        }
    }
    Ok(moved as f64 / start.elapsed().as_secs_f64() / 1e6)
}

/// Seals and opens `bytes` (rounded up to 16 KiB records) with the AEAD
/// itself, 16 KiB at a time; MB/s of plaintext. SM4 is `pki::sm4` (what the
/// suites use) or, with `old`, RustCrypto's `sm4` (what they used before
/// issue 15).
fn raw_aead(suite: CipherSuite, bytes: usize, old: bool) -> f64 {
    use aes_gcm::aead::consts::{U12, U16};
    use aes_gcm::aead::{AeadInOut, KeyInit};
    const RECORD: usize = 16 * 1024;
    let records = bytes.div_ceil(RECORD);
    let bytes = records * RECORD;
    fn run<A: AeadInOut<NonceSize = U12> + KeyInit>(records: usize) -> f64 {
        let aead = A::new_from_slice(&[7u8; 16]).unwrap();
        let mut buf = vec![0x5au8; RECORD];
        let nonce = [9u8; 12];
        let start = Instant::now();
        for _ in 0..records {
            let tag = aead
                .encrypt_inout_detached(&nonce.into(), b"hdr", buf.as_mut_slice().into())
                .unwrap();
            aead.decrypt_inout_detached(&nonce.into(), b"hdr", buf.as_mut_slice().into(), &tag)
                .unwrap();
        }
        (records * RECORD) as f64 / start.elapsed().as_secs_f64() / 1e6
    }
    if suite == TLS_SM4_GCM_SM3 && old {
        run::<aes_gcm::AesGcm<sm4::Sm4, U12>>(records)
    } else if suite == TLS_SM4_GCM_SM3 {
        run::<aes_gcm::AesGcm<pki::sm4::Sm4, U12>>(records)
    } else if suite == TLS_SM4_CCM_SM3 && old {
        run::<ccm::Ccm<sm4::Sm4, U16, U12>>(records)
    } else if suite == TLS_SM4_CCM_SM3 {
        run::<ccm::Ccm<pki::sm4::Sm4, U16, U12>>(records)
    } else {
        // ring's AES-128-GCM, as rustls' ring provider uses it.
        use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_128_GCM};
        let key = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &[7u8; 16]).unwrap());
        let mut buf = vec![0x5au8; RECORD];
        let start = Instant::now();
        for _ in 0..records {
            let tag = key
                .seal_in_place_separate_tag(
                    Nonce::assume_unique_for_key([9u8; 12]),
                    Aad::from(b"hdr"),
                    &mut buf,
                )
                .unwrap();
            let mut with_tag = std::mem::take(&mut buf);
            with_tag.extend_from_slice(tag.as_ref());
            key.open_in_place(
                Nonce::assume_unique_for_key([9u8; 12]),
                Aad::from(b"hdr"),
                &mut with_tag,
            )
            .unwrap();
            with_tag.truncate(RECORD);
            buf = with_tag;
        }
        bytes as f64 / start.elapsed().as_secs_f64() / 1e6
    }
}

/// Raw AEAD and TLS slices a bulk row alternates.
const SLICES: usize = 10;

/// Moves `mib` MiB over one quinn stream on loopback; MB/s.
async fn bulk_quic(p: &Pki, mib: usize) -> anyhow::Result<f64> {
    let server_cfg = pki::tls::quic_server_config(&p.server, b"bench")?;
    let client_cfg = pki::tls::quic_client_config(&p.client, b"bench")?;
    let server = quinn::Endpoint::server(server_cfg, "127.0.0.1:0".parse()?)?;
    let addr = server.local_addr()?;
    let mut client = quinn::Endpoint::client("127.0.0.1:0".parse()?)?;
    client.set_default_client_config(client_cfg);
    let total = mib << 20;
    let receiver = tokio::spawn(async move {
        let conn = server.accept().await.context("no connection")?.await?;
        let mut recv = conn.accept_uni().await?;
        let mut got = 0usize;
        let mut buf = vec![0u8; 64 * 1024];
        while let Some(n) = recv.read(&mut buf).await? {
            got += n;
        }
        conn.close(0u32.into(), b"done");
        Ok::<_, anyhow::Error>(got)
    });
    let conn = client.connect(addr, "localhost")?.await?;
    let start = Instant::now();
    let mut send = conn.open_uni().await?;
    let chunk = vec![0x5au8; 64 * 1024];
    let mut sent = 0;
    while sent < total {
        send.write_all(&chunk).await?;
        sent += chunk.len();
    }
    send.finish()?;
    let got = receiver.await??;
    let secs = start.elapsed().as_secs_f64();
    anyhow::ensure!(got == total, "QUIC moved {got} of {total} bytes");
    client.wait_idle().await;
    Ok(total as f64 / secs / 1e6)
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    println!("ShangMi channel benchmark (one core; in-memory TLS, loopback QUIC)");
    println!("\nHandshakes: full TLS 1.3, server authentication, no resumption");
    println!(
        "{:<40} | {:>9} | {:>9} | {:>9} | {:>12} | {:>9} | {:>6}",
        "suite", "client ms", "server ms", "both ms", "per s (core)", "bound ms", "x bound"
    );
    println!("{}", "-".repeat(110));
    let rows: [(&str, Pki, Duration); 2] = [
        (
            "TLS_SM4_GCM_SM3, curveSM2, SM2",
            shangmi(TLS_SM4_GCM_SM3)?,
            sm2_bound(args.seconds),
        ),
        (
            "TLS13_AES_128_GCM_SHA256, P-256, ECDSA",
            standard(CipherSuite::TLS13_AES_128_GCM_SHA256)?,
            p256_bound(args.seconds),
        ),
    ];
    for (name, pki, bound) in &rows {
        let start = Instant::now();
        let (mut tc, mut ts, mut n) = (Duration::ZERO, Duration::ZERO, 0u32);
        while start.elapsed().as_secs_f64() < args.seconds {
            let (c, s, _, _) = handshake(pki)?;
            tc += c;
            ts += s;
            n += 1;
        }
        let (c, s) = (tc / n, ts / n);
        let both = c + s;
        println!(
            "{:<40} | {:>9.3} | {:>9.3} | {:>9.3} | {:>12.0} | {:>9.3} | {:>6.2}",
            name,
            c.as_secs_f64() * 1e3,
            s.as_secs_f64() * 1e3,
            both.as_secs_f64() * 1e3,
            1.0 / both.as_secs_f64(),
            bound.as_secs_f64() * 1e3,
            both.as_secs_f64() / bound.as_secs_f64()
        );
    }
    println!(
        "goal: the SM handshake within 2x of its bound (two key generations, two ECDH, one sign, two verifies:\n  CertificateVerify by a new key, the certificate by the CA, a trust anchor with its comb kept)"
    );

    issuance(args.seconds)?;
    first_byte(args.connects)?;

    println!(
        "\nBulk: {} MiB in 16 KiB records (AES: 8 times as much)",
        args.mib
    );
    println!(
        "{:<26} | {:>13} | {:>13} | {:>12} | {:>10} | {:>12}",
        "suite", "old raw", "raw seal+open", "TLS MB/s", "TLS / raw", "QUIC MB/s"
    );
    println!("{}", "-".repeat(102));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    for (name, suite) in [
        ("TLS_SM4_GCM_SM3", TLS_SM4_GCM_SM3),
        ("TLS_SM4_CCM_SM3", TLS_SM4_CCM_SM3),
        (
            "TLS13_AES_128_GCM_SHA256",
            CipherSuite::TLS13_AES_128_GCM_SHA256,
        ),
    ] {
        let old = if suite == CipherSuite::TLS13_AES_128_GCM_SHA256 {
            "-".to_string()
        } else {
            format!("{:.0}", raw_aead(suite, (args.mib << 20) / 8, true))
        };
        let pki = if suite == CipherSuite::TLS13_AES_128_GCM_SHA256 {
            standard(suite)?
        } else {
            shangmi(suite)?
        };
        // AES gets through records far faster: more of it for a stable figure.
        let mib = if suite == CipherSuite::TLS13_AES_128_GCM_SHA256 {
            args.mib * 8
        } else {
            args.mib
        };
        // Raw and TLS in turns, as `bench appraise` times an appraisal and
        // its bound: each slice's ratio sees one machine, through slow
        // spells longer than a slice too (slices take milliseconds), and a
        // burst shorter than a slice spoils one, which the medians drop.
        let slice = (mib << 20) / SLICES;
        let (mut raws, mut tlss, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..SLICES {
            let r = raw_aead(suite, slice, false);
            let t = bulk_tls(&pki, slice)?;
            raws.push(r);
            tlss.push(t);
            ratios.push(t / r);
        }
        let (raw, tls, ratio) = (
            crate::bench::median(&mut raws),
            crate::bench::median(&mut tlss),
            crate::bench::median(&mut ratios),
        );
        let quic = if suite == TLS_SM4_CCM_SM3 {
            "-".to_string() // not offered over QUIC
        } else {
            format!("{:.0}", runtime.block_on(bulk_quic(&pki, mib))?)
        };
        println!(
            "{:<26} | {:>13} | {:>13.0} | {:>12.0} | {:>9.0}% | {:>12}",
            name,
            old,
            raw,
            tls,
            ratio * 100.0,
            quic
        );
    }
    println!(
        "MB/s of plaintext. Raw and TLS seal and open on one core, in {SLICES} alternating slices (the"
    );
    println!("medians; TLS / raw is the median of the slices' ratios); QUIC runs its sender and");
    println!(
        "receiver on two runtime threads (so it can pass TLS). AES: ring; SM4: pki::sm4 ({}) in",
        pki::sm4::Path::best().name()
    );
    println!(
        "aes-gcm/ccm; old raw (one run, an eighth of the bytes): RustCrypto sm4 (one block at a time,"
    );
    println!("table S-box), what the suites used before. SM4-CCM is not offered over QUIC.");
    println!("goal: the TLS record layer at least 80% of raw SM4-GCM");
    Ok(())
}

/// What an allow costs the PDP when the endpoint asked for credentials:
/// checking the request, signing the certificate, signing the ticket.
fn issuance(seconds: f64) -> anyhow::Result<()> {
    use tnc_proto::attestation::Role;
    let ca = pki::ca::Sm2Ca::create(
        "bench session CA",
        Duration::from_secs(86_400),
        std::time::SystemTime::now(),
    )?;
    let issuer = tnc_server::issue::Issuer::new(
        ca,
        Duration::from_secs(3600),
        [(Role::Terminal, vec!["vm-1".to_string()])].into(),
    );
    let key = pki::ca::Sm2Key::generate()?;
    let csr = pki::ca::make_request(&key, "bench channel key")?;
    let request = pki::ca::verify_request(&csr)?;
    let who = tnc_server::issue::Subject {
        device_id: [7; 32],
        role: Role::Terminal,
        user: Some("alice".into()),
        policy_version: 1,
        decided_at: tnc_server::pdp::system_clock(),
    };
    let check = per_op(seconds / 2.0, || {
        std::hint::black_box(pki::ca::verify_request(&csr).is_ok());
    });
    let issue = per_op(seconds / 2.0, || {
        std::hint::black_box(issuer.issue(&request, &who).is_ok());
    });
    println!("\nCredentials on allow (the PDP's cost per allow that asked for them)");
    println!("{:<52} | {:>9} | {:>9}", "step", "ms", "per s");
    println!("{}", "-".repeat(76));
    for (step, t) in [
        ("check the request (SM2 verify)", check),
        ("issue: certificate + ticket (two SM2 signatures)", issue),
        ("together", check + issue),
    ] {
        println!(
            "{:<52} | {:>9.3} | {:>9.0}",
            step,
            t.as_secs_f64() * 1e3,
            1.0 / t.as_secs_f64()
        );
    }
    Ok(())
}

/// `connect` to the first byte, `runs` times after one that obtains the
/// credentials; the table with the TPM's share measured apart.
fn first_byte(runs: usize) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let (handshake, channel, first, quote_ms) = runtime.block_on(async {
        use testnet::e2e::{serve_in_thread, write_host_files, PdpOptions, TestPdp};
        use tnc_client::agent::Agent;
        use tnc_proto::attestation::Role;
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let profile = testnet::simulator::Profile::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("profiles/good-terminal.toml"),
        )
        .map_err(|e| anyhow::anyhow!(e))?;
        let measurements = Arc::new(profile.measure().map_err(|e| anyhow::anyhow!(e))?);
        let dir = testnet::swtpm::scratch_dir("bench-first-byte")?;
        let os = tnc_client::os::OsFacts::collect(&write_host_files(&dir)?, false)?;
        // The VM's device ID is its EK certificate's hash: known before
        // the PDP starts, as the operator's `[ca] vm_names` needs it.
        let vm_id = testnet::e2e::soft_device_id("vm");
        let pdp = TestPdp::start_raw(
            &[(Role::Terminal, &profile), (Role::Vm, &profile)],
            (Vec::new(), Vec::new()),
            PdpOptions {
                issue_credentials: true,
                report: false,
                vm_names: [(vm_id, "vm-1".to_string())].into(),
                ..PdpOptions::default()
            },
        )
        .await?;
        let vm_collector = testnet::e2e::soft_device(&pdp, Role::Vm, "vm", &measurements).await?;
        let terminal =
            testnet::e2e::soft_device(&pdp, Role::Terminal, "terminal", &measurements).await?;
        let target = pdp.target(pki::tls::Suites::Standard)?;
        // The service behind the VM: one byte back for each byte.
        let echo_addr = testnet::e2e::echo_service().await?;
        let vm_agent = Agent::with_collector(os.clone(), Box::new(vm_collector()));
        let (vm, _) = serve_in_thread(
            &target,
            vm_agent,
            tnc_client::channel::ChannelKey::load_or_create(&dir.join("vm"))?,
            "vm-1",
            echo_addr,
            None,
        )
        .await?;
        let state = dir.join("terminal");
        let (mut handshake, mut channel, mut first) = (Vec::new(), Vec::new(), Vec::new());
        for run in 0..=runs {
            let agent = Agent::with_collector(os.clone(), Box::new(terminal()));
            let key = tnc_client::channel::ChannelKey::load_or_create(&state)?;
            let held = tnc_client::channel::load(&state);
            let start = Instant::now();
            let options = tnc_client::pairing::ConnectOptions {
                held,
                ..tnc_client::pairing::ConnectOptions::new("vm-1")
            };
            let opened = tnc_client::pairing::connect(&target, agent, key, options)
                .await
                .map_err(|e| anyhow::anyhow!("connect: {e}"))?;
            if let Some(g) = &opened.fresh {
                tnc_client::channel::save(&state, g)?;
            }
            let mut stream = opened.stream;
            stream.write_all(b"x").await?;
            let mut byte = [0u8; 1];
            stream.read_exact(&mut byte).await?;
            let total = start.elapsed();
            let _ = stream.shutdown().await;
            // The first run asks for credentials too: not timed.
            if run > 0 {
                handshake.push(opened.handshake);
                channel.push(opened.channel);
                first.push(total);
            }
        }
        vm.stop();
        pdp.stop().await?;
        let quote_ms = crate::bench_handshake::tpm_quote_ms().unwrap_or(f64::NAN);
        let sign_ms = tpm_sm2_sign_ms().unwrap_or(f64::NAN);
        Ok::<_, anyhow::Error>((handshake, channel, first, (quote_ms, sign_ms)))
    })?;
    let (quote_ms, sign_ms) = quote_ms;
    let ms = |d: &Duration| d.as_secs_f64() * 1e3;
    let stats = |v: &[Duration]| {
        let mut v: Vec<f64> = v.iter().map(ms).collect();
        v.sort_by(f64::total_cmp);
        let pick = |q: f64| v[((v.len() - 1) as f64 * q).round() as usize];
        (pick(0.0), pick(0.5), pick(0.9))
    };
    println!(
        "\n`connect` to the first byte ({runs} connects holding credentials; software AKs, loopback, SQLite store)"
    );
    println!(
        "{:<62} | {:>8} | {:>8} | {:>8}",
        "step", "min ms", "p50 ms", "p90 ms"
    );
    println!("{}", "-".repeat(96));
    for (step, v) in [
        (
            "integrity handshake + pairing (PDP appraises, pushes to VM)",
            &handshake,
        ),
        (
            "channel: TCP + ShangMi TLS + ticket + pairing proofs",
            &channel,
        ),
        ("connect to the first byte back (without the TPM)", &first),
    ] {
        let (lo, mid, hi) = stats(v);
        println!("{step:<62} | {lo:>8.2} | {mid:>8.2} | {hi:>8.2}");
    }
    let (_, mid, _) = stats(&first);
    println!(
        "{:<62} | {:>8} | {:>8.2} | {:>8}",
        "TPM apart: one TPM2_Quote on swtpm (ECDSA P-256 AK)", "", quote_ms, ""
    );
    println!(
        "{:<62} | {:>8} | {:>8.2} | {:>8}",
        "TPM apart: one SM2 signature by a channel key in swtpm", "", sign_ms, ""
    );
    println!(
        "{:<62} | {:>8} | {:>8.2} | {:>8}",
        "with TPMs (p50 + quote + two CertificateVerify signatures)",
        "",
        mid + quote_ms + 2.0 * sign_ms,
        ""
    );
    println!(
        "(a connect without valid credentials also asks for them: their cost on the PDP is the\n\
         credentials table above; the first connect here did, and is not timed)"
    );
    Ok(())
}

/// One CertificateVerify signature by a channel key in swtpm, as the
/// channel makes it: open the TPM, derive the key (TPM2_CreatePrimary),
/// TPM2_Sign, flush, close. The mean over 10, in ms.
fn tpm_sm2_sign_ms() -> anyhow::Result<f64> {
    use tnc_client::tpm::{Tpm, TpmConfig};
    let swtpm = testnet::swtpm::Swtpm::start(&Default::default())?;
    let config = TpmConfig::parse(&swtpm.tcti())?;
    let unique = [7u8; 32];
    Tpm::open(&config)?.sm2_sign_digest(&unique, &[1; 32])?;
    let start = Instant::now();
    for i in 0..10u8 {
        Tpm::open(&config)?.sm2_sign_digest(&unique, &[i; 32])?;
    }
    Ok(start.elapsed().as_secs_f64() * 1e3 / 10.0)
}
