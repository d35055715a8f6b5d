//! The command line's words: commands, their options, and domain values as option values.
//! Uses `domain`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::builder::PossibleValue;
use clap::{Parser, Subcommand, ValueEnum};

use crate::domain::{Frequency, SubscriberStatus};

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
        /// Output folder. Only changed files are written; files an earlier build wrote and
        /// this one no longer has are removed; files Herald did not write are left alone.
        #[arg(long, default_value = "site")]
        out: PathBuf,
    },
    /// Apply database migrations.
    Migrate,
    /// Compose the due digest editions and deliver everything queued, then exit.
    Send {
        /// Only this frequency (default: every one).
        #[arg(long)]
        frequency: Option<Frequency>,
        /// Daily, weekly and monthly: send an extra edition now, even if this period's has gone out
        /// or its time has not come.
        #[arg(long)]
        force: bool,
        /// Print, per frequency, the posts and recipients; send nothing.
        #[arg(long)]
        dry_run: bool,
        /// Also mail archive posts (public before Herald's first sync) dated from this date.
        #[arg(long, value_parser = parse_since)]
        since: Option<DateTime<Utc>>,
        /// Resume paused editions first (every one, or the one given), then deliver.
        #[arg(long, value_name = "EDITION", num_args = 0..=1, default_missing_value = "0")]
        resume: Option<i64>,
    },
    /// Editions, the delivery queue, the outbox and the subscriber counts.
    Status {
        #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
        format: StatusFormat,
    },
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
    /// Check what decides deliverability before the first send: the DKIM key in DNS, SPF and
    /// DMARC for the From domain, the digest's size against Gmail's clip, one-click
    /// unsubscribe on the public site, HTTPS. Exits non-zero when something is a problem.
    Doctor {
        #[arg(long, value_enum, default_value_t = DoctorFormat::Table)]
        format: DoctorFormat,
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
    /// Bounce and complaint reports that arrive as mail.
    Bounces {
        #[command(subcommand)]
        action: BouncesCommand,
    },
}

#[derive(Subcommand)]
pub enum BouncesCommand {
    /// Read one report (a delivery status notification or an abuse report) on standard input
    /// and record what it says: for an MTA's pipe. Exits 65 when the message is not a report,
    /// 75 (try again later) when it could not be recorded.
    Ingest,
    /// Read the new reports in the bounce mailbox ([bounces.imap]) once.
    Poll,
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
    /// Erase a person at their request: their row, history, tokens and queued mail. Only a
    /// keyed hash of the address is kept, so no import adds them again by mistake.
    Remove { email: String },
    /// Everything stored about a person: their data, the evidence of their consent and their
    /// history (`--format json` for a subject access request).
    Show {
        email: String,
        #[arg(long, value_enum, default_value_t = ShowFormat::Table)]
        format: ShowFormat,
    },
}

/// How `herald subscribers show` prints a person's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ShowFormat {
    Table,
    Json,
}

/// How `herald subscribers list` prints the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Csv,
    Json,
}

/// How `herald status` prints what it found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

/// How `herald doctor` prints its findings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DoctorFormat {
    Table,
    Json,
}

/// A date as posts give theirs (`2026-09-14`, RFC 3339, ...).
fn parse_since(raw: &str) -> Result<DateTime<Utc>, String> {
    crate::content::parse_date(raw)
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
