//! `testnet demo`: a whole NEA exchange between tnc-proto's client and server
//! state machines, printed message by message as the dissector reads them.
//!
//! The terminal side reports this machine's real operating-system facts through
//! `tnc-client`'s OS collector. The server side applies a small demonstration OS
//! policy (known product, IP forwarding off, a package inventory present); the
//! PDP with real validators, TPM evidence and a network listener replaces it in
//! later work. Nothing here touches the network: the two endpoints are joined in
//! memory, which is exactly what a TLS session would carry as plaintext.

use anyhow::{bail, Context};
use tnc_client::os::{OsFacts, OsPaths};
use tnc_proto::common::{AssessmentResult, Remediation};
use tnc_proto::dissect::{dissect, Dissection, Layer, Node};
use tnc_proto::pa_tnc::{
    ietf_attr, Attribute, AttributeId, ForwardingEnabled, PaMessage, PaMessageWriter, PaSubtype,
};
use tnc_proto::pb_tnc::{
    AccessRecommendation, Batch, BatchType, PbMessage, PbPa, PbSession, Side, ID_ANY,
};
use tnc_proto::pt_tls::sasl::PlainCredentials;
use tnc_proto::pt_tls::{
    ClientConnection, Event, Limits, SaslPolicy, ServerConnection, DEFAULT_MAX_MESSAGE_LEN,
};

/// Collector and validator identifiers of the OS pair.
const OS_IMC: u16 = 1;
const OS_IMV: u16 = 1;
/// List entries shown per field unless `--full`.
const SHOWN: usize = 5;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Print every package of the inventory instead of the first few.
    #[arg(long)]
    full: bool,
}

/// The two endpoints and what has been printed.
struct Wire {
    client: ClientConnection,
    server: ServerConnection,
    full: bool,
    bytes: [usize; 2],
    messages: [usize; 2],
}

impl Wire {
    /// Moves the client's pending output to the server, printing it.
    fn deliver_to_server(&mut self) -> Vec<Event> {
        let bytes = self.client.take_output();
        self.print("terminal -> PDP", &bytes, 0);
        self.server.receive(&bytes);
        std::iter::from_fn(|| self.server.poll_event()).collect()
    }

    /// Moves the server's pending output to the client, printing it.
    fn deliver_to_client(&mut self) -> Vec<Event> {
        let bytes = self.server.take_output();
        self.print("PDP -> terminal", &bytes, 1);
        self.client.receive(&bytes);
        std::iter::from_fn(|| self.client.poll_event()).collect()
    }

    fn print(&mut self, arrow: &str, bytes: &[u8], dir: usize) {
        let mut d = dissect(Layer::PtTls, bytes, DEFAULT_MAX_MESSAGE_LEN);
        self.bytes[dir] += bytes.len();
        self.messages[dir] += d.nodes.len();
        if !self.full {
            shorten(&mut d.nodes);
        }
        for node in d.nodes {
            println!("--- {arrow}");
            print!(
                "{}",
                Dissection {
                    nodes: vec![node],
                    faults: Vec::new()
                }
            );
        }
        for f in d.faults {
            println!("MALFORMED: {f}");
        }
    }
}

/// Keeps the first few of each run of same-named leaves (package lists).
fn shorten(nodes: &mut Vec<Node>) {
    for n in nodes.iter_mut() {
        shorten(&mut n.children);
    }
    let count = nodes.iter().filter(|n| n.label == "Package").count();
    if count > SHOWN {
        let mut seen = 0;
        nodes.retain(|n| {
            seen += usize::from(n.label == "Package");
            n.label != "Package" || seen <= SHOWN
        });
        nodes.push(Node {
            label: format!("... {} more packages (--full shows them)", count - SHOWN),
            offset: None,
            value: None,
            children: Vec::new(),
        });
    }
}

fn section(title: &str) {
    println!("\n=== {title} ===");
}

fn one_batch(events: Vec<Event>) -> anyhow::Result<Vec<u8>> {
    let mut batches = events.into_iter().filter_map(|e| match e {
        Event::Batch(b) => Some(b),
        _ => None,
    });
    match (batches.next(), batches.next()) {
        (Some(b), None) => Ok(b),
        _ => bail!("expected exactly one PB-TNC batch"),
    }
}

