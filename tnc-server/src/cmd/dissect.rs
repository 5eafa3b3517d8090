//! `tnc-server dissect`: render a [`tnc_proto::dissect`] tree as text or JSON.

use clap::{Args as ClapArgs, ValueEnum};
use serde_json::{json, Value};
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use tnc_proto::dissect::{dissect, Dissection, Layer, Node};

/// Inputs larger than this are refused: a dissector reads files, not streams,
/// and a PT-TLS session rarely carries more than a few megabytes.
const MAX_INPUT: u64 = 256 * 1024 * 1024;

#[derive(ClapArgs, Debug)]
pub struct Args {
    /// Protocol the input starts with.
    #[arg(long, value_enum, default_value_t = LayerArg::PtTls)]
    layer: LayerArg,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
    /// Largest PT-TLS message accepted, header included, in bytes.
    #[arg(long, default_value_t = tnc_proto::pt_tls::DEFAULT_MAX_MESSAGE_LEN)]
    max_message_len: u32,
    /// Input file, or `-` for standard input.
    file: PathBuf,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LayerArg {
    PtTls,
    PbTnc,
    PaTnc,
}

impl From<LayerArg> for Layer {
    fn from(l: LayerArg) -> Layer {
        match l {
            LayerArg::PtTls => Layer::PtTls,
            LayerArg::PbTnc => Layer::PbTnc,
            LayerArg::PaTnc => Layer::PaTnc,
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let bytes = super::input::read_bounded(&args.file, MAX_INPUT)?;
    let layer = Layer::from(args.layer);
    let d = dissect(layer, &bytes, args.max_message_len);
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &to_json(layer, bytes.len(), &d))?;
        writeln!(out)?;
    } else {
        write!(out, "{d}")?;
        if d.faults.is_empty() {
            writeln!(out, "{} bytes, well-formed {}", bytes.len(), layer.name())?;
        }
    }
    Ok(if d.faults.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn node_json(n: &Node) -> Value {
    let mut v = json!({ "field": n.label });
    if let Some(o) = n.offset {
        v["offset"] = json!(o);
    }
    if let Some(val) = &n.value {
        v["value"] = json!(val);
    }
    if !n.children.is_empty() {
        v["children"] = Value::Array(n.children.iter().map(node_json).collect());
    }
    v
}

fn to_json(layer: Layer, len: usize, d: &Dissection) -> Value {
    json!({
        "layer": layer.name(),
        "length": len,
        "well_formed": d.faults.is_empty(),
        "nodes": d.nodes.iter().map(node_json).collect::<Vec<_>>(),
        "faults": d.faults.iter().map(|f| json!({
            "layer": f.layer.name(),
            "offset": f.offset,
            "protocol_error": f.protocol_error,
            "detail": f.detail,
        })).collect::<Vec<_>>(),
    })
}
