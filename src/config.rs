//! One `Settings` struct: `config.toml`, then `HERALD_SECTION__KEY` environment
//! variables on top (the environment wins). Relative paths are resolved against
//! the folder of the config file, never the current directory. Uses `domain`.
//!
//! Values are parsed into their types as the file loads (time zone, cron expressions,
//! mailboxes, the database URL, counts that must be positive), so a bad one stops
//! start-up with its key named and nothing downstream parses them again.

use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono_tz::Tz;
use croner::Cron;
use croner::parser::{CronParser, Seconds};
use figment::Figment;
use figment::providers::{Env, Format, Toml};
use lettre::message::Mailbox;
use serde::{Deserialize, Deserializer, Serialize};
use url::Url;

use crate::domain::{Colour, Frequency};

/// Everything Herald reads from its configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    pub site: SiteSettings,
    pub server: ServerSettings,
    pub database: DatabaseSettings,
    pub content: ContentSettings,
    pub feeds: FeedSettings,
    pub schedule: ScheduleSettings,
    pub mail: MailSettings,
    pub subscribers: SubscriberSettings,
    pub admin: AdminSettings,
    pub digest: DigestSettings,
    pub log: LogSettings,
    pub bounces: BounceSettings,
    pub doctor: DoctorSettings,
    pub tracking: TrackingSettings,
    /// Remote feeds to import posts from (`[[sources]]`).
    pub sources: Vec<SourceSettings>,
    /// Folder the config file lives in; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSettings {
    pub title: String,
    /// Absolute URL the site is published under; always ends with `/`.
    pub base_url: Url,
    pub description: String,
    pub language: String,
    pub author: String,
    /// Posts per page on the home and tag pages (at most 500).
    pub page_size: NonZeroU32,
    /// The organisation's logo, shown atop pages and emails: a URL, or a path on the site
    /// (`images/logo.png`, served from the static folder). Empty: the title alone.
    pub logo: String,
    /// The colour of links and buttons. Herald darkens it for light backgrounds and
    /// lightens it for dark mode as far as needed to keep text readable (WCAG AA).
    pub accent_color: Colour,
    /// A line of text at the foot of every page and email (plain text).
    pub footer: String,
    /// The organisation's postal address, printed in every digest (anti-spam laws such as
    /// CAN-SPAM require one in bulk mail). Several lines are fine.
    pub postal_address: String,
    /// The site's icon: a URL or a path on the site. Empty: a generated icon in the accent
    /// colour at `/favicon.svg`.
    pub favicon: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Take the client's address from the last `X-Forwarded-For` entry (only behind a
    /// reverse proxy that sets it; otherwise clients could pick their own address).
    pub trust_forwarded_for: bool,
    /// Seconds a client has to send a request's headers, counted from when it connects or
    /// its previous response ends (slow-header clients are cut off).
    pub header_timeout_seconds: NonZeroU64,
    /// Seconds a client has to send a request's body, counted from the end of its headers.
    pub body_timeout_seconds: NonZeroU64,
    /// Seconds a kept-alive connection may sit idle before it is closed (at most
    /// `header_timeout_seconds`).
    pub keep_alive_seconds: NonZeroU64,
    /// Connections open at once. At the cap the longest-idle connection is closed to make
    /// room; if none is idle, new connections wait.
    pub max_connections: NonZeroU32,
}

/// How mail leaves Herald.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// One `.eml` file per message in `outbox_dir`.
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub outbox_dir: PathBuf,
    /// `Name <address>` the mail comes from; its domain also names Message-IDs.
    #[serde(deserialize_with = "mailbox")]
    pub from: Mailbox,
    /// Where replies go; none (an empty string in the file): to `from`.
    #[serde(deserialize_with = "optional_mailbox")]
    pub reply_to: Option<Mailbox>,
    /// Attempts before a message is given up (SMTP 4xx and connection errors are retried).
    pub max_attempts: NonZeroU32,
    /// First retry delay; each next one doubles (with jitter), up to an hour.
    pub retry_base_seconds: u64,
    /// Address that takes unsubscribe requests by mail, offered in `List-Unsubscribe` beside
    /// the one-click link. Empty: only the link.
    pub unsubscribe_mailto: String,
    /// The envelope sender (where servers send bounces), with `{token}` standing for each
    /// message's own token (VERP: `bounces+{token}@example.org`), so a bounce names the
    /// message it is about even when it quotes nothing of it. Empty: `from`'s address.
    pub return_path: String,
    pub smtp: SmtpSettings,
    pub dkim: DkimSettings,
}

/// DKIM signing of outgoing mail; off while `selector` is empty.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimSettings {
    pub selector: String,
    pub domain: String,
    /// RSA key as PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), or an Ed25519 key as base64.
    pub private_key_path: PathBuf,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    pub password: secrecy::SecretString,
    /// Connections kept open to the relay.
    pub pool_size: NonZeroU32,
    pub timeout_seconds: u64,
    /// Messages per second for digests (0 = unlimited).
    pub rate_per_second: u32,
}

impl std::fmt::Debug for SmtpSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpSettings")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("pool_size", &self.pool_size)
            .field("timeout_seconds", &self.timeout_seconds)
            .field("rate_per_second", &self.rate_per_second)
            .finish()
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriberSettings {
    pub default_frequency: Frequency,
    /// Days a confirmation link stays valid.
    pub confirm_token_days: NonZeroU32,
    /// Minutes before another confirmation mail may go to the same address.
    pub confirm_resend_minutes: u32,
    /// Subscribe attempts per minute from one client address.
    pub rate_per_minute: NonZeroU32,
    /// Days after which a subscription never confirmed is deleted, with every trace of the
    /// address (no shorter than `confirm_token_days`).
    pub purge_pending_days: NonZeroU32,
}