fn os_pa(from: Side, body: &[u8]) -> PbMessage<'_> {
    PbMessage::Pa(PbPa {
        exclusive: from == Side::Server,
        subtype: PaSubtype::OPERATING_SYSTEM,
        collector_id: OS_IMC,
        validator_id: if from == Side::Client { ID_ANY } else { OS_IMV },
        body,
    })
}

/// What the demonstration OS validator has learned about the endpoint.
#[derive(Default, Debug)]
struct OsReport {
    product: Option<String>,
    forwarding: Option<ForwardingEnabled>,
    packages: Option<usize>,
}

impl OsReport {
    fn absorb(&mut self, batch: &Batch<'_>) -> anyhow::Result<()> {
        for pa in batch.pa_messages() {
            let msg = PaMessage::decode(pa.body).context("PA-TNC message from the terminal")?;
            for raw in &msg.attributes {
                match raw.parse()? {
                    Attribute::ProductInformation(p) => self.product = Some(p.name.to_string()),
                    Attribute::ForwardingEnabled(f) => self.forwarding = Some(f),
                    Attribute::InstalledPackages(p) => self.packages = Some(p.packages.len()),
                    _ => {}
                }
            }
        }
        Ok(())
    }

    /// The demonstration policy: every finding lowers the verdict.
    fn verdict(&self) -> (AssessmentResult, AccessRecommendation, Vec<String>) {
        let mut findings = Vec::new();
        if self.product.is_none() {
            findings.push("no product information".to_string());
        }
        match self.forwarding {
            Some(ForwardingEnabled::Disabled) => {}
            Some(f) => findings.push(format!("IP forwarding is {f:?}, policy wants Disabled")),
            None => findings.push("forwarding state not reported".to_string()),
        }
        if self.packages.unwrap_or(0) == 0 {
            findings.push("no package inventory".to_string());
        }
        if findings.is_empty() {
            (
                AssessmentResult::Compliant,
                AccessRecommendation::Allowed,
                findings,
            )
        } else {
            (
                AssessmentResult::NonCompliantMinor,
                AccessRecommendation::Quarantined,
                findings,
            )
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let facts = OsFacts::collect(&OsPaths::default(), false)
        .context("reading /etc/os-release for the terminal's OS facts")?;
    println!("NEA demo: a terminal logs in to the PDP with PT-TLS (RFC 6876), PB-TNC");
    println!("(RFC 5793) and PA-TNC (RFC 5792), both sides driven through tnc-proto's");
    println!("sans-IO state machines and joined in memory. Offsets are per message chunk.");
    println!(
        "The terminal reports this machine: {} {} ({}), {} packages.",
        facts.product,
        facts.version_id,
        facts.arch,
        facts.packages.len()
    );

    let user = "alice";
    let password = "demo-password";
    let mut wire = Wire {
        client: ClientConnection::new(
            Limits::default(),
            Some(PlainCredentials::new(user, password)),
        ),
        server: ServerConnection::new(Limits::default(), SaslPolicy::Plain { max_attempts: 3 }),
        full: args.full,
        bytes: [0; 2],
        messages: [0; 2],
    };

    section("PT-TLS negotiation: version, then SASL PLAIN (RFC 4616)");
    wire.deliver_to_server();
    wire.deliver_to_client();
    let events = wire.deliver_to_server();
    let Some(Event::Authenticate(creds)) = events
        .into_iter()
        .find(|e| matches!(e, Event::Authenticate(_)))
    else {
        bail!("the PDP did not receive credentials");
    };
    // The demo's user table has one entry; the PDP checks argon2id hashes from
    // its store instead.
    let accepted = creds.authcid == user && creds.password.expose() == password;
    println!(
        "--- PDP checks user {:?}: {}",
        creds.authcid,
        if accepted { "accepted" } else { "rejected" }
    );
    wire.server.authentication_result(accepted);
    let events = wire.deliver_to_client();
    if !events.contains(&Event::Ready) {
        bail!("negotiation did not finish: {events:?}");
    }

    let mut client = PbSession::new(Side::Client);
    let mut server = PbSession::new(Side::Server);
    let mut report = OsReport::default();

    section("PB-TNC CDATA: the OS collector volunteers its posture");
    let posture = facts
        .posture()
        .iter()
        .fold(PaMessageWriter::new(1), |w, a| w.attribute(false, a))
        .finish();
    let batch = client.send(
        BatchType::CData,
        vec![
            PbMessage::LanguagePreference("Accept-Language: en"),
            os_pa(Side::Client, &posture),
        ],
    )?;
    wire.client.send_batch(&batch)?;
    let got = one_batch(wire.deliver_to_server())?;
    report.absorb(&server.receive(&got)?)?;

    section("PB-TNC SDATA: the OS validator asks for the package inventory");
    let request = PaMessageWriter::new(1000)
        .attribute(
            false,
            &Attribute::AttributeRequest(vec![AttributeId::ietf(ietf_attr::INSTALLED_PACKAGES)]),
        )
        .finish();
    let batch = server.send(BatchType::SData, vec![os_pa(Side::Server, &request)])?;
    wire.server.send_batch(&batch)?;
    let got = one_batch(wire.deliver_to_client())?;
    let asked = client.receive(&got)?;
    let wants_packages = asked.pa_messages().any(|pa| {
        PaMessage::decode(pa.body).is_ok_and(|m| {
            m.attributes.iter().any(|a| {
                matches!(a.parse(), Ok(Attribute::AttributeRequest(ids))
                    if ids.contains(&AttributeId::ietf(ietf_attr::INSTALLED_PACKAGES)))
            })
        })
    });

    section("PB-TNC CDATA: the OS collector answers");
    let answer = if wants_packages {
        PaMessageWriter::new(2)
            .attribute(false, &facts.installed_packages())
            .finish()
    } else {
        PaMessageWriter::new(2).finish()
    };
    let batch = client.send(BatchType::CData, vec![os_pa(Side::Client, &answer)])?;
    wire.client.send_batch(&batch)?;
    let got = one_batch(wire.deliver_to_server())?;
    report.absorb(&server.receive(&got)?)?;

    section("PB-TNC RESULT: the PDP's decision");
    let (result, recommendation, findings) = report.verdict();
    let reason = if findings.is_empty() {
        "operating system complies with policy".to_string()
    } else {
        findings.join("; ")
    };
    let verdict = PaMessageWriter::new(1001)
        .attribute(false, &Attribute::AssessmentResult(result))
        .finish();
    let mut messages = vec![
        os_pa(Side::Server, &verdict),
        PbMessage::AssessmentResult(result),
        PbMessage::AccessRecommendation(recommendation),
        PbMessage::ReasonString {
            text: &reason,
            lang: "en",
        },
    ];
    if recommendation != AccessRecommendation::Allowed {
        messages.push(PbMessage::RemediationParameters(Remediation::String {
            text: &reason,
            lang: "en",
        }));
    }
    let batch = server.send(BatchType::Result, messages)?;
    wire.server.send_batch(&batch)?;
    let got = one_batch(wire.deliver_to_client())?;
    let decided = client.receive(&got)?;

    section("PB-TNC CLOSE: the terminal ends the session");
    let batch = client.send(BatchType::Close, vec![])?;
    wire.client.send_batch(&batch)?;
    let got = one_batch(wire.deliver_to_server())?;
    server.receive(&got)?;

    let seen = decided.messages.iter().find_map(|m| match m {
        PbMessage::AccessRecommendation(a) => Some(*a),
        _ => None,
    });
    section("Summary");
    println!(
        "terminal -> PDP: {} PT-TLS messages, {} bytes",
        wire.messages[0], wire.bytes[0]
    );
    println!(
        "PDP -> terminal: {} PT-TLS messages, {} bytes",
        wire.messages[1], wire.bytes[1]
    );
    println!(
        "PB-TNC states at the end: terminal {}, PDP {}",
        client.state().name(),
        server.state().name()
    );
    println!(
        "verdict received by the terminal: {} ({})",
        seen.map_or("none", |a| a.name()),
        reason
    );
    if seen != Some(recommendation) {
        bail!("the terminal saw {seen:?}, the PDP sent {recommendation:?}");
    }
    Ok(())
}
