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
    /// Cron expression (with seconds) for re-reading the posts folder.
    pub sync: String,
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

    /// Settings from the defaults and the environment alone, as if the config file were empty.
    pub fn from_env_only(base_dir: &Path) -> anyhow::Result<Self> {
        let figment = Figment::from(Serialized::defaults(Settings::default())).merge(env_provider());
        Self::from_figment(figment, &base_dir.join("config.toml"))
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
        if self.database.max_connections == 0 {
            bail!("database.max_connections must be at least 1");
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