/// A remote RSS or Atom feed whose items become posts.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceSettings {
    pub url: Url,
    /// Tags given to every post from this source, besides the feed's own categories.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Longest the source may take to answer (default 20).
    #[serde(default = "default_source_timeout")]
    pub timeout_seconds: u64,
}

fn default_source_timeout() -> u64 {
    20
}

/// `herald doctor` and the console's preflight page.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DoctorSettings {
    /// The DNS server the checks ask (`127.0.0.1:5353`); none: the system's (resolv.conf).
    pub nameserver: Option<SocketAddr>,
}

/// What Herald records about readers beyond their subscription. Opens are never tracked.
#[derive(Debug, Clone, Copy, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrackingSettings {
    /// Digest links go through `/r/{token}`, which records the click and redirects to the
    /// link (only ever to a link of that edition). Off by default.
    pub clicks: bool,
    /// Clicks are recorded without the reader: per link and per edition only, no unique
    /// clickers.
    pub anonymous: bool,
}

impl TrackingSettings {
    /// Whether a click names its reader.
    pub fn names_readers(&self) -> bool {
        self.clicks && !self.anonymous
    }
}

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter (`info`, `herald=debug,sqlx=warn`); `HERALD_LOG` overrides it.
    pub level: String,
    /// One line per HTTP request (target `herald::access`): client, method, route, status,
    /// milliseconds. Tokens in link paths are never written.
    pub access: bool,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info,sqlx=warn,tower_http=warn,tokio_cron_scheduler=warn".into(),
            access: false,
        }
    }
}

/// How digests are put together and sent.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestSettings {
    /// Subject line as a tera template (`site`, `count`, `posts`: the titles). Empty: the
    /// post's title for one post, "Site: N new posts" for several.
    pub subject: String,
    /// Messages sent at once (and SMTP connections open) by this instance.
    pub concurrency: NonZeroU32,
    /// Deliveries a worker claims at a time; a crash re-sends at most this many per worker.
    pub batch_size: NonZeroU32,
    /// Delivery workers per instance: while one waits on the database, another sends.
    pub workers: NonZeroU32,
    /// Seconds a claimed batch is reserved for its worker before another may take it over
    /// (at least 10).
    pub lease_seconds: u64,
    /// What of each post a digest carries: its `teaser` (summary, image and a link) or
    /// the `full` post.
    pub content: DigestContent,
    /// The circuit breaker looks at this instance's last this many sends of an edition
    /// (sent or refused for good; temporary failures do not count). 0 turns it off.
    pub breaker_window: u32,
    /// The edition pauses itself once permanent failures make this share of the window
    /// (0.5: 50 of the last 100 sends), greater than 0 and at most 1.
    pub breaker_failure_rate: f64,
    /// Percent of an edition's recipients, drawn at random, who get it first (0 = off).
    pub canary_percent: f64,
    /// Minutes the canary sample has, once sent, to bounce or complain before the rest goes.
    pub canary_minutes: u32,
    /// The edition pauses when more than this share of its canary sample bounced for good.
    pub max_bounce_rate: f64,
    /// The edition pauses when more than this share of its canary sample complained.
    pub max_complaint_rate: f64,
}

/// What of each post a digest carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DigestContent {
    /// The summary, lead image and a link to the post.
    #[default]
    Teaser,
    /// The whole post.
    Full,
}

impl Default for DigestSettings {
    fn default() -> Self {
        Self {
            subject: String::new(),
            concurrency: nonzero(8),
            batch_size: nonzero(200),
            workers: nonzero(2),
            lease_seconds: 120,
            content: DigestContent::Teaser,
            breaker_window: 100,
            breaker_failure_rate: 0.5,
            canary_percent: 0.0,
            canary_minutes: 30,
            // Mailbox providers and ESPs treat a hard bounce rate above 2 % as a list that
            // is not kept clean (Amazon SES reviews an account from 5 %).
            max_bounce_rate: 0.02,
            // Gmail's and Yahoo's bulk sender rules (2024): spam complaints must never reach
            // 0.3 %.
            max_complaint_rate: 0.003,
        }
    }
}

/// Bounces and complaints: the soft-bounce rule, and one optional section per provider
/// whose webhook Herald accepts (a provider without a section answers 404).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BounceSettings {
    /// This many soft bounces of an address ...
    pub soft_limit: NonZeroU32,
    /// ... within this many days count as a hard bounce.
    pub soft_days: NonZeroU32,
    /// Amazon SES through SNS: `POST /webhooks/ses`.
    pub ses: Option<SesSettings>,
    /// Postmark: `POST /webhooks/postmark`.
    pub postmark: Option<PostmarkSettings>,
    /// Mailgun: `POST /webhooks/mailgun`.
    pub mailgun: Option<MailgunSettings>,
    /// SendGrid's signed event webhook: `POST /webhooks/sendgrid`.
    pub sendgrid: Option<SendgridSettings>,
    /// A mailbox bounces and complaint reports arrive in, polled over IMAP by `herald serve`.
    pub imap: Option<ImapSettings>,
}

/// The bounce mailbox.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImapSettings {
    pub host: String,
    /// 993 with `tls = "tls"`, 143 otherwise.
    #[serde(default)]
    pub port: Option<u16>,
    /// `tls` (the connection starts in TLS), `starttls`, or `none` (loopback only, or a test).
    #[serde(default = "imap_tls")]
    pub tls: SmtpTls,
    pub username: String,
    pub password: secrecy::SecretString,
    #[serde(default = "imap_folder")]
    pub folder: String,
    /// How often `herald serve` looks for new reports.
    #[serde(default = "imap_poll_seconds")]
    pub poll_seconds: NonZeroU64,
}

fn imap_tls() -> SmtpTls {
    SmtpTls::Tls
}

fn imap_folder() -> String {
    "INBOX".into()
}

fn imap_poll_seconds() -> NonZeroU64 {
    NonZeroU64::new(300).expect("not zero")
}

