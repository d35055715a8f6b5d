//! The `herald` command line: parses arguments and calls into the library.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};
use herald::config::Settings;
use herald::site::build;
use herald::startup::{self, App};
use tokio_util::sync::CancellationToken;

#[derive(Parser)]
#[command(name = "herald", version, about = "Posts in; feeds, pages and email digests out.")]
struct Cli {
    /// Configuration file; relative paths inside it are read from its folder.
    #[arg(long, global = true, env = "HERALD_CONFIG", default_value = "config.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
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
        /// Only this frequency: immediate, daily or weekly (default: all three).
        #[arg(long)]
        frequency: Option<String>,
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
        frequency: String,
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
enum AdminCommand {
    /// Create an admin (or set a new password): asks for the password on a terminal,
    /// otherwise reads it from the first line of standard input.
    CreateUser { email: String },
    /// Create an API token for /admin/api/ and print it (shown only this once).
    CreateToken { name: String },
}

#[derive(Subcommand)]
enum SubscribersCommand {
    /// Add one subscriber. Without --confirmed they get a confirmation mail first.
    Add {
        email: String,
        #[arg(long)]
        name: Option<String>,
        /// immediate, daily or weekly (default: [subscribers] default_frequency)
        #[arg(long)]
        frequency: Option<String>,
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
        status: Option<String>,
        #[arg(long, default_value = "table", value_parser = ["table", "csv", "json"])]
        format: String,
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
        status: Option<String>,
    },
    /// Erase a person from the list: their row, tokens and queued mail.
    Remove { email: String },
}

mod cli;

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
fn init_tracing(log: &herald::config::LogSettings) {
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
        herald::config::LogFormat::Json => output.json().boxed(),
        herald::config::LogFormat::Text => output.boxed(),
    };
    tracing_subscriber::registry()
        .with(parsers_quiet)
        .with(filter)
        .with(output)
        .init();
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Syncs the posts folder, then polls the remote sources (`[[sources]]`), printing what each
/// did: counts on standard output, failures on standard error. True when nothing failed.
async fn sync_all(app: &App, prefix: &str) -> anyhow::Result<bool> {
    let report = app.sync().await?;
    for failure in &report.failed {
        eprintln!("failed: {failure}");
    }
    println!("{prefix}{report}");
    let mut all_good = report.failed.is_empty();
    for polled in app.poll_sources().await? {
        if let herald::content::remote::SourceOutcome::Failed(reason) = &polled.outcome {
            all_good = false;
            eprintln!("failed: source {}: {reason}", polled.url);
        } else {
            println!("{prefix}{polled}");
        }
    }
    Ok(all_good)
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(&cli.config)?;
    init_tracing(&settings.log);
    match cli.command {
        Command::Admin { action } => {
            let app = App::start(settings).await?;
            match action {
                AdminCommand::CreateUser { email } => {
                    let password = if std::io::stdin().is_terminal() {
                        let first = rpassword::prompt_password("Password: ")?;
                        if first != rpassword::prompt_password("Again: ")? {
                            anyhow::bail!("the passwords differ");
                        }
                        first
                    } else {
                        let mut line = String::new();
                        std::io::stdin().read_line(&mut line)?;
                        line.trim_end_matches(['\r', '\n']).to_owned()
                    };
                    herald::auth::create_user(&app.db, &email, &password).await?;
                    println!(
                        "admin {email} can now log in at {}",
                        app.settings.url_for("admin/login")
                    );
                }
                AdminCommand::CreateToken { name } => {
                    let token = herald::auth::create_token(&app.db, &name).await?;
                    println!("{token}");
                    eprintln!("API token {name:?} created; it is shown only now (Authorization: Bearer <token>)");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Subscribers { action } => cli::subscribers::run(settings, action).await,
        Command::Send {
            frequency,
            force,
            dry_run,
            since,
        } => {
            let app = App::start(settings).await?;
            cli::send::send(&app, frequency.as_deref(), force, dry_run, since.as_deref()).await
        }
        Command::Status => cli::send::status(&*App::start(settings).await?).await,
        Command::Preview { frequency, to, out } => {
            let app = App::start(settings).await?;
            cli::send::preview(&app, &frequency, to.as_deref(), out).await
        }
        Command::Migrate => {
            let db = herald::store::Db::connect(&settings).await?;
            db.migrate().await?;
            println!("migrations applied ({})", db.backend_name());
            Ok(ExitCode::SUCCESS)
        }
        Command::Sync => {
            let app = App::start(settings).await?;
            let all_good = sync_all(&app, "").await?;
            Ok(if all_good { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Build { out } => {
            let app = App::start(settings).await?;
            let all_good = sync_all(&app, "sync: ").await?;
            let written = build::build(&app, &out).await?;
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
            let listen = settings.server.listen;
            let app = App::start(settings).await?;
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
            startup::serve(app, listener, shutdown).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}
