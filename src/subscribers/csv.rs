//! Subscriber lists in and out as CSV. Import streams the file (never holds it whole),
//! imports every good row and reports each bad one by line. Every cell Herald writes is
//! safe to open in a spreadsheet (see [`neutralise`]).

use std::borrow::Cow;
use std::cell::RefCell;
use std::collections::hash_map::Entry;
use std::collections::{HashMap, VecDeque};
use std::io::Read;
use std::rc::Rc;

use anyhow::{Context, bail};
use chrono::Utc;
use serde::Serialize;

use crate::domain::{Actor, EmailAddress, Frequency, SubscriberStatus, parse_name, parse_topics};
use crate::store::Db;
use crate::store::subscribers::{ImportOutcome, ImportRow, ListFilter, import_batch, list};

const BATCH: usize = 500;

/// How to treat the rows.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// Rows without a status (or with `pending`) become confirmed: the list's consent was
    /// collected elsewhere.
    pub confirmed: bool,
    /// Set every row's status as it is, even bringing back unsubscribed, bounced and
    /// complained addresses (see [`crate::domain::SubscriberEvent::Imported`]).
    pub force: bool,
}

/// A row that was not imported, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RowProblem {
    pub line: u64,
    pub reason: String,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ImportReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    /// Good rows left alone on purpose: the state machine refused their status for the
    /// address (departed addresses are not brought back without `force`).
    pub kept: Vec<RowProblem>,
    /// Rows that could not be read.
    pub failed: Vec<RowProblem>,
    /// Rows of addresses erased at their owners' request: never imported (only their owner
    /// can come back, by subscribing on the form).
    pub erased: Vec<RowProblem>,
}

impl std::fmt::Display for ImportReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} updated, {} unchanged, {} kept as they were, {} failed",
            self.added,
            self.updated,
            self.unchanged,
            self.kept.len(),
            self.failed.len()
        )?;
        if !self.erased.is_empty() {
            write!(f, ", {} erased at their request (not imported)", self.erased.len())?;
        }
        Ok(())
    }
}

struct Columns {
    email: usize,
    name: Option<usize>,
    frequency: Option<usize>,
    topics: Option<usize>,
    status: Option<usize>,
}

fn columns(header: &csv::ByteRecord) -> anyhow::Result<Columns> {
    let names: Vec<String> = header
        .iter()
        .map(|f| {
            String::from_utf8_lossy(f)
                .trim()
                .trim_start_matches('\u{feff}')
                .to_ascii_lowercase()
        })
        .collect();
    let find = |name: &str| names.iter().position(|n| n == name);
    let Some(email) = find("email") else {
        if names.iter().any(|n| n.contains('@')) {
            bail!(
                "line 1: the file has no header; its first line must name the columns, e.g. email,name,frequency,topics,status"
            );
        }
        bail!("line 1: the header has no `email` column (found: {})", names.join(","));
    };
    Ok(Columns {
        email,
        name: find("name"),
        frequency: find("frequency"),
        topics: find("topics"),
        status: find("status"),
    })
}

/// Characters that make a spreadsheet read a cell as a formula when they come first
/// (OWASP, "CSV Injection"): `=`, `+`, `-`, `@`, tab and carriage return.
const FORMULA_TRIGGERS: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell as Herald writes it: one that starts with a formula trigger gets a leading `'`,
/// which spreadsheets take as "this is text", as OWASP recommends (a subscriber's name
/// comes from the public form). A cell that starts with `'` gets one too, so that
/// [`restore`] gives back exactly what was written.
pub fn neutralise(cell: &str) -> Cow<'_, str> {
    match cell.chars().next() {
        Some(c) if c == '\'' || FORMULA_TRIGGERS.contains(&c) => Cow::Owned(format!("'{cell}")),
        _ => Cow::Borrowed(cell),
    }
}

/// The inverse of [`neutralise`], on import: a cell that starts with `'` followed by a
/// formula trigger or another `'` loses that first `'`. An export imports as it was.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with('\'') || rest.starts_with(FORMULA_TRIGGERS) => rest,
        _ => cell,
    }
}