impl ImapSettings {
    pub fn port(&self) -> u16 {
        self.port.unwrap_or(if self.tls == SmtpTls::Tls { 993 } else { 143 })
    }
}

impl std::fmt::Debug for ImapSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImapSettings")
            .field("host", &self.host)
            .field("port", &self.port())
            .field("tls", &self.tls)
            .field("username", &self.username)
            .field("password", &"[redacted]")
            .field("folder", &self.folder)
            .field("poll_seconds", &self.poll_seconds)
            .finish()
    }
}

impl Default for BounceSettings {
    fn default() -> Self {
        Self {
            soft_limit: nonzero(3),
            soft_days: nonzero(14),
            ses: None,
            postmark: None,
            mailgun: None,
            sendgrid: None,
            imap: None,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SesSettings {
    /// The ARN of the SNS topic SES publishes to; any other topic's messages are refused.
    pub topic_arn: String,
    /// Where signing certificates may come from. Unset (production): only
    /// `https://sns.<region>.amazonaws.com/`. Tests set a loopback URL here.
    #[serde(default)]
    pub certificate_url_prefix: Option<Url>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostmarkSettings {
    /// The HTTP Basic credentials set on the webhook's URL in Postmark.
    pub username: String,
    pub password: secrecy::SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailgunSettings {
    /// The HTTP webhook signing key (Mailgun: Sending → Webhooks).
    pub signing_key: secrecy::SecretString,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendgridSettings {
    /// The verification key shown when the signed event webhook is enabled: base64 of a
    /// DER SubjectPublicKeyInfo of an ECDSA P-256 key.
    pub public_key: String,
}

#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// A bearer token for `/admin/api/*` from config, beside those made by
    /// `herald admin create-token`. Empty: only those.
    pub api_token: secrecy::SecretString,
    /// How long an admin stays logged in.
    pub session_hours: u32,
    /// Login attempts per minute, per client address and per account (clients without a
    /// device cookie), and per device cookie.
    pub login_attempts_per_minute: u32,
    /// Password checks per minute for clients without a device cookie, all addresses together.
    pub login_budget_per_minute: u32,
}

impl std::fmt::Debug for AdminSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AdminSettings")
            .field("api_token", &"[redacted]")
            .field("session_hours", &self.session_hours)
            .field("login_attempts_per_minute", &self.login_attempts_per_minute)
            .field("login_budget_per_minute", &self.login_budget_per_minute)
            .finish()
    }
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            transport: MailTransport::File,
            outbox_dir: PathBuf::from("outbox"),
            from: "Herald <herald@localhost>".parse().expect("a valid literal mailbox"),
            reply_to: None,
            max_attempts: nonzero(8),
            retry_base_seconds: 30,
            unsubscribe_mailto: String::new(),
            return_path: String::new(),
            smtp: SmtpSettings::default(),
            dkim: DkimSettings::default(),
        }
    }
}

impl Default for SmtpSettings {
    fn default() -> Self {
        Self {
            host: "127.0.0.1".into(),
            port: 25,
            tls: SmtpTls::None,
            username: String::new(),
            password: secrecy::SecretString::from(String::new()),
            pool_size: nonzero(8),
            timeout_seconds: 30,
            rate_per_second: 0,
        }
    }
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        Self {
            default_frequency: Frequency::Weekly,
            confirm_token_days: nonzero(7),
            confirm_resend_minutes: 5,
            rate_per_minute: nonzero(10),
            purge_pending_days: nonzero(30),
        }
    }
}

