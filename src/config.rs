//! One `Settings` struct: `config.toml`, then `HERALD_SECTION__KEY` environment
//! variables on top (the environment wins). Relative paths are resolved against
//! the folder of the config file, never the current directory.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};
use url::Url;

/// Everything Herald reads from its configuration.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
    /// Remote feeds to import posts from (`[[sources]]`).
    pub sources: Vec<SourceSettings>,
    /// Folder the config file lives in; relative paths are resolved against it.
    #[serde(skip)]
    pub base_dir: PathBuf,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteSettings {
    pub title: String,
    /// Absolute URL the site is published under; always ends with `/`.
    pub base_url: Url,
    pub description: String,
    pub language: String,
    pub author: String,
    /// Posts per page on the home and tag pages.
    pub page_size: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSettings {
    pub listen: SocketAddr,
    /// Take the client's address from the last `X-Forwarded-For` entry (only behind a
    /// reverse proxy that sets it; otherwise clients could pick their own address).
    pub trust_forwarded_for: bool,
    /// Seconds a client has to send a request's headers, counted from when it connects or
    /// its previous response ends (slow-header clients are cut off).
    pub header_timeout_seconds: u64,
    /// Seconds a client has to send a request's body, counted from the end of its headers.
    pub body_timeout_seconds: u64,
    /// Seconds a kept-alive connection may sit idle before it is closed.
    pub keep_alive_seconds: u64,
    /// Connections open at once. At the cap the longest-idle connection is closed to make
    /// room; if none is idle, new connections wait.
    pub max_connections: u32,
}

/// How mail leaves Herald.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum MailTransport {
    /// One `.eml` file per message in `outbox_dir`.
    File,
    Smtp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    None,
    Starttls,
    Tls,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MailSettings {
    pub transport: MailTransport,
    pub outbox_dir: PathBuf,
    /// `Name <address>` the mail comes from; its domain also names Message-IDs.
    pub from: String,
    pub reply_to: String,
    /// Attempts before a message is given up (SMTP 4xx and connection errors are retried).
    pub max_attempts: u32,
    /// First retry delay; each next one doubles (with jitter), up to an hour.
    pub retry_base_seconds: u64,
    /// Address that takes unsubscribe requests by mail, offered in `List-Unsubscribe` beside
    /// the one-click link. Empty: only the link.
    pub unsubscribe_mailto: String,
    pub smtp: SmtpSettings,
    pub dkim: DkimSettings,
}

/// DKIM signing of outgoing mail; off while `selector` is empty.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DkimSettings {
    pub selector: String,
    pub domain: String,
    /// RSA key as PKCS#1 PEM (`-----BEGIN RSA PRIVATE KEY-----`), or an Ed25519 key as base64.
    pub private_key_path: PathBuf,
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpSettings {
    pub host: String,
    pub port: u16,
    pub tls: SmtpTls,
    pub username: String,
    #[serde(serialize_with = "serialize_secret")]
    pub password: secrecy::SecretString,
    /// Connections kept open to the relay.
    pub pool_size: u32,
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
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriberSettings {
    pub default_frequency: crate::domain::Frequency,
    /// Days a confirmation link stays valid.
    pub confirm_token_days: u32,
    /// Minutes before another confirmation mail may go to the same address.
    pub confirm_resend_minutes: u32,
    /// Subscribe attempts per minute from one client address.
    pub rate_per_minute: u32,
}

/// A remote RSS or Atom feed whose items become posts.
#[derive(Debug, Clone, Serialize, Deserialize)]
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

/// Log output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Text,
    /// One JSON object per line, for log collectors.
    Json,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub format: LogFormat,
    /// A tracing filter (`info`, `herald=debug,sqlx=warn`); `HERALD_LOG` overrides it.
    pub level: String,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            level: "info,sqlx=warn,tower_http=warn,tokio_cron_scheduler=warn".into(),
        }
    }
}

/// How digests are put together and sent.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DigestSettings {
    /// Subject line as a tera template (`site`, `count`, `posts`: the titles). Empty: the
    /// post's title for one post, "Site: N new posts" for several.
    pub subject: String,
    /// Messages sent at once (and SMTP connections open) by this instance.
    pub concurrency: u32,
    /// Deliveries a worker claims at a time; a crash re-sends at most this many per worker.
    pub batch_size: u32,
    /// Delivery workers per instance: while one waits on the database, another sends.
    pub workers: u32,
    /// Seconds a claimed batch is reserved for its worker before another may take it over.
    pub lease_seconds: u64,
}

impl Default for DigestSettings {
    fn default() -> Self {
        Self {
            subject: String::new(),
            concurrency: 8,
            batch_size: 200,
            workers: 2,
            lease_seconds: 120,
        }
    }
}

#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AdminSettings {
    /// A bearer token for `/admin/api/*` from config, beside those made by
    /// `herald admin create-token`. Empty: only those.
    #[serde(serialize_with = "serialize_secret")]
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
        f.write_str("AdminSettings { api_token: [redacted] }")
    }
}

