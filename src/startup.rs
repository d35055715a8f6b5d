//! Start-up: the one place that sees every layer below `web` and `cli`. It builds the
//! services from the settings (only those a command needs, through [`Parts`]; all of them
//! for `herald serve`, as [`App`]) and runs the workers and the scheduler beside the web
//! server until shutdown.

use std::future::Future;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::OnceCell;
use tokio_util::sync::CancellationToken;

use crate::auth::Auth;
use crate::bounces::webhooks::Webhooks;
use crate::bounces::{self, Bounces};
use crate::config::Settings;
use crate::content::{ContentSync, SyncReport, remote::SourcePoll};
use crate::digest::Digests;
use crate::digest::send::{self, DigestSender};
use crate::mail::{self, Composer, Mailer, RetryPolicy, outbox::Outbox};
use crate::metrics::Metrics;
use crate::schedule::{self, Jobs};
use crate::site::{DocumentCache, Site, Templates};
use crate::store::Db;
use crate::store::health::Readiness;
use crate::subscribers::Subscriptions;
use crate::websub::Announcer;

/// The parts of Herald, each built the first time a command asks for it: a command that
/// lists subscribers opens the database and nothing else; only one that checks a password
/// builds the login service.
pub struct Parts {
    pub settings: Arc<Settings>,
    /// Whether the database is opened for reading all of it again and again
    /// ([`Db::connect_for_bulk_reads`]).
    bulk_reads: bool,
    pub metrics: Arc<Metrics>,
    pub cache: Arc<DocumentCache>,
    db: OnceCell<Db>,
    site: OnceCell<Arc<Site>>,
    auth: OnceCell<Arc<Auth>>,
    composer: OnceLock<Arc<Composer>>,
    mailer: OnceLock<Arc<dyn Mailer>>,
    outbox: OnceCell<Outbox>,
    digests: OnceCell<Arc<Digests>>,
    sender: OnceCell<Arc<DigestSender>>,
    subscriptions: OnceCell<Arc<Subscriptions>>,
    content: OnceCell<Arc<ContentSync>>,
    jobs: OnceCell<Arc<Jobs>>,
    webhooks: OnceCell<Webhooks>,
    announcer: OnceCell<Arc<Announcer>>,
}

fn once<T: Clone>(cell: &OnceLock<T>, build: impl FnOnce() -> anyhow::Result<T>) -> anyhow::Result<T> {
    if let Some(built) = cell.get() {
        return Ok(built.clone());
    }
    let built = build()?;
    Ok(cell.get_or_init(|| built).clone())
}

async fn once_async<T: Clone, F: Future<Output = anyhow::Result<T>>>(
    cell: &OnceCell<T>,
    build: impl FnOnce() -> F,
) -> anyhow::Result<T> {
    Ok(cell.get_or_try_init(build).await?.clone())
}

impl Parts {
    pub fn new(settings: Settings) -> Self {
        Self {
            settings: Arc::new(settings),
            bulk_reads: false,
            metrics: Arc::new(Metrics::new()),
            cache: Arc::new(DocumentCache::default()),
            db: OnceCell::new(),
            site: OnceCell::new(),
            auth: OnceCell::new(),
            composer: OnceLock::new(),
            mailer: OnceLock::new(),
            outbox: OnceCell::new(),
            digests: OnceCell::new(),
            sender: OnceCell::new(),
            subscriptions: OnceCell::new(),
            content: OnceCell::new(),
            jobs: OnceCell::new(),
            webhooks: OnceCell::new(),
            announcer: OnceCell::new(),
        }
    }

    /// The parts of a process that reads the whole store over and over (`herald build`).
    pub fn for_bulk_reads(mut self) -> Self {
        self.bulk_reads = true;
        self
    }

    /// The database, connected and migrated.
    pub async fn db(&self) -> anyhow::Result<Db> {
        once_async(&self.db, || async {
            let db = if self.bulk_reads {
                Db::connect_for_bulk_reads(&self.settings).await?
            } else {
                Db::connect(&self.settings).await?
            };
            db.migrate().await?;
            Ok(db)
        })
        .await
    }