fn field<'r>(record: &'r csv::ByteRecord, index: Option<usize>, column: &str) -> Result<&'r str, String> {
    match index.and_then(|i| record.get(i)) {
        None => Ok(""),
        Some(bytes) => std::str::from_utf8(bytes)
            .map(|cell| restore(cell.trim()))
            .map_err(|_| format!("{column}: not UTF-8 text (save the file as UTF-8)")),
    }
}

fn parse_row(
    line: u64,
    record: &csv::ByteRecord,
    cols: &Columns,
    options: ImportOptions,
    known_topics: &std::collections::BTreeSet<String>,
) -> Result<ImportRow, String> {
    let email = EmailAddress::parse(field(record, Some(cols.email), "email")?).map_err(|e| format!("email: {e}"))?;
    let name = parse_name(field(record, cols.name, "name")?).map_err(|e| format!("name: {e}"))?;
    let frequency = match field(record, cols.frequency, "frequency")? {
        "" => None,
        f => Some(f.parse::<Frequency>().map_err(|e| e.to_string())?),
    };
    let topics = match field(record, cols.topics, "topics")? {
        "" => None,
        t => {
            let topics = parse_topics(t.split([',', ';', '|'])).map_err(|e| format!("topics: {e}"))?;
            crate::domain::check_topics(&topics, known_topics).map_err(|e| format!("topics: {e}"))?;
            Some(topics)
        }
    };
    let status = match field(record, cols.status, "status")? {
        "" => None,
        s => Some(s.parse::<SubscriberStatus>().map_err(|e| e.to_string())?),
    };
    let status = match status {
        None | Some(SubscriberStatus::Pending) if options.confirmed => SubscriberStatus::Confirmed,
        None => SubscriberStatus::Pending,
        Some(s) => s,
    };
    Ok(ImportRow {
        line,
        email,
        name,
        frequency,
        topics,
        status,
    })
}

/// Counts the line ends in what the CSV reader reads, so that a record's byte offset gives
/// its line in the file as an editor numbers it (the csv crate's own count comes out one
/// short for files with CRLF line ends, as spreadsheets write them).
struct LineCount<R> {
    inner: R,
    ends: Rc<RefCell<LineEnds>>,
}

#[derive(Default)]
struct LineEnds {
    /// Bytes read so far.
    read: u64,
    /// Offsets of the `\r`s and `\n`s read but not yet passed by a record (true for `\n`).
    ahead: VecDeque<(u64, bool)>,
    /// Line ends before the last record asked about.
    passed: u64,
}

impl LineEnds {
    /// The 1-based line of the record the reader says starts at `offset`. The reader puts a
    /// record's start right after the previous one's terminator, before any line ends it
    /// skips (the `\n` of a CRLF, blank lines): those count too. Offsets must not go back.
    fn line_at(&mut self, offset: u64) -> u64 {
        while self.ahead.front().is_some_and(|&(at, _)| at < offset) {
            if self.ahead.pop_front().is_some_and(|(_, newline)| newline) {
                self.passed += 1;
            }
        }
        let skipped = self
            .ahead
            .iter()
            .zip(offset..)
            .take_while(|((at, _), expected)| at == expected)
            .filter(|((_, newline), _)| *newline)
            .count();
        self.passed + 1 + skipped as u64
    }
}

impl<R: Read> Read for LineCount<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        let mut ends = self.ends.borrow_mut();
        let start = ends.read;
        for (i, b) in buf[..n].iter().enumerate() {
            if matches!(b, b'\r' | b'\n') {
                ends.ahead.push_back((start + i as u64, *b == b'\n'));
            }
        }
        ends.read += n as u64;
        Ok(n)
    }
}

enum Batch {
    Rows(Vec<ImportRow>, Vec<RowProblem>, u64),
    Fatal(anyhow::Error),
}

/// Imports a CSV stream, as an import of no named file (see [`import_csv_as`]).
pub async fn import_csv<R: Read + Send + 'static>(
    db: &Db,
    reader: R,
    options: ImportOptions,
    default_frequency: Frequency,
    progress: impl Fn(u64),
) -> anyhow::Result<ImportReport> {
    import_csv_as(db, reader, options, default_frequency, &Actor::import(None), progress).await
}

