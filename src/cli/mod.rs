//! The `herald` command line: its arguments (clap) and what each command does, building
//! through `startup` only the parts it needs. Uses everything below it.

pub mod send;
pub mod subscribers;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::domain::{Frequency, SubscriberStatus};
use crate::site::build;
use crate::startup::{self, App, Parts};
use crate::web;

#[derive(Parser)]
#[command(name = "herald", version, about = "Posts in; feeds, pages and email digests out.")]
pub struct Cli {
    /// Configuration file; relative paths inside it are read from its folder.
    #[arg(long, global = true, env = "HERALD_CONFIG", default_value = "config.toml")]
    pub config: PathBuf,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Serve the site and feeds, and run the scheduled jobs.
    Serve,
    /// Read the posts folder into the database, then import the remote sources.
    Sync,
    /// Sync, then write every page and feed as files into a folder.
    Build {
        /// Output folder (replaced if an earlier build wrote it).
        #[arg(long, default_value = "site")]
        out: PathBuf,
    },
    /// Apply database migrations.
    Migrate,
    /// Compose the due digest editions and deliver everything queued, then exit.
    Send {
        /// Only this frequency (default: all three).
        #[arg(long)]
        frequency: Option<Frequency>,
        /// Daily and weekly: send an extra edition now, even if this period's has gone out
        /// or its time has not come.
        #[arg(long)]
        force: bool,
        /// Print, per frequency, the posts and recipients; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also mail archive posts (public before Herald's first sync) dated from this date.
        #[arg(long)]
        since: Option<String>,
    },
    /// Editions, the delivery queue, the outbox and the subscriber counts.
    Status,
    /// Render the next edition of a frequency to an HTML file, or send it as a test.
    Preview {
        #[arg(long)]
        frequency: Frequency,
        /// Send the preview to this address instead of writing a file.
        #[arg(long)]
        to: Option<String>,
        /// File to write (default: preview-FREQUENCY.html).
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Admin accounts and API tokens.
    Admin {
        #[command(subcommand)]
        action: AdminCommand,
    },
    /// Manage the subscriber list.
    Subscribers {
        #[command(subcommand)]
        action: SubscribersCommand,
    },
}

#[derive(Subcommand)]
pub enum AdminCommand {
    /// Create an admin (or set a new password): asks for the password on a terminal,
    /// otherwise reads it from the first line of standard input.
    CreateUser { email: String },
    /// Create an API token for /admin/api/ and print it (shown only this once).
    CreateToken { name: String },
}

#[derive(Subcommand)]
pub enum SubscribersCommand {
    /// Add one subscriber. Without --confirmed they get a confirmation mail first.
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// How often they get digests (default: [subscribers] default_frequency).
        #[arg(long)]
        frequency: Option<Frequency>,
        /// Comma-separated topics (tags); none means everything.
        #[arg(long, value_delimiter = ',')]
        topics: Vec<String>,
        /// Consent was collected elsewhere: no confirmation mail.
        #[arg(long)]
        confirmed: bool,
    },
    /// List subscribers.
    List {
        #[arg(long)]
        status: Option<SubscriberStatus>,
        #[arg(long, value_enum, default_value_t = ListFormat::Table)]
        format: ListFormat,
    },
    /// Import a CSV file with a header: email,name,frequency,topics,status (extra columns ignored).
    Import {
        file: PathBuf,
        /// Rows without a status become confirmed rather than pending.
        #[arg(long)]
        confirmed: bool,
        /// Also bring back unsubscribed, bounced and complained addresses.
        #[arg(long)]
        force: bool,
    },
    /// Write subscribers as CSV to standard output.
    Export {
        #[arg(long)]
        status: Option<SubscriberStatus>,
    },
    /// Erase a person from the list: their row, tokens and queued mail.
    Remove { email: String },
}

/// How `herald subscribers list` prints the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Csv,
    Json,
}

/// Domain words as command-line values (`--frequency weekly`), with the choices in `--help`.
macro_rules! word_value_enum {
    ($ty:ty) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                <$ty>::ALL
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(PossibleValue::new(self.as_str()))
            }
        }
    };
}

word_value_enum!(Frequency);
word_value_enum!(SubscriberStatus);

/// Runs a parsed command line; errors are printed and give a failing exit code.
pub async fn main(cli: Cli) -> ExitCode {
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
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

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&cli.config)?;
    init_tracing(&settings.log);
    let parts = Parts::new(settings);
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
        Command::Send {
            frequency,
            force,
            dry_run,
            since,
        } => send::send(&parts, frequency, force, dry_run, since.as_deref()).await,
        Command::Status => send::status(&parts.db().await?).await,
        Command::Preview { frequency, to, out } => send::preview(&parts, frequency, to.as_deref(), out).await,
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
                "wrote {} files ({} posts, {} tags) to {}",
                written.files,
                written.posts,
                written.tags,
                out.display()
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
