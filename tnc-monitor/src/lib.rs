//! `tnc-monitor`: the operator's live view of a PDP over its admin API
//! (docs/admin-api.md). `app` holds the state and what keys do, `ui` draws
//! it, `main.rs` runs the terminal and the network. No store access: what
//! an admin certificate lets the API show is what the monitor shows.

#![forbid(unsafe_code)]

pub mod app;
pub mod ui;

/// One session event (the admin API's event stream, JSON) as a line of the
/// events pane.
pub fn event_line(json: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    let kind = v["event"].as_str()?;
    // The time of day, UTC.
    let at = v["at"].as_u64().map_or("--:--:--".into(), |t| {
        let s = t % 86_400;
        format!("{:02}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    });
    let short = |k: &str| {
        v[k].as_str()
            .map(|s| s.get(..12).unwrap_or(s).to_string())
            .unwrap_or_else(|| "-".into())
    };
    Some(match kind {
        "decided" => {
            let findings = v["findings"].as_array().map_or(0, Vec::len);
            format!(
                "{at} decided: {} {} {}{} ({:.0} ms, {})",
                short("device"),
                v["role"].as_str().unwrap_or("-"),
                v["verdict"].as_str().unwrap_or("?"),
                if findings > 0 {
                    format!(", {findings} finding(s)")
                } else {
                    String::new()
                },
                v["ms"].as_f64().unwrap_or(0.0),
                v["peer"].as_str().unwrap_or("-")
            )
        }
        "reassessed" => format!(
            "{at} re-assessed ({}): {} {} {}",
            v["why"].as_str().unwrap_or("-"),
            short("device"),
            v["role"].as_str().unwrap_or("-"),
            v["verdict"].as_str().unwrap_or("?"),
        ),
        "failed" => format!(
            "{at} failed: {} {}",
            v["peer"].as_str().unwrap_or("-"),
            v["why"].as_str().unwrap_or("")
        ),
        "opened" => format!(
            "{at} opened: {} over {}",
            v["peer"].as_str().unwrap_or("-"),
            v["transport"].as_str().unwrap_or("?")
        ),
        "closed" => format!("{at} closed: {}", v["peer"].as_str().unwrap_or("-")),
        other => format!("{at} {other}"),
    })
}