/// Imports a CSV stream; `by` (the file's name) is kept in the history of every subscriber
/// it adds or changes. A row whose address is on the suppression list (erased at its
/// owner's request) is refused and reported with its line. `progress` is told how many bytes
/// have been read so far.
pub async fn import_csv_as<R: Read + Send + 'static>(
    db: &Db,
    reader: R,
    options: ImportOptions,
    default_frequency: Frequency,
    by: &Actor,
    progress: impl Fn(u64),
) -> anyhow::Result<ImportReport> {
    let key = super::suppression::suppression_key(db).await?;
    // A topic no post has would leave its reader without mail: such rows are refused.
    let known_topics = crate::store::posts::known_topics(db).await?;
    // The CSV reader is blocking: it runs on its own thread and hands over bounded batches,
    // so memory stays flat whatever the file's size.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Batch>(2);
    let reader_thread = tokio::task::spawn_blocking(move || {
        let ends = Rc::new(RefCell::new(LineEnds::default()));
        let mut csv = csv::ReaderBuilder::new()
            .has_headers(false)
            .flexible(true)
            .from_reader(LineCount {
                inner: reader,
                ends: ends.clone(),
            });
        let line_at = |position: Option<&csv::Position>| ends.borrow_mut().line_at(position.map_or(0, |p| p.byte()));
        // The first line each address was seen on: a later row for it is reported, not applied.
        let mut seen: HashMap<String, u64> = HashMap::new();
        let mut record = csv::ByteRecord::new();
        let cols = match csv.read_byte_record(&mut record) {
            Ok(true) => columns(&record),
            Ok(false) => Err(anyhow::anyhow!(
                "the file is empty; it needs a header line naming the columns"
            )),
            Err(e) => Err(anyhow::anyhow!("line 1: {e}")),
        };
        let cols = match cols {
            Ok(c) => c,
            Err(e) => {
                let _ = tx.blocking_send(Batch::Fatal(e));
                return;
            }
        };
        let mut rows = Vec::with_capacity(BATCH);
        let mut problems = Vec::new();
        loop {
            match csv.read_byte_record(&mut record) {
                Ok(false) => break,
                Ok(true) => {
                    let line = line_at(record.position());
                    if record.iter().all(|f| f.iter().all(u8::is_ascii_whitespace)) {
                        continue;
                    }
                    match parse_row(line, &record, &cols, options, &known_topics) {
                        Ok(row) => match seen.entry(row.email.key()) {
                            Entry::Occupied(first) => problems.push(RowProblem {
                                line,
                                reason: format!(
                                    "{} is on line {} already; this row is left out",
                                    row.email,
                                    first.get()
                                ),
                            }),
                            Entry::Vacant(slot) => {
                                slot.insert(line);
                                rows.push(row);
                            }
                        },
                        Err(reason) => problems.push(RowProblem { line, reason }),
                    }
                }
                Err(e) => {
                    let line = line_at(e.position());
                    problems.push(RowProblem {
                        line,
                        reason: e.to_string(),
                    });
                    if !matches!(
                        e.kind(),
                        csv::ErrorKind::Utf8 { .. } | csv::ErrorKind::UnequalLengths { .. }
                    ) {
                        break;
                    }
                }
            }
            if rows.len() >= BATCH {
                let position = csv.position().byte();
                if tx
                    .blocking_send(Batch::Rows(
                        std::mem::take(&mut rows),
                        std::mem::take(&mut problems),
                        position,
                    ))
                    .is_err()
                {
                    return;
                }
            }
        }
        let position = csv.position().byte();
        let _ = tx.blocking_send(Batch::Rows(rows, problems, position));
    });

    let mut report = ImportReport::default();
    while let Some(batch) = rx.recv().await {
        let (rows, problems, position) = match batch {
            Batch::Rows(r, p, pos) => (r, p, pos),
            Batch::Fatal(e) => return Err(e),
        };
        report.failed.extend(problems);
        let hashes: Vec<String> = rows
            .iter()
            .map(|r| super::suppression::address_hash(&key, &r.email))
            .collect();
        let erased: HashMap<String, chrono::DateTime<Utc>> = crate::store::history::suppressed(db, &hashes)
            .await?
            .into_iter()
            .collect();
        let mut rows = rows;
        if !erased.is_empty() {
            let mut kept = Vec::with_capacity(rows.len());
            for (row, hash) in rows.into_iter().zip(&hashes) {
                match erased.get(hash) {
                    Some(at) => report.erased.push(RowProblem {
                        line: row.line,
                        reason: format!(
                            "{} was erased at their request on {}; not imported",
                            row.email,
                            at.format("%Y-%m-%d")
                        ),
                    }),
                    None => kept.push(row),
                }
            }
            rows = kept;
        }
        let outcomes = import_batch(db, &rows, options.force, default_frequency, by, Utc::now()).await?;
        for (row, outcome) in rows.iter().zip(outcomes) {
            match outcome {
                ImportOutcome::Added => report.added += 1,
                ImportOutcome::Updated => report.updated += 1,
                ImportOutcome::Unchanged => report.unchanged += 1,
                ImportOutcome::Kept(status) => report.kept.push(RowProblem {
                    line: row.line,
                    reason: if row.status.on_list() {
                        format!("{} is {status}; not re-subscribed without --force", row.email)
                    } else {
                        format!("{} is {status}; not made {} without --force", row.email, row.status)
                    },
                }),
            }
        }
        progress(position);
    }
    reader_thread.await.context("The import reader stopped")?;
    report.failed.sort_by_key(|p| p.line);
    Ok(report)
}