    /// Pages, feeds and the mail templates.
    pub async fn site(&self) -> anyhow::Result<Arc<Site>> {
        let db = self.db().await?;
        once_async(&self.site, || async {
            let templates = Arc::new(
                Templates::load(self.settings.templates_dir().as_deref())?.in_zone(self.settings.schedule.timezone),
            );
            Ok(Arc::new(Site::new((*self.settings).clone(), templates, &db).await?))
        })
        .await
    }

    pub async fn auth(&self) -> anyhow::Result<Arc<Auth>> {
        let db = self.db().await?;
        once_async(&self.auth, || async {
            Ok(Arc::new(Auth::new(&self.settings.admin, db).await?))
        })
        .await
    }

    /// The bounce policy ([`Bounces::record`], [`Bounces::reactivate`]).
    pub async fn bounces(&self) -> anyhow::Result<Bounces> {
        Ok(Bounces::new(self.db().await?, &self.settings.bounces))
    }

    /// The providers' bounce webhooks configured in `[bounces]`.
    pub async fn webhooks(&self) -> anyhow::Result<Webhooks> {
        let bounces = self.bounces().await?;
        once_async(&self.webhooks, || async {
            Webhooks::new(bounces, &self.settings.bounces)
        })
        .await
    }

    pub fn composer(&self) -> anyhow::Result<Arc<Composer>> {
        once(&self.composer, || Ok(Arc::new(Composer::new(&self.settings)?)))
    }

    /// The transport: `.eml` files in the outbox folder, or the SMTP relay.
    pub fn mailer(&self) -> anyhow::Result<Arc<dyn Mailer>> {
        once(&self.mailer, || mail::mailer_from_settings(&self.settings))
    }

    /// The transactional outbox (confirmation mail).
    pub async fn outbox(&self) -> anyhow::Result<Outbox> {
        let db = self.db().await?;
        once_async(&self.outbox, || async {
            let mail = &self.settings.mail;
            Ok(Outbox::new(
                db,
                self.mailer()?,
                self.composer()?,
                RetryPolicy::new(mail.max_attempts.get(), Duration::from_secs(mail.retry_base_seconds)),
            ))
        })
        .await
    }

    pub async fn digests(&self) -> anyhow::Result<Arc<Digests>> {
        let (db, site) = (self.db().await?, self.site().await?);
        once_async(&self.digests, || async {
            Ok(Arc::new(Digests::new(db, site, self.composer()?)))
        })
        .await
    }

    /// The digest delivery workers' shared state (starts the outcome writer).
    pub async fn sender(&self) -> anyhow::Result<Arc<DigestSender>> {
        let (db, digests) = (self.db().await?, self.digests().await?);
        once_async(&self.sender, || async {
            Ok(Arc::new(DigestSender::new(
                &self.settings,
                db,
                digests,
                self.mailer()?,
                self.metrics.clone(),
            )))
        })
        .await
    }

    pub async fn subscriptions(&self) -> anyhow::Result<Arc<Subscriptions>> {
        let (db, site, outbox) = (self.db().await?, self.site().await?, self.outbox().await?);
        once_async(&self.subscriptions, || async {
            Ok(Arc::new(Subscriptions::new(
                db,
                site,
                self.composer()?,
                outbox,
                &self.settings.subscribers,
            )))
        })
        .await
    }

    pub async fn content(&self) -> anyhow::Result<Arc<ContentSync>> {
        let db = self.db().await?;
        once_async(&self.content, || async {
            Ok(Arc::new(ContentSync::new(&self.settings, db)?))
        })
        .await
    }

    /// Tells the WebSub hubs about new posts.
    pub async fn announcer(&self) -> anyhow::Result<Arc<Announcer>> {
        let (db, site) = (self.db().await?, self.site().await?);
        once_async(&self.announcer, || async {
            Ok(Arc::new(Announcer::new(&self.settings, db, site)?))
        })
        .await
    }

