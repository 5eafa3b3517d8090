//! The PDP's log: one record per line, whatever a peer wrote. User names,
//! reason strings, product names and paths from evidence come from peers; a
//! newline in one would start a forged record, and ESC or CR would reach the
//! operator's terminal. Every field (the message included) is written with
//! its control characters escaped (`\n`, `\r`, `\u{1b}`), so escaping does
//! not depend on each call site remembering it.

use std::fmt::{self, Write as _};
use tracing::field::{Field, Visit};
use tracing_subscriber::field::RecordFields;
use tracing_subscriber::fmt::format::{FormatFields, Writer};

/// Installs the PDP's subscriber on stderr: `TNC_LOG` filters (default
/// `info`), ANSI colours only on a terminal, fields escaped.
pub fn init() {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("TNC_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .fmt_fields(EscapedFields)
        .init();
}

/// Formats fields as `tracing_subscriber`'s default does (`name=value`, the
/// message bare, text values quoted), with control characters escaped.
#[derive(Clone, Copy, Debug, Default)]
pub struct EscapedFields;

impl<'w> FormatFields<'w> for EscapedFields {
    fn format_fields<R: RecordFields>(&self, mut writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut visitor = Visitor { out: String::new() };
        fields.record(&mut visitor);
        writer.write_str(&visitor.out)
    }
}

struct Visitor {
    out: String,
}

impl Visitor {
    fn field(&mut self, field: &Field, value: &str) {
        if !self.out.is_empty() {
            self.out.push(' ');
        }
        if field.name() != "message" {
            self.out.push_str(field.name());
            self.out.push('=');
        }
        escape_into(&mut self.out, value);
    }
}

impl Visit for Visitor {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.field(field, &format!("{value:?}"));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        // `%x` fields arrive here too, their Debug being their Display.
        self.field(field, &format!("{value:?}"));
    }
}

/// Appends `text` with every control character (C0, DEL, C1) and the
/// Unicode line and paragraph separators escaped.
pub fn escape_into(out: &mut String, text: &str) {
    for c in text.chars() {
        if c.is_control() || c == '\u{2028}' || c == '\u{2029}' {
            let _ = write!(out, "{}", c.escape_default());
        } else {
            out.push(c);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_forged_record_stays_inside_its_field() {
        let buffer = Buffer::default();
        let writer = buffer.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .fmt_fields(EscapedFields)
            .finish();
        let user = "mallory\n2026-12-04T00:00:00Z  INFO session decided verdict=allow\r\x1b[2J";
        tracing::subscriber::with_default(subscriber, || {
            tracing::warn!(user = %user, reason = ?user, "SASL PLAIN: wrong password for {user}");
        });
        let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
        assert_eq!(text.lines().count(), 1, "{text}");
        assert!(!text.contains('\r') && !text.contains('\x1b'), "{text:?}");
        assert!(text.contains("user=mallory\\n2026"), "{text}");
        assert!(text.contains("\\r\\u{1b}[2J"), "{text}");
        assert!(
            text.contains("SASL PLAIN: wrong password for mallory\\n"),
            "{text}"
        );
    }

    #[test]
    fn ordinary_text_is_unchanged() {
        let mut out = String::new();
        escape_into(&mut out, "Debian 12 x86_64 /usr/sbin/nginx Ünïcode");
        assert_eq!(out, "Debian 12 x86_64 /usr/sbin/nginx Ünïcode");
        out.clear();
        escape_into(&mut out, "a\u{2028}b\u{85}c\u{7f}");
        assert_eq!(out, "a\\u{2028}b\\u{85}c\\u{7f}");
    }
}
