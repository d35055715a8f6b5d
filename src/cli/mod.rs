//! The `herald` command line: its arguments (clap) and what each command does, building
//! through `startup` only the parts it needs. Uses everything below it.

mod args;
pub mod doctor;
mod output;
pub mod send;
pub mod subscribers;

pub use args::{
    AdminCommand, BouncesCommand, Cli, Command, DoctorFormat, ListFormat, ShowFormat, StatusFormat, SubscribersCommand,
};
pub use output::UsageError;

use std::io::IsTerminal;
use std::process::ExitCode;

use anyhow::Context;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::site::build;
use crate::startup::{self, App, Parts};
use crate::web;

/// Runs a parsed command line; errors are printed and give a failing exit code.
pub async fn main(cli: Cli) -> ExitCode {
    if !matches!(cli.command, Command::Serve) {
        output::quiet_on_closed_output();
    }
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.is::<UsageError>() {
                ExitCode::from(2)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}

/// Crates that log, at debug and trace, every piece of the documents they parse: html5ever
/// logs each token of a mail while its CSS is inlined, confirmation and unsubscribe links
/// included. Whatever the filter says, only their warnings and errors get through.
const DOCUMENT_PARSERS: &[&str] = &[
    "html5ever",
    "markup5ever",
    "xml5ever",
    "tendril",
    "selectors",
    "cssparser",
    "css_inline",
    "html2text",
    "ammonia",
];

/// Logs go to standard error, as text or JSON lines (`[log]`); `HERALD_LOG` overrides the filter.
fn init_tracing(log: &crate::config::LogSettings) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::{EnvFilter, Layer};
    let filter = EnvFilter::try_from_env("HERALD_LOG").unwrap_or_else(|_| EnvFilter::new(&log.level));
    let parsers_quiet = tracing_subscriber::filter::filter_fn(|meta| {
        *meta.level() <= tracing::Level::WARN
            || !DOCUMENT_PARSERS.iter().any(|p| {
                meta.target()
                    .strip_prefix(p)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
            })
    });
    // Colours only on a terminal: a log file or journal gets plain text.
    let output = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let output = match log.format {
        crate::config::LogFormat::Json => output.json().boxed(),
        crate::config::LogFormat::Text => output.boxed(),
    };
    tracing_subscriber::registry()
        .with(parsers_quiet)
        .with(filter)
        .with(output)
        .init();
}

/// Syncs the posts folder, then polls the remote sources (`[[sources]]`), printing what each
/// did: counts on standard output, failures on standard error. True when nothing failed.
async fn sync_all(parts: &Parts, prefix: &str) -> anyhow::Result<bool> {
    let jobs = parts.jobs().await?;
    let report = jobs.sync().await?;
    for failure in &report.failed {
        eprintln!("failed: {failure}");
    }
    println!("{prefix}{report}");
    let mut all_good = report.failed.is_empty();
    for polled in jobs.poll_sources().await? {
        if let crate::content::remote::SourceOutcome::Failed(reason) = &polled.outcome {
            all_good = false;
            eprintln!("failed: source {}: {reason}", polled.url);
        } else {
            println!("{prefix}{polled}");
        }
    }
    Ok(all_good)
}

fn read_password() -> anyhow::Result<String> {
    if std::io::stdin().is_terminal() {
        let first = rpassword::prompt_password("Password: ")?;
        if first != rpassword::prompt_password("Again: ")? {
            anyhow::bail!("the passwords differ");
        }
        Ok(first)
    } else {
        let mut line = String::new();
        std::io::stdin().read_line(&mut line)?;
        Ok(line.trim_end_matches(['\r', '\n']).to_owned())
    }
}

/// The largest report `herald bounces ingest` reads.
const MAX_REPORT: u64 = 10 * 1024 * 1024;

