//! Cron jobs inside `herald serve`. Each job is one call into the same operation
//! the CLI runs; the scheduler is only a ticker.

use std::sync::Arc;

use anyhow::Context;
use chrono_tz::Tz;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::app::App;
use crate::digest::{self, Trigger};
use crate::domain::Frequency;

/// The running scheduler.
pub struct Scheduler {
    inner: JobScheduler,
}

impl Scheduler {
    pub async fn stop(mut self) {
        if let Err(e) = self.inner.shutdown().await {
            tracing::warn!(error = %e, "scheduler did not stop cleanly");
        }
    }
}

/// Builds a job from the cron string at config key `key`; a bad string fails start-up.
fn job<F, Fut>(key: &str, cron: &str, tz: Tz, run: F) -> anyhow::Result<Job>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let run = Arc::new(run);
    Job::new_async_tz(cron, tz, move |_id, _scheduler| {
        let run = run.clone();
        Box::pin(async move { run().await })
    })
    .map_err(|e| anyhow::anyhow!("{e}"))
    .with_context(|| format!("{key}: {cron:?} is not a valid cron expression (six fields, seconds first)"))
}

fn log_failure<T>(result: anyhow::Result<T>, what: &str) {
    if let Err(e) = result {
        tracing::error!(error = format!("{e:#}"), "{what} failed");
    }
}

/// Starts the configured jobs.
pub async fn start(app: Arc<App>) -> anyhow::Result<Scheduler> {
    let settings = &app.settings.schedule;
    let tz: Tz = settings
        .timezone
        .parse()
        .map_err(|_| anyhow::anyhow!("schedule.timezone: unknown time zone {:?}", settings.timezone))?;
    let scheduler = JobScheduler::new().await.context("Failed to create the scheduler")?;

    let sync_app = app.clone();
    let sync = job("schedule.sync", &settings.sync, tz, move || {
        let app = sync_app.clone();
        async move {
            if let Err(e) = app.sync().await {
                tracing::error!(error = format!("{e:#}"), "scheduled sync failed");
            }
            // Each post goes to `immediate` subscribers shortly after it is published.
            log_failure(
                digest::compose(&app, Frequency::Immediate, Trigger::Scheduled, None).await,
                "immediate edition",
            );
        }
    })?;
    scheduler.add(sync).await.context("Failed to add the sync job")?;
    for (key, cron, frequency) in [
        ("schedule.daily", &settings.daily, Frequency::Daily),
        ("schedule.weekly", &settings.weekly, Frequency::Weekly),
    ] {
        let app = app.clone();
        let edition = job(key, cron, tz, move || {
            let app = app.clone();
            async move {
                log_failure(
                    digest::compose(&app, frequency, Trigger::Scheduled, None).await,
                    "scheduled edition",
                );
            }
        })?;
        scheduler
            .add(edition)
            .await
            .with_context(|| format!("Failed to add the {key} job"))?;
    }
    scheduler.start().await.context("Failed to start the scheduler")?;
    Ok(Scheduler { inner: scheduler })
}