impl Default for AdminSettings {
    fn default() -> Self {
        Self {
            api_token: secrecy::SecretString::from(String::new()),
            session_hours: 12,
            login_attempts_per_minute: 5,
            login_budget_per_minute: 60,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://herald.db` (relative to the config file) or `postgres://...`.
    pub url: DatabaseUrl,
    pub max_connections: NonZeroU32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentSettings {
    pub posts_dir: PathBuf,
    /// Folder of files served as they are at the site's root (`static/images/map.png` at
    /// `/images/map.png`) and copied by `herald build`; it need not exist.
    pub static_dir: PathBuf,
    /// Folder of templates that override the built-in ones (same file names).
    pub templates_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSettings {
    /// Entries per feed (at most 1000).
    pub limit: NonZeroU32,
    /// WebSub hubs (http or https URLs) every public feed names, and that `herald serve`
    /// tells when posts are published. Empty: no hub.
    pub websub_hubs: Vec<Url>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    /// IANA time zone the cron expressions are read in.
    #[serde(deserialize_with = "time_zone")]
    pub timezone: Tz,
    /// Cron expression (with seconds) for re-reading the posts folder; new posts then go
    /// out to `immediate` subscribers.
    pub sync: CronSchedule,
    /// When the remote sources (`[[sources]]`) are polled.
    pub sources: CronSchedule,
    /// When the daily digest goes out.
    pub daily: CronSchedule,
    /// When the weekly digest goes out.
    pub weekly: CronSchedule,
    /// When the monthly digest goes out.
    pub monthly: CronSchedule,
}

impl ScheduleSettings {
    /// When the digest of `frequency` goes out; `None` for `immediate`, which follows posts.
    pub fn digest_time(&self, frequency: Frequency) -> Option<&CronSchedule> {
        match frequency {
            Frequency::Immediate => None,
            Frequency::Daily => Some(&self.daily),
            Frequency::Weekly => Some(&self.weekly),
            Frequency::Monthly => Some(&self.monthly),
        }
    }
}

impl Default for Settings {
    fn default() -> Self {
        Self {
            site: SiteSettings::default(),
            server: ServerSettings::default(),
            database: DatabaseSettings::default(),
            content: ContentSettings::default(),
            feeds: FeedSettings::default(),
            schedule: ScheduleSettings::default(),
            mail: MailSettings::default(),
            subscribers: SubscriberSettings::default(),
            admin: AdminSettings::default(),
            digest: DigestSettings::default(),
            log: LogSettings::default(),
            bounces: BounceSettings::default(),
            doctor: DoctorSettings::default(),
            tracking: TrackingSettings::default(),
            sources: Vec::new(),
            base_dir: PathBuf::from("."),
        }
    }
}

impl Default for SiteSettings {
    fn default() -> Self {
        Self {
            title: "Herald".into(),
            base_url: Url::parse("http://127.0.0.1:8080/").expect("a valid literal URL"),
            description: String::new(),
            language: "en".into(),
            author: String::new(),
            page_size: nonzero(10),
            logo: String::new(),
            accent_color: Colour::rgb(0x0b, 0x6e, 0x4f),
            footer: String::new(),
            postal_address: String::new(),
            favicon: String::new(),
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trust_forwarded_for: false,
            header_timeout_seconds: nonzero64(10),
            body_timeout_seconds: nonzero64(60),
            keep_alive_seconds: nonzero64(5),
            max_connections: nonzero(512),
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: DatabaseUrl::Sqlite("sqlite://herald.db".into()),
            max_connections: nonzero(8),
        }
    }
}

impl Default for ContentSettings {
    fn default() -> Self {
        Self {
            posts_dir: PathBuf::from("content/posts"),
            static_dir: PathBuf::from("static"),
            templates_dir: None,
        }
    }
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self {
            limit: nonzero(20),
            websub_hubs: Vec::new(),
        }
    }
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            timezone: Tz::Europe__London,
            sync: CronSchedule::literal("0 */5 * * * *"),
            sources: CronSchedule::literal("0 */15 * * * *"),
            daily: CronSchedule::literal("0 0 8 * * *"),
            weekly: CronSchedule::literal("0 0 8 * * Mon"),
            monthly: CronSchedule::literal("0 0 8 1 * *"),
        }
    }
}

impl Settings {
    /// Reads `path` (which must exist) and the environment, validates, and resolves paths.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if !path.is_file() {
            bail!("config file {} not found", path.display());
        }
        let figment = Figment::from(Toml::file_exact(path)).merge(env_provider());
        Self::from_figment(figment, path)
    }

    /// Keys missing from `figment` take the values of [`Settings::default`].
    fn from_figment(figment: Figment, path: &Path) -> anyhow::Result<Self> {
        let settings: Settings = figment
            .extract()
            .map_err(|e| anyhow::anyhow!(describe_figment_error(e)))
            .with_context(|| format!("Invalid configuration in {}", path.display()))?;
        let base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let mut settings = settings.based_in(base_dir);
        settings
            .validate()
            .with_context(|| format!("Invalid configuration in {}", path.display()))?;
        Ok(settings)
    }

    /// These settings as read from a config file in `base_dir`: a relative SQLite path is
    /// resolved against it.
    fn based_in(mut self, base_dir: PathBuf) -> Self {
        self.database.url = self.database.url.resolved_against(&base_dir);
        self.base_dir = base_dir;
        self
    }

    /// Checks what the types alone do not: bounds and keys that depend on each other.
    fn validate(&mut self) -> anyhow::Result<()> {
        let base = &mut self.site.base_url;
        if !matches!(base.scheme(), "http" | "https") {
            bail!("site.base_url must be an http or https URL, not {base}");
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        base.set_query(None);
        base.set_fragment(None);
        if self.site.title.trim().is_empty() {
            bail!("site.title cannot be empty");
        }
        for (key, value) in [("site.logo", &self.site.logo), ("site.favicon", &self.site.favicon)] {
            let value = value.trim();
            if value.is_empty() {
                continue;
            }
            // A path on the site, or an http(s) URL: nothing a browser would run.
            let resolved = self.site.base_url.join(value.trim_start_matches('/'));
            if !resolved.is_ok_and(|u| matches!(u.scheme(), "http" | "https")) {
                bail!("{key} must be a path on the site (images/logo.png) or an http or https URL, not {value:?}");
            }
        }
        if self.site.page_size.get() > 500 {
            bail!("site.page_size must be between 1 and 500, not {}", self.site.page_size);
        }
        if self.feeds.limit.get() > 1000 {
            bail!("feeds.limit must be between 1 and 1000, not {}", self.feeds.limit);
        }
        for (i, hub) in self.feeds.websub_hubs.iter().enumerate() {
            if !matches!(hub.scheme(), "http" | "https") || hub.host_str().is_none() {
                bail!("feeds.websub_hubs[{i}] must be an http or https URL, not {hub}");
            }
        }
        let server = &self.server;
        // A connection waiting for its next request is also waiting for that request's
        // headers, so the header clock runs during keep-alive too.
        if server.keep_alive_seconds > server.header_timeout_seconds {
            bail!(
                "server.keep_alive_seconds ({}) cannot be longer than server.header_timeout_seconds ({})",
                server.keep_alive_seconds,
                server.header_timeout_seconds
            );
        }
        let return_path = self.mail.return_path.trim();
        if !return_path.is_empty() {
            let sample = return_path.replace("{token}", "edition.1.1");
            if return_path.matches("{token}").count() > 1 || sample.parse::<lettre::Address>().is_err() {
                bail!(
                    "mail.return_path must be an address, with at most one {{token}} in its local part \
                     (bounces+{{token}}@example.org), not {return_path:?}"
                );
            }
        }
        if self.mail.transport == MailTransport::Smtp && self.mail.smtp.host.trim().is_empty() {
            bail!("mail.smtp.host must be set when mail.transport = \"smtp\"");
        }
        for (i, source) in self.sources.iter().enumerate() {
            if !matches!(source.url.scheme(), "http" | "https") {
                bail!("sources[{i}].url must be an http or https URL, not {}", source.url);
            }
        }
        if let Some(ses) = &self.bounces.ses
            && !ses.topic_arn.starts_with("arn:")
        {
            bail!(
                "bounces.ses.topic_arn must be an SNS topic ARN (arn:aws:sns:...), not {:?}",
                ses.topic_arn
            );
        }
        if let Some(postmark) = &self.bounces.postmark {
            use secrecy::ExposeSecret;
            if postmark.username.is_empty() || postmark.password.expose_secret().is_empty() {
                bail!("bounces.postmark.username and bounces.postmark.password cannot be empty");
            }
        }
        if let Some(mailgun) = &self.bounces.mailgun {
            use secrecy::ExposeSecret;
            if mailgun.signing_key.expose_secret().is_empty() {
                bail!("bounces.mailgun.signing_key cannot be empty");
            }
        }
        let subscribers = &self.subscribers;
        if subscribers.purge_pending_days < subscribers.confirm_token_days
            || subscribers.purge_pending_days.get() > 3650
        {
            bail!(
                "subscribers.purge_pending_days must be from subscribers.confirm_token_days ({}) to 3650, not {}",
                subscribers.confirm_token_days,
                subscribers.purge_pending_days
            );
        }
        if self.digest.lease_seconds < 10 {
            bail!("digest.lease_seconds must be at least 10");
        }
        let d = &self.digest;
        if !(d.breaker_failure_rate > 0.0 && d.breaker_failure_rate <= 1.0) {
            bail!(
                "digest.breaker_failure_rate must be more than 0 and at most 1, not {}",
                d.breaker_failure_rate
            );
        }
        if !(0.0..100.0).contains(&d.canary_percent) {
            bail!(
                "digest.canary_percent must be from 0 up to (not including) 100, not {}",
                d.canary_percent
            );
        }
        for (key, rate) in [
            ("max_bounce_rate", d.max_bounce_rate),
            ("max_complaint_rate", d.max_complaint_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                bail!("digest.{key} must be between 0 and 1 (a share: 0.02 is 2 %), not {rate}");
            }
        }
        if !self.digest.subject.trim().is_empty() {
            // Rendered once with sample values, so a typo fails now rather than at send time.
            let mut sample = tera::Context::new();
            sample.insert(
                "site",
                &serde_json::json!({"title": self.site.title, "base_url": self.site.base_url.as_str(),
                "description": self.site.description, "language": self.site.language, "author": self.site.author}),
            );
            sample.insert("count", &2);
            sample.insert("posts", &["First post", "Second post"]);
            tera::Tera::one_off(&self.digest.subject, &sample, false)
                .map_err(|e| anyhow::anyhow!("digest.subject is not a valid template: {e}"))?;
        }
        Ok(())
    }

    /// The posts folder, resolved against the config file's folder.
    pub fn posts_dir(&self) -> PathBuf {
        self.resolve(&self.content.posts_dir)
    }

    pub fn static_dir(&self) -> PathBuf {
        self.resolve(&self.content.static_dir)
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.resolve(&self.mail.outbox_dir)
    }

    pub fn templates_dir(&self) -> Option<PathBuf> {
        self.content.templates_dir.as_ref().map(|p| self.resolve(p))
    }

    /// Resolves a path from the config against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
    }

    /// What is allowed but probably a mistake, to log at start-up.
    pub fn warnings(&self) -> Vec<String> {
        let mut warnings: Vec<String> = self.base_url_mismatch().into_iter().collect();
        if self.mail.transport == MailTransport::Smtp && self.site.postal_address.trim().is_empty() {
            warnings.push(
                "site.postal_address is empty: laws on bulk mail (CAN-SPAM in the US, PECR in the UK) \
                 expect the sender's postal address in every newsletter"
                    .into(),
            );
        }
        if self.tracking.anonymous && !self.tracking.clicks {
            warnings.push(
                "tracking.anonymous = true does nothing while tracking.clicks = false: no clicks are recorded".into(),
            );
        }
        warnings
    }

    /// What to warn about when `site.base_url` names this machine on another port than
    /// `server.listen` (changing `listen` alone leaves every link on the old port). Only
    /// for loopback addresses: behind a proxy the two differ on purpose.
    pub fn base_url_mismatch(&self) -> Option<String> {
        let base = &self.site.base_url;
        let listen = self.server.listen;
        let loopback_base = match base.host() {
            Some(url::Host::Domain(name)) => name.eq_ignore_ascii_case("localhost"),
            Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
            Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
            None => false,
        };
        let local_listen = listen.ip().is_loopback() || listen.ip().is_unspecified();
        let port = base.port_or_known_default()?;
        (loopback_base && local_listen && listen.port() != 0 && port != listen.port()).then(|| {
            format!(
                "site.base_url is {base} but server.listen is {listen}: links in pages, feeds and mail \
                 point at port {port}; set site.base_url to match"
            )
        })
    }

    /// An absolute URL for a site path such as `posts/otters/` (no leading slash needed).
    pub fn url_for(&self, path: &str) -> String {
        let mut out = self.site.base_url.to_string();
        out.push_str(path.trim_start_matches('/'));
        out
    }
}

