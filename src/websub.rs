//! WebSub publishing: when posts become public, each hub of `[feeds] websub_hubs` is told
//! which feeds changed (`hub.mode=publish`), so readers subscribed through a hub get them
//! in seconds rather than at their next poll. Uses `config`, `store` and `site` (feed URLs).
//!
//! Telling the hubs never holds up a sync: a sync only wakes [`Announcer::run`], which
//! claims the posts no instance has announced (`store::posts::claim_unannounced`, one
//! instance per post however many share the database) and pings in the background, each hub
//! on its own, so a hub that is down or stalls delays nobody else. The same loop looks every
//! few seconds for scheduled posts whose time has come. A ping that still fails after its
//! retries is logged and dropped: the hub's subscribers then get the post at their next poll.
//! Should an instance stop between its claim and its pings, those pings are lost the same way.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use url::Url;

use crate::config::Settings;
use crate::feeds::FeedFormat;
use crate::site::Site;
use crate::store::{self, Db};
use crate::worker::{self, Pass};

/// How long one ping may take, connection and answer included.
const PING_TIMEOUT: Duration = Duration::from_secs(10);
/// Tries per feed and hub: a hub's 5xx, 429, timeout or refused connection is tried again.
const ATTEMPTS: u32 = 3;
/// The wait before the second try; it doubles before each further one.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// Pings in flight at once per hub.
const PER_HUB: usize = 4;
/// How often the loop looks for scheduled posts that have become public.
const LOOK_EVERY: Duration = Duration::from_secs(5);

/// Tells the hubs about newly public posts.
pub struct Announcer {
    db: Db,
    site: Arc<Site>,
    hubs: Vec<Url>,
    http: reqwest::Client,
    wake: Notify,
}

impl Announcer {
    pub fn new(settings: &Settings, db: Db, site: Arc<Site>) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .timeout(PING_TIMEOUT)
            .connect_timeout(PING_TIMEOUT)
            // A publish ping is a POST: a redirect would turn it into a GET.
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(concat!("Herald/", env!("CARGO_PKG_VERSION"), " (WebSub publisher)"))
            .build()?;
        Ok(Self {
            db,
            site,
            hubs: settings.feeds.websub_hubs.clone(),
            http,
            wake: Notify::new(),
        })
    }

    /// Whether any hub is configured.
    pub fn enabled(&self) -> bool {
        !self.hubs.is_empty()
    }

    /// Asks the loop to look for new posts now (after a sync). Returns at once.
    pub fn wake(&self) {
        if self.enabled() {
            self.wake.notify_one();
        }
    }

    /// Looks for new posts when woken and every few seconds, until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        if !self.enabled() {
            return;
        }
        worker::run("WebSub announcement", &self.wake, &shutdown, || async {
            self.announce().await?;
            Ok(Pass::Idle(LOOK_EVERY))
        })
        .await;
    }

    /// Claims the newly public posts and starts pinging every hub for their feeds in the
    /// background. Returns the feed URLs it pings for (none when nothing is new).
    pub async fn announce(&self) -> anyhow::Result<Vec<String>> {
        if !self.enabled() {
            return Ok(Vec::new());
        }
        let ids = store::posts::claim_unannounced(&self.db, Utc::now()).await?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let tags = store::posts::tag_slugs(&self.db, &ids).await?;
        let feeds: Vec<String> = std::iter::once(None)
            .chain(tags.iter().map(|t| Some(t.as_str())))
            .flat_map(|tag| FeedFormat::ALL.map(|format| self.site.feed_url(tag, format)))
            .collect();
        tracing::info!(
            posts = ids.len(),
            feeds = feeds.len(),
            hubs = self.hubs.len(),
            "telling WebSub hubs"
        );
        let feeds_shared = Arc::new(feeds.clone());
        for hub in &self.hubs {
            let (http, hub, feeds) = (self.http.clone(), hub.clone(), feeds_shared.clone());
            tokio::spawn(async move {
                futures_util::stream::iter(feeds.iter())
                    .for_each_concurrent(PER_HUB, |feed| ping(&http, &hub, feed))
                    .await;
            });
        }
        Ok(feeds)
    }
}

/// The hub as logs name it: scheme, host and port, never a path, query or credentials that
/// may carry a token.
fn hub_origin(hub: &Url) -> String {
    hub.origin().ascii_serialization()
}

/// Tells `hub` that `feed` changed, trying again on a failure that may pass.
async fn ping(http: &reqwest::Client, hub: &Url, feed: &str) {
    let mut wait = FIRST_BACKOFF;
    for attempt in 1..=ATTEMPTS {
        let sent = http
            .post(hub.clone())
            .form(&[("hub.mode", "publish"), ("hub.url", feed)])
            .send()
            .await;
        let (error, retry) = match sent {
            Ok(r) if r.status().is_success() => {
                tracing::debug!(hub = hub_origin(hub), feed, "WebSub hub told");
                return;
            }
            Ok(r) => {
                let status = r.status();
                (
                    format!("the hub answered {status}"),
                    status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS,
                )
            }
            // Without the URL: the hub's may hold a token.
            Err(e) => (e.without_url().to_string(), true),
        };
        if !retry || attempt == ATTEMPTS {
            tracing::warn!(hub = hub_origin(hub), feed, attempt, %error, "WebSub ping failed");
            return;
        }
        tracing::info!(hub = hub_origin(hub), feed, attempt, %error, "WebSub ping failed; trying again");
        tokio::time::sleep(wait).await;
        wait *= 2;
    }
}