async fn bounces(parts: &Parts, action: BouncesCommand) -> anyhow::Result<ExitCode> {
    use crate::bounces::reports::{self, IngestError};
    use crate::domain::BounceSource;
    // sysexits.h: what an MTA's pipe understands.
    const EX_DATAERR: u8 = 65;
    const EX_TEMPFAIL: u8 = 75;
    match action {
        BouncesCommand::Ingest => {
            let mut raw = Vec::new();
            std::io::Read::read_to_end(
                &mut std::io::Read::take(std::io::stdin().lock(), MAX_REPORT + 1),
                &mut raw,
            )
            .context("cannot read standard input")?;
            if raw.len() as u64 > MAX_REPORT {
                eprintln!("error: the message on standard input is over {} MiB", MAX_REPORT >> 20);
                return Ok(ExitCode::from(EX_DATAERR));
            }
            let recorded = async {
                let (bounces, composer) = (parts.bounces().await?, parts.composer()?);
                Ok::<_, anyhow::Error>(reports::ingest(&bounces, &composer, &raw, BounceSource::Ingest).await)
            }
            .await;
            match recorded {
                Ok(Ok(done)) => {
                    println!(
                        "report read: {} kept, {} already kept, {} naming nobody",
                        done.kept, done.duplicates, done.unaddressed
                    );
                    Ok(ExitCode::SUCCESS)
                }
                Ok(Err(IngestError::NotAReport(e))) => {
                    eprintln!("error: standard input: {e}");
                    Ok(ExitCode::from(EX_DATAERR))
                }
                Ok(Err(IngestError::Failed(e))) | Err(e) => {
                    eprintln!("error: the report could not be recorded, try again later: {e:#}");
                    Ok(ExitCode::from(EX_TEMPFAIL))
                }
            }
        }
        BouncesCommand::Poll => {
            let Some(mailbox) = &parts.settings.bounces.imap else {
                return Err(UsageError("no bounce mailbox is configured: set [bounces.imap]".into()).into());
            };
            let done = reports::poll_mailbox(&parts.bounces().await?, &*parts.composer()?, mailbox).await?;
            println!(
                "bounce mailbox read: {} kept, {} already kept, {} naming nobody",
                done.kept, done.duplicates, done.unaddressed
            );
            Ok(ExitCode::SUCCESS)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&cli.config)?;
    init_tracing(&settings.log);
    let parts = Parts::new(settings);
    let parts = if matches!(cli.command, Command::Build { .. }) {
        parts.for_bulk_reads()
    } else {
        parts
    };
    match cli.command {
        Command::Admin { action } => {
            let db = parts.db().await?;
            match action {
                AdminCommand::CreateUser { email } => {
                    let password = read_password()?;
                    crate::auth::create_user(&db, &email, &password).await?;
                    println!(
                        "admin {email} can now log in at {}",
                        parts.settings.url_for("admin/login")
                    );
                }
                AdminCommand::CreateToken { name } => {
                    let token = crate::auth::create_token(&db, &name).await?;
                    println!("{token}");
                    eprintln!("API token {name:?} created; it is shown only now (Authorization: Bearer <token>)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Subscribers { action } => subscribers::run(&parts, action).await,
        Command::Bounces { action } => bounces(&parts, action).await,
        Command::Send {
            frequency,
            force,
            dry_run,
            since,
            resume,
        } => {
            if let Some(id) = resume {
                send::resume(&parts, id).await?;
            }
            send::send(&parts, frequency, force, dry_run, since).await
        }
        Command::Status { format } => send::status(&parts.db().await?, format).await,
        Command::Preview { frequency, to, out } => send::preview(&parts, frequency, to.as_deref(), out).await,
        Command::Doctor { format } => doctor::doctor(&parts, format).await,
        Command::Migrate => {
            let db = parts.db().await?;
            println!("migrations applied ({})", db.backend_name());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync => {
            let all_good = sync_all(&parts, "").await?;
            Ok(if all_good { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Build { out } => {
            let all_good = sync_all(&parts, "sync: ").await?;
            let written = build::build(&parts.db().await?, &*parts.site().await?, &out).await?;
            println!(
                "built {} files ({} posts, {} tags) in {}: {} written, {} unchanged, {} removed",
                written.files,
                written.posts,
                written.tags,
                out.display(),
                written.written,
                written.files - written.written,
                written.removed
            );
            Ok(if all_good { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Serve => {
            let listen = parts.settings.server.listen;
            let app = App::build(parts).await?;
            let report = app.sync().await?;
            for failure in &report.failed {
                eprintln!("failed: {failure}");
            }
            println!("sync: {report}");
            let listener = tokio::net::TcpListener::bind(listen)
                .await
                .with_context(|| format!("Failed to listen on {listen} (server.listen)"))?;
            println!(
                "serving {} on http://{}",
                app.settings.site.base_url,
                listener.local_addr()?
            );
            let shutdown = CancellationToken::new();
            startup::cancel_on_signal(shutdown.clone());
            web::serve(app, listener, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