/// `HERALD_SECTION__KEY` variables, e.g. `HERALD_DATABASE__URL`. Variables without a
/// `__` (such as `HERALD_CONFIG` or test settings) are not configuration keys.
fn env_provider() -> Env {
    Env::prefixed("HERALD_")
        .filter(|key| key.as_str().contains("__"))
        .split("__")
}

fn describe_figment_error(error: figment::Error) -> String {
    error
        .into_iter()
        .map(|e| {
            let key = if e.path.is_empty() {
                String::new()
            } else {
                format!("{}: ", e.path.join("."))
            };
            let origin = e
                .metadata
                .as_ref()
                .map(|m| format!(" (from {})", m.name))
                .unwrap_or_default();
            format!("{key}{}{origin}", e.kind)
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// A cron expression with seconds first (`sec min hour day-of-month month day-of-week`),
/// parsed when the config loads. It keeps the text it was read from, which is what
/// tokio-cron-scheduler's jobs take.
#[derive(Clone, Deserialize)]
#[serde(try_from = "String")]
pub struct CronSchedule {
    text: String,
    cron: Cron,
}

impl CronSchedule {
    /// Parses `text`; the error quotes it and says what a valid one looks like.
    pub fn parse(text: &str) -> Result<Self, String> {
        let cron = CronParser::builder()
            .seconds(Seconds::Required)
            .dom_and_dow(true)
            .build()
            .parse(text)
            .map_err(|e| format!("{text:?} is not a valid cron expression (six fields, seconds first): {e}"))?;
        Ok(Self {
            text: text.to_owned(),
            cron,
        })
    }

    fn literal(text: &str) -> Self {
        Self::parse(text).expect("a valid literal cron expression")
    }

    /// The expression as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed expression, to find its occurrences.
    pub fn cron(&self) -> &Cron {
        &self.cron
    }
}

impl TryFrom<String> for CronSchedule {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        Self::parse(&text)
    }
}

impl PartialEq for CronSchedule {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.text, f)
    }
}