    /// Sync, poll, compose and send now.
    pub async fn jobs(&self) -> anyhow::Result<Arc<Jobs>> {
        let (db, content, digests) = (self.db().await?, self.content().await?, self.digests().await?);
        let announcer = self.announcer().await?;
        once_async(&self.jobs, || async {
            Ok(Arc::new(Jobs::new(
                &self.settings,
                db,
                content,
                self.cache.clone(),
                digests,
                self.metrics.clone(),
                announcer,
            )))
        })
        .await
    }
}

/// Everything `herald serve` runs, built once at start-up.
pub struct App {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub site: Arc<Site>,
    pub cache: Arc<DocumentCache>,
    pub metrics: Arc<Metrics>,
    /// Whether the database can still store things (`/readyz`).
    pub readiness: Arc<Readiness>,
    pub mailer: Arc<dyn Mailer>,
    pub outbox: Outbox,
    pub auth: Arc<Auth>,
    pub subscriptions: Arc<Subscriptions>,
    pub digests: Arc<Digests>,
    pub sender: Arc<DigestSender>,
    pub jobs: Arc<Jobs>,
    pub announcer: Arc<Announcer>,
    pub bounces: Bounces,
    pub webhooks: Webhooks,
    pub composer: Arc<Composer>,
}

impl App {
    /// Connects, migrates, loads the templates and builds every service.
    pub async fn start(settings: Settings) -> anyhow::Result<Arc<Self>> {
        Self::build(Parts::new(settings)).await
    }

    /// Builds what `parts` has not built yet.
    pub async fn build(parts: Parts) -> anyhow::Result<Arc<Self>> {
        let db = parts.db().await?;
        Ok(Arc::new(Self {
            readiness: Arc::new(Readiness::new(&db)),
            site: parts.site().await?,
            mailer: parts.mailer()?,
            outbox: parts.outbox().await?,
            auth: parts.auth().await?,
            subscriptions: parts.subscriptions().await?,
            digests: parts.digests().await?,
            sender: parts.sender().await?,
            jobs: parts.jobs().await?,
            announcer: parts.announcer().await?,
            bounces: parts.bounces().await?,
            webhooks: parts.webhooks().await?,
            composer: parts.composer()?,
            cache: parts.cache.clone(),
            metrics: parts.metrics.clone(),
            settings: parts.settings.clone(),
            db,
        }))
    }

    /// Reads the posts folder into the store and drops stale rendered documents.
    pub async fn sync(&self) -> anyhow::Result<SyncReport> {
        self.jobs.sync().await
    }

    /// Polls every remote source (`[[sources]]`), imports what is new, and drops stale pages.
    pub async fn poll_sources(&self) -> anyhow::Result<Vec<SourcePoll>> {
        self.jobs.poll_sources().await
    }
}

/// Runs the scheduler and the workers (outbox, subscription requests, digest delivery)
/// until `shutdown` is cancelled, then `server` (which should stop on the same token), and
/// waits a while for sends in flight.
pub async fn run<S>(app: Arc<App>, server: S, shutdown: CancellationToken) -> anyhow::Result<()>
where
    S: Future<Output = anyhow::Result<()>>,
{
    let scheduler = schedule::start(app.jobs.clone()).await?;
    let outbox = tokio::spawn(app.outbox.clone().run(shutdown.clone()));
    let requests = tokio::spawn(app.subscriptions.clone().run(shutdown.clone()));
    tokio::spawn(app.announcer.clone().run(shutdown.clone()));
    if let Some(mailbox) = &app.settings.bounces.imap {
        tokio::spawn(bounces::reports::poll_until(
            app.bounces.clone(),
            app.composer.clone(),
            mailbox.clone(),
            shutdown.clone(),
        ));
    }
    let mut delivery = tokio::task::JoinSet::new();
    for _ in 0..app.settings.digest.workers.get() {
        delivery.spawn(send::run(app.sender.clone(), shutdown.clone()));
    }
    let result = server.await;
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
