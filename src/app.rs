//! Start-up: builds the state once (settings, pool, templates, cache) and runs the
//! web server and the scheduler side by side until shutdown.

use std::sync::Arc;

use anyhow::Context;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Settings;
use crate::content::{self, SyncReport};
use crate::schedule;
use crate::site::Site;
use crate::store::Db;
use crate::web::{self, DocumentCache};

/// Everything a running Herald shares: built once at start-up.
pub struct App {
    pub settings: Settings,
    pub db: Db,
    pub site: Site,
    pub cache: DocumentCache,
}

impl App {
    /// Connects, migrates and loads the templates.
    pub async fn start(settings: Settings) -> anyhow::Result<Arc<Self>> {
        let db = Db::connect(&settings).await?;
        db.migrate().await?;
        let site = Site::new(settings.clone(), &db).await?;
        Ok(Arc::new(Self {
            settings,
            db,
            site,
            cache: DocumentCache::default(),
        }))
    }

    /// Reads the posts folder into the store and drops stale rendered documents.
    pub async fn sync(&self) -> anyhow::Result<SyncReport> {
        let report = content::sync_posts(&self.db, &self.settings.posts_dir(), &self.settings.site.base_url).await?;
        self.cache.refresh(&self.db).await?;
        Ok(report)
    }
}

/// Serves HTTP on `listener` and runs the scheduled jobs until `shutdown` is cancelled.
pub async fn serve(app: Arc<App>, listener: TcpListener, shutdown: CancellationToken) -> anyhow::Result<()> {
    let scheduler = schedule::start(app.clone()).await?;
    let address = listener.local_addr()?;
    tracing::info!(%address, base_url = %app.settings.site.base_url, "serving");
    let server = axum::serve(listener, web::router(app.clone()).into_make_service())
        .with_graceful_shutdown(shutdown.clone().cancelled_owned());
    let result = server.await.context("The web server stopped");
    scheduler.stop().await;
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