/// Parses the cron expression `cron` given for `key`; the error begins with `key`.
pub fn parse_cron(key: &str, cron: &str) -> anyhow::Result<CronSchedule> {
    CronSchedule::parse(cron).map_err(|e| anyhow::anyhow!("{key}: {e}"))
}

/// Where the database is.
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum DatabaseUrl {
    /// A `sqlite:` URL. Once loaded, a relative file path in it has been resolved against
    /// the config file's folder.
    Sqlite(String),
    /// A `postgres://` or `postgresql://` URL.
    Postgres(String),
}

impl DatabaseUrl {
    /// The URL, password and all.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Sqlite(url) | Self::Postgres(url) => url,
        }
    }

    /// A SQLite URL with a relative file path made relative to `base_dir` instead of the
    /// current directory; anything else as it is.
    fn resolved_against(self, base_dir: &Path) -> Self {
        let Self::Sqlite(url) = &self else {
            return self;
        };
        let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
            return self;
        };
        if rest.starts_with(':') || rest.starts_with('/') || rest.is_empty() {
            return self;
        }
        let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
        let resolved = base_dir.join(path);
        Self::Sqlite(match query {
            Some(q) => format!("sqlite://{}?{q}", resolved.display()),
            None => format!("sqlite://{}", resolved.display()),
        })
    }
}

impl TryFrom<String> for DatabaseUrl {
    type Error = &'static str;

    fn try_from(url: String) -> Result<Self, Self::Error> {
        if url.starts_with("sqlite:") {
            Ok(Self::Sqlite(url))
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Self::Postgres(url))
        } else {
            // Not quoted: a mistyped URL may still hold a password.
            Err("must start with sqlite: or postgres://")
        }
    }
}

/// The URL with any password replaced, so settings can be logged.
impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Sqlite(url) => f.debug_tuple("Sqlite").field(url).finish(),
            Self::Postgres(url) => {
                let shown = match Url::parse(url) {
                    Ok(mut parsed) if parsed.password().is_some() => {
                        let _ = parsed.set_password(Some("redacted"));
                        parsed.to_string()
                    }
                    Ok(_) => url.clone(),
                    Err(_) => "(unparsable)".to_owned(),
                };
                f.debug_tuple("Postgres").field(&shown).finish()
            }
        }
    }
}

/// `n`, for defaults; `n` is never 0.
fn nonzero(n: u32) -> NonZeroU32 {
    NonZeroU32::new(n).expect("a nonzero default")
}

/// `n`, for defaults; `n` is never 0.
fn nonzero64(n: u64) -> NonZeroU64 {
    NonZeroU64::new(n).expect("a nonzero default")
}

/// An IANA time zone from its name (`Europe/London`).
fn time_zone<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Tz, D::Error> {
    let name = String::deserialize(deserializer)?;
    name.parse()
        .map_err(|_| serde::de::Error::custom(format!("unknown time zone {name:?}")))
}

/// A mailbox written `Name <news@example.org>` or `news@example.org`.
fn mailbox<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Mailbox, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse()
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not a mailbox like `Name <news@example.org>`: {e}")))
}