fn serialize_secret<S: serde::Serializer>(secret: &secrecy::SecretString, s: S) -> Result<S::Ok, S::Error> {
    use secrecy::ExposeSecret;
    s.serialize_str(secret.expose_secret())
}

impl Default for MailSettings {
    fn default() -> Self {
        Self {
            transport: MailTransport::File,
            outbox_dir: PathBuf::from("outbox"),
            from: "Herald <herald@localhost>".into(),
            reply_to: String::new(),
            max_attempts: 8,
            retry_base_seconds: 30,
            unsubscribe_mailto: String::new(),
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
            pool_size: 8,
            timeout_seconds: 30,
            rate_per_second: 0,
        }
    }
}

impl Default for SubscriberSettings {
    fn default() -> Self {
        Self {
            default_frequency: crate::domain::Frequency::Weekly,
            confirm_token_days: 7,
            confirm_resend_minutes: 5,
            rate_per_minute: 10,
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

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DatabaseSettings {
    /// `sqlite://herald.db` (relative to the config file) or `postgres://...`.
    pub url: String,
    pub max_connections: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ContentSettings {
    pub posts_dir: PathBuf,
    /// Folder of templates that override the built-in ones (same file names).
    pub templates_dir: Option<PathBuf>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeedSettings {
    /// Entries per feed.
    pub limit: u32,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScheduleSettings {
    /// IANA time zone the cron expressions are read in.
    pub timezone: String,
    /// Cron expression (with seconds) for re-reading the posts folder; new posts then go
    /// out to `immediate` subscribers.
    pub sync: String,
    /// When the remote sources (`[[sources]]`) are polled.
    pub sources: String,
    /// When the daily digest goes out.
    pub daily: String,
    /// When the weekly digest goes out.
    pub weekly: String,
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
            page_size: 10,
        }
    }
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            trust_forwarded_for: false,
            header_timeout_seconds: 10,
            body_timeout_seconds: 60,
            keep_alive_seconds: 5,
            max_connections: 512,
        }
    }
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: "sqlite://herald.db".into(),
            max_connections: 8,
        }
    }
}

impl Default for ContentSettings {
    fn default() -> Self {
        Self {
            posts_dir: PathBuf::from("content/posts"),
            templates_dir: None,
        }
    }
}

impl Default for FeedSettings {
    fn default() -> Self {
        Self { limit: 20 }
    }
}

impl Default for ScheduleSettings {
    fn default() -> Self {
        Self {
            timezone: "Europe/London".into(),
            sync: "0 */5 * * * *".into(),
            sources: "0 */15 * * * *".into(),
            daily: "0 0 8 * * *".into(),
            weekly: "0 0 8 * * Mon".into(),
        }
    }
}

