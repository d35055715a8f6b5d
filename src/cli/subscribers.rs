//! `herald subscribers ...`: the list from the command line.

use std::io::IsTerminal;
use std::process::ExitCode;

use crate::domain::{EmailAddress, SubscriberSource, SubscriberStatus, parse_name, parse_topics};
use crate::startup::Parts;
use crate::store::Db;
use crate::store::{self, subscribers::ListFilter};
use crate::subscribers::csv::{self, ImportOptions};
use crate::subscribers::{Added, SubscribeRequest};
use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{ListFormat, SubscribersCommand};
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
            match parts.subscriptions().await?.add(request, status).await? {
                Added::Exists(subscriber) => {
                    bail!("{} is already on the list ({})", subscriber.email, subscriber.status)
                }
                Added::Refused(status) => bail!("nobody is added as {status}"),
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
                .import(handle, ImportOptions { confirmed, force }, |bytes| {
                    bar.set_position(bytes)
                })
                .await
                .with_context(|| format!("Cannot import {}", file.display()))?;
            bar.finish_and_clear();
            for p in &report.failed {
                eprintln!("{}:{}: {}", file.display(), p.line, p.reason);
            }
            for p in &report.kept {
                eprintln!("{}:{}: kept: {}", file.display(), p.line, p.reason);
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
                    parts.subscriptions().await?.erase(s.id).await?;
                    println!("removed {email} and everything stored about them");
                }
                None => bail!("{email} is not on the list"),
            }
        }
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
