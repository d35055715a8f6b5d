//! `herald subscribers ...`: the list from the command line.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::domain::{Actor, EmailAddress, SubscriberSource, SubscriberStatus, parse_name, parse_topics};
use crate::startup::Parts;
use crate::store::Db;
use crate::store::{self, subscribers::ListFilter};
use crate::subscribers::csv::{self, ImportOptions};
use crate::subscribers::{Added, SubscribeRequest};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{ListFormat, ShowFormat, SubscribersCommand};
use super::output::UsageError;

pub async fn run(parts: &Parts, action: SubscribersCommand) -> anyhow::Result<ExitCode> {
    let db = parts.db().await?;
    match action {
        SubscribersCommand::Add {
            email,
            name,
            frequency,
            topics,
            confirmed,
        } => {
            let email = EmailAddress::parse(&email)
                .map_err(|e| UsageError(format!("{email:?} is not a usable address: {e}")))?;
            let request = SubscribeRequest {
                email,
                name: parse_name(name.as_deref().unwrap_or("")).map_err(|e| UsageError(format!("--name: {e}")))?,
                frequency: frequency.unwrap_or(parts.settings.subscribers.default_frequency),
                topics: parse_topics(topics.iter().map(String::as_str))
                    .map_err(|e| UsageError(format!("--topics: {e}")))?,
                source: SubscriberSource::Cli,
            };
            parts
                .subscriptions()
                .await?
                .check_topics(&request.topics)
                .await?
                .map_err(|e| UsageError(format!("--topics: {e}")))?;
            let status = if confirmed {
                SubscriberStatus::Confirmed
            } else {
                SubscriberStatus::Pending
            };
            let email = request.email.clone();
            match parts.subscriptions().await?.add(request, status, &Actor::cli()).await? {
                Added::Exists(subscriber) => {
                    bail!("{} is already on the list ({})", subscriber.email, subscriber.status)
                }
                Added::Refused(status) => bail!("nobody is added as {status}"),
                Added::Erased(at) => bail!(
                    "{email} was erased at their request on {}; not added (only they can subscribe again, on the form)",
                    at.format("%Y-%m-%d")
                ),
                Added::New(subscriber) if subscriber.status == SubscriberStatus::Pending => {
                    parts.outbox().await?.flush().await?;
                    println!("added {} (pending: confirmation mail sent)", subscriber.email);
                }
                Added::New(subscriber) => println!("added {} ({})", subscriber.email, subscriber.status),
            }
        }
        SubscribersCommand::List { status, format } => list(&db, status, format).await?,
        SubscribersCommand::Import { file, confirmed, force } => {
            let handle = std::fs::File::open(&file).with_context(|| format!("Cannot open {}", file.display()))?;
            let size = handle.metadata().map(|m| m.len()).unwrap_or(0);
            let bar = if std::io::stderr().is_terminal() {
                ProgressBar::new(size)
            } else {
                ProgressBar::hidden()
            };
            bar.set_style(
                ProgressStyle::with_template("{bar:40} {percent:>3}% {bytes}/{total_bytes} {bytes_per_sec} eta {eta}")
                    .expect("a valid progress template"),
            );
            let report = parts
                .subscriptions()
                .await?
                .import(
                    handle,
                    ImportOptions { confirmed, force },
                    &import_actor(&file),
                    |bytes| bar.set_position(bytes),
                )
                .await
                .with_context(|| format!("Cannot import {}", file.display()))?;
            bar.finish_and_clear();
            for p in &report.failed {
                eprintln!("{}:{}: {}", file.display(), p.line, p.reason);
            }
            for p in &report.kept {
                eprintln!("{}:{}: kept: {}", file.display(), p.line, p.reason);
            }
            for p in &report.erased {
                eprintln!("{}: row {}: {}", file.display(), p.line, p.reason);
            }
            println!("{report}");
            if !report.failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        SubscribersCommand::Export { status } => {
            let stdout = std::io::stdout();
            let n = csv::export_csv(&db, status, stdout.lock()).await?;
            eprintln!("exported {n} subscribers");
        }
        SubscribersCommand::Remove { email } => {
            let email = EmailAddress::parse(&email)
                .map_err(|e| UsageError(format!("{email:?} is not a usable address: {e}")))?;
            match store::subscribers::find_by_email(&db, &email).await? {
                Some(s) => {
                    parts.subscriptions().await?.erase(s.id, &Actor::cli()).await?;
                    println!(
                        "removed {email} and everything stored about them; a hash of the address stays on the suppression list"
                    );
                }
                None => bail!("{email} is not on the list"),
            }
        }
        SubscribersCommand::Show { email, format } => return show(parts, &email, format).await,
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(db: &Db, status: Option<SubscriberStatus>, format: ListFormat) -> anyhow::Result<()> {
    if format == ListFormat::Csv {
        csv::export_csv(db, status, std::io::stdout().lock()).await?;
        return Ok(());
    }
    let mut filter = ListFilter {
        status,
        limit: 1000,
        ..Default::default()
    };
    let mut all = Vec::new();
    loop {
        let page = store::subscribers::list(db, &filter).await?;
        let full = page.len() == filter.limit as usize;
        if let Some(last) = page.last() {
            filter.after_id = last.id;
        }
        all.extend(page);
        if !full {
            break;
        }
    }
    if format == ListFormat::Json {
        println!("{}", serde_json::to_string(&all)?);
        return Ok(());
    }
    let mut table = super::output::table(["id", "email", "status", "frequency", "topics"]);
    for s in &all {
        table.add_row([
            s.id.to_string(),
            s.email.to_string(),
            s.status.to_string(),
            s.frequency.to_string(),
            if s.topics.is_empty() {
                "(all)".to_owned()
            } else {
                s.topics.join(",")
            },
        ]);
    }
    println!("{}", table.trim_fmt());
    Ok(())
}

/// An import of `file`, by its name (the folders it sits in are nobody's business).
fn import_actor(file: &std::path::Path) -> Actor {
    Actor::import(Some(
        file.file_name()
            .map_or_else(|| file.display().to_string(), |n| n.to_string_lossy().into_owned()),
    ))
}

/// `herald subscribers show`: a person's data, consent evidence and history. Exit status 1
/// when the address is not on the list (saying so when it was erased).
async fn show(parts: &Parts, email: &str, format: ShowFormat) -> anyhow::Result<ExitCode> {
    let email =
        EmailAddress::parse(email).map_err(|e| UsageError(format!("{email:?} is not a usable address: {e}")))?;
    let subscriptions = parts.subscriptions().await?;
    let Some(subscriber) = store::subscribers::find_by_email(&parts.db().await?, &email).await? else {
        match subscriptions.erased_at(&email).await? {
            Some(at) => bail!(
                "{email} is not on the list: it was erased at their request on {}, and only a keyed hash of it is kept",
                at.format("%Y-%m-%d")
            ),
            None => bail!("{email} is not on the list"),
        }
    };
    let record = subscriptions.record_of(subscriber).await?;
    if format == ShowFormat::Json {
        println!("{}", serde_json::to_string_pretty(&record)?);
        return Ok(ExitCode::SUCCESS);
    }
    let s = &record.subscriber;
    let at = |t: chrono::DateTime<chrono::Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let when = |t: Option<chrono::DateTime<chrono::Utc>>| t.map_or_else(|| "-".to_owned(), at);
    let c = &record.consent;
    let mut facts = super::output::table(["", ""]);
    facts.add_row(["email".to_owned(), s.email.to_string()]);
    facts.add_row(["name".to_owned(), s.name.clone().unwrap_or_else(|| "-".to_owned())]);
    facts.add_row(["status".to_owned(), s.status.to_string()]);
    facts.add_row(["frequency".to_owned(), s.frequency.to_string()]);
    let topics = if s.topics.is_empty() {
        "(all)".to_owned()
    } else {
        s.topics.join(",")
    };
    facts.add_row(["topics".to_owned(), topics]);
    facts.add_row(["source".to_owned(), s.source.to_string()]);
    facts.add_row(["created".to_owned(), at(s.created_at)]);
    let by = c.by.as_deref().map(|b| format!(" ({b})")).unwrap_or_default();
    facts.add_row([
        "consent given".to_owned(),
        format!("{} by {}{by}", when(c.given_at), c.source),
    ]);
    if let Some(w) = &c.wording {
        facts.add_row(["wording shown".to_owned(), format!("[{}] {}", w.version, w.text)]);
    }
    let from = c
        .confirmed_from
        .as_deref()
        .map(|ip| format!(" from {ip}"))
        .unwrap_or_default();
    facts.add_row(["confirmed".to_owned(), format!("{}{from}", when(c.confirmed_at))]);
    // The facts need no heading: their names are in the first column.
    for line in facts.trim_fmt().lines().skip(1) {
        println!("{line}");
    }
    println!();
    let mut events = super::output::table(["at", "event", "source", "detail"]);
    for e in &record.events {
        let source = match &e.by {
            Some(by) => format!("{} ({by})", e.source),
            None => e.source.clone(),
        };
        let mut detail = e.detail.clone().unwrap_or_default();
        if let Some(ip) = &e.ip {
            detail.push_str(&format!(" from {ip}"));
        }
        events.add_row([at(e.at), e.kind.clone(), source, detail.trim().to_owned()]);
    }
    println!("{}", events.trim_fmt());
    Ok(ExitCode::SUCCESS)
}