/// As [`mailbox`], or none for an empty string.
fn optional_mailbox<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Mailbox>, D::Error> {
    let text = String::deserialize(deserializer)?;
    if text.trim().is_empty() {
        return Ok(None);
    }
    text.parse()
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("{text:?} is not an address: {e}")))
}

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    #[test]
    fn a_base_url_on_another_local_port_than_the_server_is_pointed_out() {
        let s = load_str("[server]\nlisten = \"127.0.0.1:9090\"\n").unwrap();
        let warning = s.base_url_mismatch().unwrap();
        assert!(
            warning.contains("127.0.0.1:9090") && warning.contains("port 8080"),
            "{warning}"
        );
        let both = load_str("[server]\nlisten = \"127.0.0.1:9090\"\n[site]\nbase_url = \"http://localhost:9090/\"\n");
        assert_eq!(both.unwrap().base_url_mismatch(), None);
        let proxied =
            load_str("[server]\nlisten = \"127.0.0.1:9090\"\n[site]\nbase_url = \"https://news.example.org/\"\n");
        assert_eq!(
            proxied.unwrap().base_url_mismatch(),
            None,
            "behind a proxy they differ on purpose"
        );
        assert_eq!(load_str("").unwrap().base_url_mismatch(), None);
    }

    fn load_str(toml: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).unwrap();
        Settings::from_figment(Figment::from(Toml::file_exact(&path)), &path)
    }

    fn error_of(toml: &str) -> String {
        format!("{:#}", load_str(toml).unwrap_err())
    }

    #[test]
    fn an_empty_file_gives_working_defaults() {
        let s = load_str("").unwrap();
        assert_eq!(s.feeds.limit.get(), 20);
        assert_eq!(s.server.listen.port(), 8080);
        assert_eq!(s.schedule.timezone, Tz::Europe__London);
        assert_eq!(s.schedule.daily.as_str(), "0 0 8 * * *");
        assert_eq!(s.schedule.monthly.as_str(), "0 0 8 1 * *");
        assert_eq!(s.mail.from.email.domain(), "localhost");
        assert!(s.mail.reply_to.is_none());
        let DatabaseUrl::Sqlite(url) = &s.database.url else {
            panic!("{:?}", s.database.url)
        };
        assert!(url.starts_with("sqlite://") && url.ends_with("herald.db"), "{url}");
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = error_of("[site]\ntitel = \"x\"\n");
        assert!(err.contains("titel"), "{err}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let err = error_of("[server]\nlisten = \"nowhere\"\n");
        assert!(err.contains("server.listen"), "{err}");
        let err = error_of("[feeds]\nlimit = 0\n");
        assert!(err.contains("feeds.limit"), "{err}");
        let err = error_of("[feeds]\nlimit = 1001\n");
        assert!(
            err.contains("feeds.limit must be between 1 and 1000, not 1001"),
            "{err}"
        );
        let err = error_of("[site]\npage_size = 501\n");
        assert!(err.contains("site.page_size"), "{err}");
        let err = error_of("[schedule]\ntimezone = \"Mars/Olympus\"\n");
        assert!(
            err.contains("schedule.timezone: unknown time zone \"Mars/Olympus\""),
            "{err}"
        );
        let err = error_of("[database]\nurl = \"mysql://u:hunter2@db/herald\"\n");
        assert!(
            err.contains("database.url: must start with sqlite: or postgres://"),
            "{err}"
        );
        assert!(!err.contains("hunter2"), "{err}");
        let err = error_of("[mail]\nfrom = \"not a mailbox\"\n");
        assert!(err.contains("mail.from: \"not a mailbox\" is not a mailbox"), "{err}");
        let err = error_of("[mail]\nreturn_path = \"bounces+{token}\"\n");
        assert!(err.contains("mail.return_path must be an address"), "{err}");
        let err = error_of("[mail]\nreturn_path = \"{token}+{token}@example.org\"\n");
        assert!(err.contains("at most one {token}"), "{err}");
        let err = error_of("[mail]\nreply_to = \"nobody\"\n");
        assert!(err.contains("mail.reply_to: \"nobody\" is not an address"), "{err}");
        for key in [
            "[server]\nheader_timeout_seconds",
            "[server]\nmax_connections",
            "[database]\nmax_connections",
            "[mail]\nmax_attempts",
            "[mail.smtp]\npool_size",
            "[digest]\nworkers",
            "[subscribers]\nconfirm_token_days",
            "[subscribers]\nrate_per_minute",
        ] {
            let err = error_of(&format!("{key} = 0\n"));
            let name = key.trim_start_matches('[').replace("]\n", ".");
            assert!(err.contains(&format!("{name}: ")) && err.contains("nonzero"), "{err}");
        }
    }

    #[test]
    fn websub_hubs_are_http_urls() {
        assert!(load_str("").unwrap().feeds.websub_hubs.is_empty());
        let s = load_str("[feeds]\nwebsub_hubs = [\"https://hub.example/\", \"http://127.0.0.1:9/hub\"]\n").unwrap();
        assert_eq!(
            s.feeds.websub_hubs.iter().map(Url::as_str).collect::<Vec<_>>(),
            ["https://hub.example/", "http://127.0.0.1:9/hub"]
        );
        let err = error_of("[feeds]\nwebsub_hubs = [\"https://hub.example/\", \"ftp://hub.example/\"]\n");
        assert!(
            err.contains("feeds.websub_hubs[1] must be an http or https URL"),
            "{err}"
        );
        let err = error_of("[feeds]\nwebsub_hubs = [\"not a url\"]\n");
        assert!(err.contains("websub_hubs"), "{err}");
    }

    #[test]
    fn bad_cron_strings_name_their_key() {
        let err = error_of("[schedule]\ndaily = \"0 8 * * *\"\n");
        assert!(
            err.contains("schedule.daily: \"0 8 * * *\" is not a valid cron expression (six fields, seconds first): "),
            "{err}"
        );
        let err = parse_cron("schedule.weekly", "0 8 * * *").unwrap_err().to_string();
        assert!(
            err.starts_with("schedule.weekly: \"0 8 * * *\" is not a valid cron"),
            "{err}"
        );
        let err = error_of("[schedule]\nmonthly = \"0 0 8 32 * *\"\n");
        assert!(
            err.contains("schedule.monthly: \"0 0 8 32 * *\" is not a valid cron expression"),
            "{err}"
        );
    }

    #[test]
    fn typed_values_are_read_from_the_file() {
        let s = load_str(
            "[schedule]\ntimezone = \"America/New_York\"\nweekly = \"0 30 9 * * Fri\"\n\
             monthly = \"0 0 7 15 * *\"\n\
             [mail]\nfrom = \"News <news@example.org>\"\nreply_to = \"desk@example.org\"\n\
             [database]\nurl = \"postgres://herald:secret@db/herald\"\n",
        )
        .unwrap();
        assert_eq!(s.schedule.timezone, Tz::America__New_York);
        assert_eq!(s.schedule.weekly.as_str(), "0 30 9 * * Fri");
        assert_eq!(s.schedule.digest_time(Frequency::Weekly), Some(&s.schedule.weekly));
        assert_eq!(s.schedule.monthly.as_str(), "0 0 7 15 * *");
        assert_eq!(s.schedule.digest_time(Frequency::Monthly), Some(&s.schedule.monthly));
        assert_eq!(s.schedule.digest_time(Frequency::Immediate), None);
        assert_eq!(s.mail.from.name.as_deref(), Some("News"));
        assert_eq!(s.mail.reply_to.unwrap().email.to_string(), "desk@example.org");
        assert_eq!(
            s.database.url,
            DatabaseUrl::Postgres("postgres://herald:secret@db/herald".into())
        );
        let shown = format!("{:?}", s.database);
        assert!(!shown.contains("secret"), "{shown}");
    }

    #[test]
    fn base_url_always_ends_with_a_slash() {
        let s = load_str("[site]\nbase_url = \"https://example.org/news\"\n").unwrap();
        assert_eq!(s.site.base_url.as_str(), "https://example.org/news/");
        assert_eq!(s.url_for("/posts/a/"), "https://example.org/news/posts/a/");
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, "[content]\nposts_dir = \"p\"\n").unwrap();
        let s = Settings::load(&path).unwrap();
        assert_eq!(s.posts_dir(), dir.path().join("p"));
        assert_eq!(
            s.database.url.as_str(),
            format!("sqlite://{}", dir.path().join("herald.db").display())
        );
        let s = load_str("[database]\nurl = \"sqlite:data/h.db?mode=rwc\"\n").unwrap();
        assert_eq!(
            s.database.url.as_str(),
            format!("sqlite://{}?mode=rwc", s.base_dir.join("data/h.db").display())
        );
        let s = load_str("[database]\nurl = \"sqlite::memory:\"\n").unwrap();
        assert_eq!(s.database.url.as_str(), "sqlite::memory:");
    }

    #[test]
    fn bounce_providers_are_off_until_their_section_is_set() {
        let s = load_str("").unwrap();
        assert!(s.bounces.ses.is_none() && s.bounces.postmark.is_none());
        assert_eq!((s.bounces.soft_limit.get(), s.bounces.soft_days.get()), (3, 14));
        let s = load_str(
            "[bounces]\nsoft_limit = 5\n[bounces.ses]\ntopic_arn = \"arn:aws:sns:eu-west-1:1:t\"\n\
             [bounces.mailgun]\nsigning_key = \"k\"\n",
        )
        .unwrap();
        assert_eq!(s.bounces.soft_limit.get(), 5);
        assert_eq!(s.bounces.ses.unwrap().topic_arn, "arn:aws:sns:eu-west-1:1:t");
        for (bad, says) in [
            ("[bounces.ses]\ntopic_arn = \"my-topic\"\n", "bounces.ses.topic_arn"),
            (
                "[bounces.postmark]\nusername = \"u\"\npassword = \"\"\n",
                "bounces.postmark",
            ),
            ("[bounces.mailgun]\nsigning_key = \"k\"\nextra = 1\n", "extra"),
            ("[bounces]\nsoft_days = 0\n", "soft_days"),
        ] {
            let error = format!("{:#}", load_str(bad).unwrap_err());
            assert!(error.contains(says), "{bad}: {error}");
        }
    }

    #[test]
    fn a_logo_or_icon_is_a_path_or_a_web_address() {
        use figment::providers::Serialized;
        for bad in ["javascript:alert(1)", "data:image/svg+xml,<svg/>", "file:///etc/passwd"] {
            let figment = Figment::from(Serialized::default("site.logo", bad));
            let error = format!(
                "{:#}",
                Settings::from_figment(figment, Path::new("c.toml")).unwrap_err()
            );
            assert!(error.contains("site.logo must be a path on the site"), "{bad}: {error}");
        }
        for good in [
            "images/logo.png",
            "/images/logo.png",
            "https://cdn.example.org/logo.svg",
        ] {
            let figment = Figment::from(Serialized::default("site.favicon", good));
            assert!(Settings::from_figment(figment, Path::new("c.toml")).is_ok(), "{good}");
        }
    }

    /// The repository's `config.toml` loads, and every value in it is the built-in default
    /// except the example site's own texts and sender, as the file and the README say.
    #[test]
    fn the_shipped_config_toml_holds_the_defaults() {
        let path = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/config.toml"));
        let mut shipped = Settings::from_figment(Figment::from(Toml::file_exact(path)), path).unwrap();
        let defaults = Settings::default().based_in(shipped.base_dir.clone());

        assert_eq!(shipped.site.title, "The Riverside Trust");
        assert_eq!(shipped.mail.from.email.to_string(), "news@riverside.example.org");
        shipped.site.title = defaults.site.title.clone();
        shipped.site.description = defaults.site.description.clone();
        shipped.site.language = defaults.site.language.clone();
        shipped.site.author = defaults.site.author.clone();
        shipped.site.footer = defaults.site.footer.clone();
        shipped.site.postal_address = defaults.site.postal_address.clone();
        shipped.mail.from = defaults.mail.from.clone();

        let sections = |s: &Settings| {
            [
                ("site", format!("{:#?}", s.site)),
                ("server", format!("{:#?}", s.server)),
                ("database", format!("{:#?}", s.database)),
                ("content", format!("{:#?}", s.content)),
                ("feeds", format!("{:#?}", s.feeds)),
                ("schedule", format!("{:#?}", s.schedule)),
                ("mail", format!("{:#?}", s.mail)),
                ("subscribers", format!("{:#?}", s.subscribers)),
                ("admin", format!("{:#?}", s.admin)),
                ("digest", format!("{:#?}", s.digest)),
                ("log", format!("{:#?}", s.log)),
                ("bounces", format!("{:#?}", s.bounces)),
                ("sources", format!("{:#?}", s.sources)),
            ]
        };
        for ((section, shipped), (_, default)) in sections(&shipped).into_iter().zip(sections(&defaults)) {
            assert_eq!(shipped, default, "[{section}] in config.toml differs from the default");
        }
        // Debug output hides the secrets; compare them as they are.
        assert_eq!(
            shipped.mail.smtp.password.expose_secret(),
            defaults.mail.smtp.password.expose_secret()
        );
        assert_eq!(
            shipped.admin.api_token.expose_secret(),
            defaults.admin.api_token.expose_secret()
        );
    }
}
