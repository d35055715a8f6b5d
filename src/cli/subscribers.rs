//! `herald subscribers ...`: the list from the command line.

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::{Context, bail};
use chrono::Utc;
use herald::config::Settings;
use herald::domain::{EmailAddress, Frequency, SubscriberSource, SubscriberStatus, parse_name, parse_topics};
use herald::startup::App;
use herald::store::{self, subscribers::ListFilter, subscribers::NewSubscriber};
use herald::subscribers;
use herald::subscribers::csv::{self, ImportOptions};
use indicatif::{ProgressBar, ProgressStyle};

use crate::SubscribersCommand;

fn status_filter(status: Option<&str>) -> anyhow::Result<Option<SubscriberStatus>> {
    status.map(str::parse).transpose().map_err(Into::into)
}

pub async fn run(settings: Settings, action: SubscribersCommand) -> anyhow::Result<ExitCode> {
    let app = App::start(settings).await?;
    match action {
        SubscribersCommand::Add {
            email,
            name,
            frequency,
            topics,
            confirmed,
        } => {
            let email = EmailAddress::parse(&email).with_context(|| format!("{email:?} is not a usable address"))?;
            let now = Utc::now();
            let new = NewSubscriber {
                email,
                name: parse_name(name.as_deref().unwrap_or(""))?,
                status: if confirmed {
                    SubscriberStatus::Confirmed
                } else {
                    SubscriberStatus::Pending
                },
                frequency: match frequency {
                    Some(f) => f.parse::<Frequency>()?,
                    None => app.settings.subscribers.default_frequency,
                },
                topics: parse_topics(topics.iter().map(String::as_str))?,
                source: SubscriberSource::Cli,
                consent_at: Some(now),
            };
            let (subscriber, created) = store::subscribers::insert_or_get(&app.db, &new, now).await?;
            if !created {
                bail!("{} is already on the list ({})", subscriber.email, subscriber.status);
            }
            if subscriber.status == SubscriberStatus::Pending {
                subscribers::send_confirmation(&app, &subscriber).await?;
                app.outbox.flush().await?;
                println!("added {} (pending: confirmation mail sent)", subscriber.email);
            } else {
                println!("added {} (confirmed)", subscriber.email);
            }
        }
        SubscribersCommand::List { status, format } => list(&app, status_filter(status.as_deref())?, &format).await?,
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
            let report = csv::import_csv(
                &app.db,
                handle,
                ImportOptions { confirmed, force },
                app.settings.subscribers.default_frequency,
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
            println!("{report}");
            if !report.failed.is_empty() {
                return Ok(ExitCode::FAILURE);
            }
        }
        SubscribersCommand::Export { status } => {
            let stdout = std::io::stdout();
            let n = csv::export_csv(&app.db, status_filter(status.as_deref())?, stdout.lock()).await?;
            eprintln!("exported {n} subscribers");
        }
        SubscribersCommand::Remove { email } => {
            let email = EmailAddress::parse(&email)?;
            match store::subscribers::find_by_email(&app.db, &email).await? {
                Some(s) => {
                    store::subscribers::delete(&app.db, s.id).await?;
                    println!("removed {email} and everything stored about them");
                }
                None => bail!("{email} is not on the list"),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

async fn list(app: &App, status: Option<SubscriberStatus>, format: &str) -> anyhow::Result<()> {
    if format == "csv" {
        csv::export_csv(&app.db, status, std::io::stdout().lock()).await?;
        return Ok(());
    }
    let mut filter = ListFilter {
        status,
        limit: 1000,
        ..Default::default()
    };
    if format == "table" {
        println!(
            "{:<6} {:<40} {:<13} {:<10} topics",
            "id", "email", "status", "frequency"
        );
    }
    let mut first = true;
    if format == "json" {
        print!("[");
    }
    loop {
        let page = store::subscribers::list(&app.db, &filter).await?;
        for s in &page {
            match format {
                "json" => {
                    print!("{}{}", if first { "" } else { "," }, serde_json::to_string(s)?);
                    first = false;
                }
                _ => println!(
                    "{:<6} {:<40} {:<13} {:<10} {}",
                    s.id,
                    s.email,
                    s.status,
                    s.frequency,
                    if s.topics.is_empty() {
                        "(all)".to_owned()
                    } else {
                        s.topics.join(",")
                    }
                ),
            }
        }
        match page.last() {
            Some(last) if page.len() == filter.limit as usize => filter.after_id = last.id,
            _ => break,
        }
    }
    if format == "json" {
        println!("]");
    }
    Ok(())
}
