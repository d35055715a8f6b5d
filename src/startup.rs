//! Start-up: builds the state once (settings, pool, templates, cache) and runs the
//! web server and the scheduler side by side until shutdown.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::content::{self, SyncReport};
use crate::digest::render::EditionContent;
use crate::mail::{self, Composer, Mailer, outbox::Outbox};
use crate::schedule;
use crate::site::{Site, Templates};
use crate::store::Db;
use crate::web::{self, DocumentCache};

/// Everything a running Herald shares: built once at start-up.
pub struct App {
    pub settings: Settings,
    pub db: Db,
    pub site: Site,
    pub cache: DocumentCache,
    pub composer: Composer,
    pub outbox: Outbox,
    pub limits: web::Limits,
    pub mailer: Arc<dyn Mailer>,
    /// `[mail.smtp] rate_per_second` for digests, per instance.
    pub rate_limiter: Option<governor::DefaultDirectRateLimiter>,
    /// `[digest] concurrency` slots shared by this instance's delivery workers; a send holds
    /// one until its outcome is committed.
    pub send_slots: Arc<tokio::sync::Semaphore>,
    /// Records delivery outcomes as they complete.
    pub outcomes: crate::digest::send::OutcomeWriter,
    /// Wakes the delivery worker when an edition is created.
    pub delivery_wake: Notify,
    /// Wakes the subscription request worker when the form stores a request.
    pub subscribe_wake: Notify,
    pub metrics: crate::metrics::Metrics,
    /// Verified against when a login names no account, so both cost the same.
    pub dummy_hash: String,
    /// Bounds on login work, and the device cookies that let a known admin past them.
    pub logins: crate::auth::Logins,
    /// Whether the database can still store things (`/readyz`).
    pub readiness: crate::store::health::Readiness,
    /// HTTP client for remote sources.
    pub http: reqwest::Client,
    editions: Mutex<HashMap<i64, Arc<EditionContent>>>,
}

impl App {
    /// Connects, migrates and loads the templates.
    pub async fn start(settings: Settings) -> anyhow::Result<Arc<Self>> {
        let db = Db::connect(&settings).await?;
        let readiness = crate::store::health::Readiness::new(&db);
        db.migrate().await?;
        let templates = Arc::new(Templates::load(settings.templates_dir().as_deref())?);
        let site = Site::new(settings.clone(), templates, &db).await?;
        let composer = Composer::new(&settings)?;
        let mailer = mail::mailer_from_settings(&settings)?;
        let outbox = Outbox::new(
            db.clone(),
            mailer.clone(),
            composer.from().email.clone(),
            settings.mail.max_attempts.get(),
            Duration::from_secs(settings.mail.retry_base_seconds),
        );
        let limits = web::Limits::new(&settings);
        let logins = crate::auth::Logins::new(&settings, &db).await?;
        let settings_rate = settings.mail.smtp.rate_per_second;
        let send_slots = Arc::new(tokio::sync::Semaphore::new(settings.digest.concurrency.get() as usize));
        let outcomes = crate::digest::send::OutcomeWriter::start(db.clone());
        Ok(Arc::new(Self {
            settings,
            db,
            site,
            cache: DocumentCache::default(),
            composer,
            outbox,
            limits,
            // A small burst (a tenth of a second's worth) keeps the rate even from the start.
            rate_limiter: NonZeroU32::new(settings_rate).map(|r| {
                let burst = NonZeroU32::new(r.get() / 10).unwrap_or(NonZeroU32::MIN);
                governor::RateLimiter::direct(governor::Quota::per_second(r).allow_burst(burst))
            }),
            mailer,
            send_slots,
            outcomes,
            delivery_wake: Notify::new(),
            subscribe_wake: Notify::new(),
            metrics: crate::metrics::Metrics::new(),
            http: content::remote::client()?,
            dummy_hash: tokio::task::spawn_blocking(|| crate::auth::hash_password("no such account")).await??,
            logins,
            readiness,
            editions: Mutex::new(HashMap::new()),
        }))
    }