/// CSV out, every cell quoted and [`neutralise`]d: the one way Herald writes CSV.
struct SafeCsv<W: std::io::Write>(csv::Writer<W>);

impl<W: std::io::Write> SafeCsv<W> {
    fn new(out: W) -> Self {
        // OWASP also asks for every cell in double quotes, so that no separator in a value
        // can start a new, unneutralised cell in a lenient reader.
        Self(
            csv::WriterBuilder::new()
                .quote_style(csv::QuoteStyle::Always)
                .from_writer(out),
        )
    }

    fn write_row<'a>(&mut self, cells: impl IntoIterator<Item = &'a str>) -> csv::Result<()> {
        self.0
            .write_record(cells.into_iter().map(|c| neutralise(c).into_owned()))
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.flush()
    }
}

/// Writes subscribers as CSV, a page at a time (never the whole list in memory).
pub async fn export_csv<W: std::io::Write>(db: &Db, status: Option<SubscriberStatus>, out: W) -> anyhow::Result<usize> {
    let mut writer = SafeCsv::new(out);
    writer.write_row([
        "email",
        "name",
        "frequency",
        "topics",
        "status",
        "source",
        "created_at",
        "confirmed_at",
    ])?;
    let mut filter = ListFilter {
        status,
        limit: 1000,
        ..Default::default()
    };
    let mut count = 0;
    loop {
        let page = list(db, &filter).await?;
        for s in &page {
            writer.write_row([
                s.email.as_str(),
                s.name.as_deref().unwrap_or(""),
                s.frequency.as_str(),
                &s.topics.join(","),
                s.status.as_str(),
                s.source.as_str(),
                &s.created_at.to_rfc3339(),
                &s.confirmed_at.map(|t| t.to_rfc3339()).unwrap_or_default(),
            ])?;
        }
        count += page.len();
        match page.last() {
            Some(last) if page.len() == filter.limit as usize => filter.after_id = last.id,
            _ => break,
        }
    }
    writer.flush()?;
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formula_cells_are_neutralised_and_come_back_whole() {
        for (cell, written) in [
            ("=HYPERLINK(\"https://x\")", "'=HYPERLINK(\"https://x\")"),
            ("+1", "'+1"),
            ("-2", "'-2"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("\tx", "'\tx"),
            ("\rx", "'\rx"),
            ("'quoted", "''quoted"),
            ("'", "''"),
            ("Ana", "Ana"),
            ("a=b", "a=b"),
            ("", ""),
        ] {
            assert_eq!(neutralise(cell), written, "{cell:?}");
            assert_eq!(restore(&neutralise(cell)), cell, "{cell:?} round trip");
        }
        // A hand-made file: only a quote before a trigger (or a quote) is taken away.
        assert_eq!(restore("'Tis"), "'Tis");
        assert_eq!(restore("'=1"), "=1");
    }
}
