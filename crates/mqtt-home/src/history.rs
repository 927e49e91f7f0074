//! `mqtt-home history`: what happened, read straight from the recorder's database.
//!
//! It opens the file read-only (the recorder may be writing: WAL lets both run), so it works with
//! the broker down and never creates a database. `--since` takes a duration back from now (`1h`,
//! `7d`, `90m`) or a time with any offset ([`protocol::Timestamp::parse_since`], as `/api/history` does); the output is a table for people, `--json` (one array) or
//! `--csv` for tools.

use std::io::Write;
use std::path::Path;

use anyhow::Context;
use store::classify::Kind;
use store::{Query, Row, Store};

/// How the records are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Table,
    Json,
    Csv,
}

/// Prints the records `query` selects from `database` to `out`.
pub fn print(database: &Path, query: &Query, format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    let store = Store::open_read_only(database).with_context(|| {
        format!(
            "no history to read at {}: is the recorder running, and is --database the file it writes \
             (recorder --database, RECORDER_DATABASE)?",
            database.display()
        )
    })?;
    let rows = store.history(query)?;
    render(&rows, query, format, out)
}

/// Writes `rows` (what `query` selected) to `out` in `format`.
pub fn render(rows: &[Row], query: &Query, format: Format, out: &mut dyn Write) -> anyhow::Result<()> {
    match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut *out, rows)?;
            writeln!(out)?;
        }
        Format::Csv => {
            writeln!(out, "time,kind,device,user,summary,topic")?;
            for r in rows {
                let fields = [
                    r.received.to_string(),
                    r.kind.clone(),
                    r.device.clone().unwrap_or_default(),
                    r.user.clone().unwrap_or_default(),
                    r.summary.clone(),
                    r.topic.clone(),
                ];
                let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
                writeln!(out, "{}", line.join(","))?;
            }
        }
        Format::Table => table(rows, query, out)?,
    }
    Ok(())
}

fn table(rows: &[Row], query: &Query, out: &mut dyn Write) -> anyhow::Result<()> {
    if rows.is_empty() {
        let kind = query.kind.map(|k| format!(" of kind {k}")).unwrap_or_default();
        let device = query.device.as_deref().map(|d| format!(" for {d}")).unwrap_or_default();
        writeln!(out, "nothing recorded since {}{kind}{device}", query.since)?;
        return Ok(());
    }
    let device_width = rows.iter().map(|r| r.device.as_deref().unwrap_or("-").len()).max().unwrap_or(1);
    let kind_width = rows.iter().map(|r| r.kind.len()).max().unwrap_or(1);
    for r in rows {
        // 2026-11-26T08:00:01.234Z → 2026-11-26 08:00:01
        let time = r.received.to_string().replace('T', " ");
        let time = time.get(..19).unwrap_or(&time);
        let device = r.device.as_deref().unwrap_or("-");
        writeln!(out, "{time}  {:kind_width$}  {device:device_width$}  {}", r.kind, r.summary)?;
    }
    if query.limit.is_some_and(|l| rows.len() as u64 >= l) {
        writeln!(out, "(the last {} records; --limit shows more)", rows.len())?;
    }
    Ok(())
}

fn csv_field(field: &str) -> String {
    if field.contains([',', '"', '\n']) { format!("\"{}\"", field.replace('"', "\"\"")) } else { field.to_owned() }
}

/// The `--kind` values, for clap.
pub fn parse_kind(s: &str) -> Result<Kind, String> {
    s.parse()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("plain"), "plain");
        assert_eq!(csv_field("a, \"b\""), "\"a, \"\"b\"\"\"");
    }
}