impl Settings {
    /// Reads `path` (which must exist) and the environment, validates, and resolves paths.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        if !path.is_file() {
            bail!("config file {} not found", path.display());
        }
        let figment = Figment::from(Serialized::defaults(Settings::default()))
            .merge(Toml::file_exact(path))
            .merge(env_provider());
        Self::from_figment(figment, path)
    }

    fn from_figment(figment: Figment, path: &Path) -> anyhow::Result<Self> {
        let mut settings: Settings = figment
            .extract()
            .map_err(|e| anyhow::anyhow!(describe_figment_error(e)))
            .with_context(|| format!("Invalid configuration in {}", path.display()))?;
        settings.base_dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        settings
            .validate()
            .with_context(|| format!("Invalid configuration in {}", path.display()))?;
        Ok(settings)
    }

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
        if self.site.page_size == 0 || self.site.page_size > 500 {
            bail!("site.page_size must be between 1 and 500, not {}", self.site.page_size);
        }
        if self.feeds.limit == 0 || self.feeds.limit > 1000 {
            bail!("feeds.limit must be between 1 and 1000, not {}", self.feeds.limit);
        }
        if !(self.database.url.starts_with("sqlite:")
            || self.database.url.starts_with("postgres://")
            || self.database.url.starts_with("postgresql://"))
        {
            bail!("database.url must start with sqlite: or postgres://");
        }
        let server = &self.server;
        for (key, value) in [
            ("server.header_timeout_seconds", server.header_timeout_seconds),
            ("server.body_timeout_seconds", server.body_timeout_seconds),
            ("server.keep_alive_seconds", server.keep_alive_seconds),
            ("server.max_connections", u64::from(server.max_connections)),
        ] {
            if value == 0 {
                bail!("{key} must be at least 1");
            }
        }
        // A connection waiting for its next request is also waiting for that request's
        // headers, so the header clock runs during keep-alive too.
        if server.keep_alive_seconds > server.header_timeout_seconds {
            bail!(
                "server.keep_alive_seconds ({}) cannot be longer than server.header_timeout_seconds ({})",
                server.keep_alive_seconds,
                server.header_timeout_seconds
            );
        }
        if self.database.max_connections == 0 {
            bail!("database.max_connections must be at least 1");
        }
        self.mail.from.parse::<lettre::message::Mailbox>().map_err(|e| {
            anyhow::anyhow!(
                "mail.from: {:?} is not a mailbox like `Name <news@example.org>`: {e}",
                self.mail.from
            )
        })?;
        if !self.mail.reply_to.trim().is_empty() {
            self.mail
                .reply_to
                .parse::<lettre::message::Mailbox>()
                .map_err(|e| anyhow::anyhow!("mail.reply_to: {:?} is not an address: {e}", self.mail.reply_to))?;
        }
        if self.mail.max_attempts == 0 {
            bail!("mail.max_attempts must be at least 1");
        }
        if self.mail.transport == MailTransport::Smtp && self.mail.smtp.host.trim().is_empty() {
            bail!("mail.smtp.host must be set when mail.transport = \"smtp\"");
        }
        if self.mail.smtp.pool_size == 0 {
            bail!("mail.smtp.pool_size must be at least 1");
        }
        for (i, source) in self.sources.iter().enumerate() {
            if !matches!(source.url.scheme(), "http" | "https") {
                bail!("sources[{i}].url must be an http or https URL, not {}", source.url);
            }
        }
        if self.digest.concurrency == 0 || self.digest.batch_size == 0 || self.digest.workers == 0 {
            bail!("digest.concurrency, digest.batch_size and digest.workers must be at least 1");
        }
        if self.digest.lease_seconds < 10 {
            bail!("digest.lease_seconds must be at least 10");
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
        if self.subscribers.confirm_token_days == 0 {
            bail!("subscribers.confirm_token_days must be at least 1");
        }
        if self.subscribers.rate_per_minute == 0 {
            bail!("subscribers.rate_per_minute must be at least 1");
        }
        for (key, cron) in [
            ("schedule.sync", &self.schedule.sync),
            ("schedule.sources", &self.schedule.sources),
            ("schedule.daily", &self.schedule.daily),
            ("schedule.weekly", &self.schedule.weekly),
        ] {
            crate::schedule::parse_cron(key, cron)?;
        }
        self.schedule
            .timezone
            .parse::<chrono_tz::Tz>()
            .map_err(|_| anyhow::anyhow!("schedule.timezone: unknown time zone {:?}", self.schedule.timezone))?;
        Ok(())
    }

    /// The posts folder, resolved against the config file's folder.
    pub fn posts_dir(&self) -> PathBuf {
        self.resolve(&self.content.posts_dir)
    }

    pub fn outbox_dir(&self) -> PathBuf {
        self.resolve(&self.mail.outbox_dir)
    }

    pub fn templates_dir(&self) -> Option<PathBuf> {
        self.content.templates_dir.as_ref().map(|p| self.resolve(p))
    }

    /// The database URL with a relative SQLite path resolved against the config file's folder.
    pub fn database_url(&self) -> String {
        let url = &self.database.url;
        let Some(rest) = url.strip_prefix("sqlite://").or_else(|| url.strip_prefix("sqlite:")) else {
            return url.clone();
        };
        if rest.starts_with(':') || rest.starts_with('/') || rest.is_empty() {
            return url.clone();
        }
        let (path, query) = rest.split_once('?').map_or((rest, None), |(p, q)| (p, Some(q)));
        let resolved = self.resolve(Path::new(path));
        match query {
            Some(q) => format!("sqlite://{}?{q}", resolved.display()),
            None => format!("sqlite://{}", resolved.display()),
        }
    }

    /// Resolves a path from the config against the config file's folder.
    pub fn resolve(&self, path: &Path) -> PathBuf {
        if path.is_absolute() {
            path.to_path_buf()
        } else {
            self.base_dir.join(path)
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> anyhow::Result<Settings> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("config.toml");
        std::fs::write(&path, toml).unwrap();
        let figment = Figment::from(Serialized::defaults(Settings::default())).merge(Toml::file_exact(&path));
        Settings::from_figment(figment, &path)
    }

    #[test]
    fn an_empty_file_gives_working_defaults() {
        let s = load_str("").unwrap();
        assert_eq!(s.feeds.limit, 20);
        assert_eq!(s.server.listen.port(), 8080);
        assert!(s.database_url().starts_with("sqlite://"));
        assert!(s.database_url().ends_with("herald.db"));
    }

    #[test]
    fn unknown_keys_are_refused_with_their_name() {
        let err = format!("{:#}", load_str("[site]\ntitel = \"x\"\n").unwrap_err());
        assert!(err.contains("titel"), "{err}");
    }

    #[test]
    fn invalid_values_name_their_key() {
        let err = format!("{:#}", load_str("[server]\nlisten = \"nowhere\"\n").unwrap_err());
        assert!(err.contains("server.listen"), "{err}");
        let err = format!("{:#}", load_str("[feeds]\nlimit = 0\n").unwrap_err());
        assert!(err.contains("feeds.limit"), "{err}");
        let err = format!(
            "{:#}",
            load_str("[schedule]\ntimezone = \"Mars/Olympus\"\n").unwrap_err()
        );
        assert!(err.contains("schedule.timezone"), "{err}");
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
            s.database_url(),
            format!("sqlite://{}", dir.path().join("herald.db").display())
        );
    }
}