    /// Polls every remote source (`[[sources]]`), imports what is new, and drops stale pages.
    pub async fn poll_sources(&self) -> anyhow::Result<Vec<content::remote::SourcePoll>> {
        if self.settings.sources.is_empty() {
            return Ok(Vec::new());
        }
        let work = async { Ok(content::remote::poll_all(&self.db, &self.http, &self.settings.sources).await) };
        let Some(outcomes) = crate::store::exclusively(&self.db, crate::store::locks::SOURCE_POLL, work).await? else {
            tracing::info!("another instance is polling the sources; skipped");
            return Ok(Vec::new());
        };
        for polled in &outcomes {
            crate::metrics::Metrics::count(&self.metrics.source_polls, polled.outcome.label(), 1);
        }
        self.cache.refresh(&self.db).await?;
        Ok(outcomes)
    }

    /// Asks the delivery worker to look for work now.
    pub fn wake_delivery(&self) {
        self.delivery_wake.notify_one();
    }

    /// An edition's posts and rendered variants, loaded once per process.
    pub async fn edition_content(&self, id: i64) -> anyhow::Result<Arc<EditionContent>> {
        if let Some(c) = self.editions.lock().ok().and_then(|m| m.get(&id).cloned()) {
            return Ok(c);
        }
        let content = Arc::new(EditionContent::load(self, id).await?);
        if let Ok(mut map) = self.editions.lock() {
            // Old editions are rarely sent again: keep the cache small.
            if map.len() >= 32 {
                map.clear();
            }
            map.insert(id, content.clone());
        }
        Ok(content)
    }

    /// Reads the posts folder into the store and drops stale rendered documents.
    /// Instances sharing a database take turns (an advisory lock on PostgreSQL): one that finds
    /// another syncing skips this round and reports nothing changed.
    pub async fn sync(&self) -> anyhow::Result<SyncReport> {
        let posts_dir = self.settings.posts_dir();
        let work = content::sync_posts(&self.db, &posts_dir, &self.settings.site.base_url);
        let report = match crate::store::exclusively(&self.db, crate::store::locks::CONTENT_SYNC, work).await? {
            Some(report) => report,
            None => {
                tracing::info!("another instance is syncing the posts; skipped");
                SyncReport::default()
            }
        };
        self.cache.refresh(&self.db).await?;
        Ok(report)
    }
}

/// Serves HTTP on `listener` and runs the scheduled jobs until `shutdown` is cancelled.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let scheduler = schedule::start(app.clone()).await?;
    let outbox = tokio::spawn(app.outbox.clone().run(shutdown.clone()));
    let requests = tokio::spawn(crate::subscribers::run_requests(app.clone(), shutdown.clone()));
    let mut delivery = tokio::task::JoinSet::new();
    for _ in 0..app.settings.digest.workers.get() {
        delivery.spawn(crate::digest::send::run(app.clone(), shutdown.clone()));
    }
    let address = listener.local_addr()?;
    tracing::info!(%address, base_url = %app.settings.site.base_url, "serving");
    let limits = web::server::ConnectionLimits::from_settings(&app.settings.server);
    let server = web::server::run(listener, web::router(app.clone()), limits, shutdown.clone());
    let result = server.await.context("The web server stopped");
    shutdown.cancel();
    scheduler.stop().await;
    // In-flight sends finish (their rows are then recorded), but not for ever: a batch still
    // out after this is left `sending` and another worker takes it over when its lease ends.
    let grace = Duration::from_secs(app.settings.digest.lease_seconds.min(60));
    if tokio::time::timeout(grace, async {
        let _ = outbox.await;
        let _ = requests.await;
        delivery.join_all().await;
    })
    .await
    .is_err()
    {
        tracing::warn!(
            ?grace,
            "in-flight sends did not finish in time; their lease will hand them over"
        );
    }
    app.db.close().await;
    result
}

/// Cancels `token` on Ctrl-C or SIGTERM.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!(error = %e, "cannot listen for SIGTERM");
                    let _ = ctrl_c.await;
                    token.cancel();
                    return;
                }
            };
            tokio::select! {
                _ = ctrl_c => {},
                _ = term.recv() => {},
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        token.cancel();
    });
}
