//! Scheduled work inside `herald serve`, and the operations it shares with the CLI, the
//! console and the API ([`Jobs`]: sync, poll, compose what is due, send now).
//! tokio-cron-scheduler is only a ticker: each job is a one-line call into those operations.
//! Uses `domain`, `config`, `store`, `content`, `site` (the document cache), `digest` and
//! `websub` (woken after a sync).
//!
//! Digest times are not tokio-cron-scheduler jobs: it fixes a job's UTC offset when the job
//! is created, so a daily 08:00 would drift by an hour after a daylight-saving change. A
//! ticker instead asks, every few seconds, which digest time (`[schedule] daily`, `weekly`,
//! `monthly`, read in `[schedule] timezone` at that moment) last passed, and composes that
//! period's edition if no instance has yet. The same check on start-up is the catch-up: an edition
//! that came due while Herald was down goes out once, however many instances or restarts.

use std::sync::Arc;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use croner::Cron;
use tokio_cron_scheduler::{Job, JobScheduler};

use crate::config::{CronSchedule, ScheduleSettings, Settings, parse_cron};
use crate::content::{ContentSync, SyncReport, remote::SourcePoll};
use crate::digest::{self, Digests, Trigger};
use crate::domain::Frequency;
use crate::metrics::Metrics;
use crate::site::DocumentCache;
use crate::store::{self, Db, editions::Edition};
use crate::websub::Announcer;

/// Publishing work: posts in, the site's documents refreshed, editions composed.
pub struct Jobs {
    db: Db,
    content: Arc<ContentSync>,
    cache: Arc<DocumentCache>,
    digests: Arc<Digests>,
    metrics: Arc<Metrics>,
    announcer: Arc<Announcer>,
    settings: ScheduleSettings,
}

/// How often the digest ticker looks at the clock.
const TICK: &str = "*/5 * * * * *";

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

/// The digest times of `[schedule]`.
fn digest_crons(s: &ScheduleSettings) -> [(Frequency, &Cron); 3] {
    [
        (Frequency::Daily, s.daily.cron()),
        (Frequency::Weekly, s.weekly.cron()),
        (Frequency::Monthly, s.monthly.cron()),
    ]
}

/// The last time `cron` fired at or before `now`, on the wall clock of `tz`.
pub fn last_due(cron: &Cron, tz: Tz, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
    cron.find_previous_occurrence(&now.with_timezone(&tz), true)
        .ok()
        .map(|d| d.with_timezone(&Utc))
}

fn period_meta_key(frequency: Frequency) -> String {
    format!("schedule.{frequency}.period")
}

/// A send an admin asks for (`herald send`, the console's "Send now", the API).
#[derive(Debug, Clone, Copy, Default)]
pub struct SendRequest {
    /// One frequency, or every one.
    pub frequency: Option<Frequency>,
    /// An extra daily or weekly edition now, even though this period's has gone out or its
    /// time has not come.
    pub force: bool,
    /// Also archive posts dated from then.
    pub since: Option<DateTime<Utc>>,
}

impl SendRequest {
    fn frequencies(&self) -> Vec<Frequency> {
        match self.frequency {
            Some(f) => vec![f],
            None => Frequency::ALL.to_vec(),
        }
    }
}

/// What a send would create for one frequency.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PlannedSend {
    pub frequency: Frequency,
    /// New posts waiting for this frequency.
    pub posts: Vec<i64>,
    /// Editions the send would create (one per post for immediate; 0 or 1 otherwise).
    pub editions: usize,
    /// Confirmed subscribers of the frequency: each edition goes to those whose topics match.
    pub recipients: i64,
    /// Daily and weekly: why no edition would go out without `force`.
    pub held_back: Option<String>,
}

impl Jobs {
    pub fn new(
        settings: &Settings,
        db: Db,
        content: Arc<ContentSync>,
        cache: Arc<DocumentCache>,
        digests: Arc<Digests>,
        metrics: Arc<Metrics>,
        announcer: Arc<Announcer>,
    ) -> Self {
        Self {
            db,
            content,
            cache,
            digests,
            metrics,
            announcer,
            settings: settings.schedule.clone(),
        }
    }

    /// An edition for each post `immediate` subscribers have not had yet.
    pub async fn compose_immediate(&self) -> anyhow::Result<Vec<Edition>> {
        self.digests
            .compose(Frequency::Immediate, Trigger::NewPosts, None)
            .await
    }

    /// Reads the posts folder into the store, drops stale rendered documents, and has the
    /// WebSub hubs told about new posts (in the background).
    pub async fn sync(&self) -> anyhow::Result<SyncReport> {
        let report = self.content.sync().await?;
        self.cache.refresh(&self.db).await?;
        self.announcer.wake();
        Ok(report)
    }

    /// Polls every remote source (`[[sources]]`), imports what is new, and drops stale pages.
    pub async fn poll_sources(&self) -> anyhow::Result<Vec<SourcePoll>> {
        if !self.content.has_sources() {
            return Ok(Vec::new());
        }
        let polled = self.content.poll_sources().await?;
        for one in &polled {
            Metrics::count(&self.metrics.source_polls, one.outcome.label(), 1);
        }
        self.cache.refresh(&self.db).await?;
        self.announcer.wake();
        Ok(polled)
    }

    /// Composes every digest edition whose time has come and that no instance has composed yet.
    /// Safe to call from any number of instances at once.
    pub async fn compose_due_editions(&self, now: DateTime<Utc>) -> anyhow::Result<Vec<Edition>> {
        self.compose_due(now, None, None).await
    }

    /// The period of `frequency` whose digest time last passed, and whether its edition has been
    /// composed already.
    async fn due_period(
        &self,
        frequency: Frequency,
        cron: &Cron,
        tz: Tz,
        now: DateTime<Utc>,
    ) -> anyhow::Result<Option<(String, bool)>> {
        let Some(due) = last_due(cron, tz, now) else {
            return Ok(None);
        };
        let period = digest::period_key(frequency, due, tz);
        // Periods of one frequency sort as text: 2026-11-23 < 2026-11-24, 2026-W48 < 2026-W49,
        // 2026-11 < 2026-12.
        let done = store::meta_get(&self.db, &period_meta_key(frequency))
            .await?
            .is_some_and(|done| done >= period);
        Ok(Some((period, done)))
    }

    async fn compose_due(
        &self,
        now: DateTime<Utc>,
        only: Option<Frequency>,
        since: Option<DateTime<Utc>>,
    ) -> anyhow::Result<Vec<Edition>> {
        let tz = self.settings.timezone;
        let mut created = Vec::new();
        for (frequency, cron) in digest_crons(&self.settings) {
            if only.is_some_and(|f| f != frequency) {
                continue;
            }
            let Some((period, false)) = self.due_period(frequency, cron, tz, now).await? else {
                continue;
            };
            created.extend(
                self.digests
                    .compose(frequency, Trigger::Scheduled(period.clone()), since)
                    .await?,
            );
            store::meta_set(&self.db, &period_meta_key(frequency), &period).await?;
        }
        Ok(created)
    }

    /// What [`Jobs::send_now`] would do, without doing it.
    pub async fn plan_send(&self, request: SendRequest) -> anyhow::Result<Vec<PlannedSend>> {
        let now = Utc::now();
        let tz = self.settings.timezone;
        let crons = digest_crons(&self.settings);
        let mut plans = Vec::new();
        for frequency in request.frequencies() {
            let plan = self.digests.plan(frequency, request.since).await?;
            let mut held_back = None;
            let mut editions = match frequency {
                Frequency::Immediate => plan.post_ids.len(),
                _ => usize::from(!plan.post_ids.is_empty()),
            };
            if frequency != Frequency::Immediate && !request.force && editions > 0 {
                let cron = &crons.iter().find(|(f, _)| *f == frequency).context("a digest time")?.1;
                match self.due_period(frequency, cron, tz, now).await? {
                    Some((_, false)) => {}
                    due => {
                        editions = 0;
                        let next = cron
                            .find_next_occurrence(&now.with_timezone(&tz), false)
                            .map(|d| d.format("%a %Y-%m-%d %H:%M %Z").to_string())
                            .unwrap_or_else(|_| "its next time".to_owned());
                        held_back = Some(match due {
                            Some((period, _)) => {
                                format!("this period's {frequency} edition ({period}) is done; the next is due {next}")
                            }
                            None => format!("the first {frequency} edition is due {next}"),
                        });
                    }
                }
            }
            plans.push(PlannedSend {
                frequency,
                posts: plan.post_ids,
                editions,
                recipients: plan.recipients,
                held_back,
            });
        }
        Ok(plans)
    }

    /// Creates the editions an admin's send asks for: every new post for `immediate`; for daily and
    /// weekly, the edition of the period whose time has come if it has not gone out yet, or with
    /// `force` an extra edition of the posts not yet mailed (`2026-11-25#2`). Running this from
    /// cron every hour mails a weekly subscriber once a week.
    pub async fn send_now(&self, request: SendRequest) -> anyhow::Result<Vec<Edition>> {
        let mut created = Vec::new();
        for frequency in request.frequencies() {
            if frequency == Frequency::Immediate || request.force {
                created.extend(self.digests.compose(frequency, Trigger::Manual, request.since).await?);
            } else {
                created.extend(self.compose_due(Utc::now(), Some(frequency), request.since).await?);
            }
        }
        Ok(created)
    }
}

/// Builds a job that runs on the schedule `cron` (of config key `key`).
fn job<F, Fut>(key: &str, cron: &CronSchedule, tz: Tz, run: F) -> anyhow::Result<Job>
where
    F: Fn() -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let run = Arc::new(run);
    Job::new_async_tz(cron.as_str(), tz, move |_id, _scheduler| {
        let run = run.clone();
        Box::pin(async move { run().await })
    })
    .map_err(|e| anyhow::anyhow!("{key}: {:?} cannot be scheduled: {e}", cron.as_str()))
}

fn log_failure<T>(result: anyhow::Result<T>, what: &str) -> Option<T> {
    match result {
        Ok(value) => Some(value),
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "{what} failed");
            None
        }
    }
}

/// A scheduled sync's failed posts, one log line each (a command prints them itself).
fn log_sync_failures(report: Option<SyncReport>) {
    for failure in report.iter().flat_map(|r| &r.failed) {
        tracing::warn!(%failure, "post not published");
    }
}

/// A scheduled poll's failed sources, one log line each (a command prints them itself).
fn log_poll_failures(polled: Option<Vec<SourcePoll>>) {
    for poll in polled.iter().flatten() {
        if let crate::content::remote::SourceOutcome::Failed(error) = &poll.outcome {
            tracing::warn!(source = %poll.url, %error, "source poll failed");
        }
    }
}

/// Starts the configured jobs, after catching up on digests that came due while Herald
/// was not running.
pub async fn start(jobs: Arc<Jobs>) -> anyhow::Result<Scheduler> {
    let tz = jobs.settings.timezone;
    log_failure(
        jobs.compose_due_editions(Utc::now()).await,
        "catch-up of scheduled editions",
    );
    let scheduler = JobScheduler::new().await.context("Failed to create the scheduler")?;

    let sync_jobs = jobs.clone();
    let sync = job("schedule.sync", &jobs.settings.sync, tz, move || {
        let jobs = sync_jobs.clone();
        async move {
            log_sync_failures(log_failure(jobs.sync().await, "scheduled sync"));
            // Each new post goes to `immediate` subscribers right after the sync that finds it.
            log_failure(jobs.compose_immediate().await, "immediate edition");
        }
    })?;
    scheduler.add(sync).await.context("Failed to add the sync job")?;

    if jobs.content.has_sources() {
        let sources_jobs = jobs.clone();
        let sources = job("schedule.sources", &jobs.settings.sources, tz, move || {
            let jobs = sources_jobs.clone();
            async move {
                log_poll_failures(log_failure(jobs.poll_sources().await, "source poll"));
                log_failure(jobs.compose_immediate().await, "immediate edition");
            }
        })?;
        scheduler.add(sources).await.context("Failed to add the sources job")?;
    }

    let tick_jobs = jobs.clone();
    let tick_cron = parse_cron("(digest ticker)", TICK)?;
    let tick = job("(digest ticker)", &tick_cron, Tz::UTC, move || {
        let jobs = tick_jobs.clone();
        async move {
            log_failure(jobs.compose_due_editions(Utc::now()).await, "scheduled edition");
        }
    })?;
    scheduler.add(tick).await.context("Failed to add the digest ticker")?;
    scheduler.start().await.context("Failed to start the scheduler")?;
    Ok(Scheduler { inner: scheduler })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    #[test]
    fn a_daily_time_stays_on_the_local_clock_across_daylight_saving() {
        let cron = parse_cron("schedule.daily", "0 0 8 * * *").unwrap();
        let cron = cron.cron();
        let tz: Tz = "Europe/London".parse().unwrap();
        // Before the clocks go back (BST, UTC+1) 08:00 is 07:00 UTC; after it (GMT) it is 08:00 UTC.
        let before = Utc.with_ymd_and_hms(2026, 10, 24, 12, 0, 0).unwrap();
        assert_eq!(
            last_due(cron, tz, before).unwrap(),
            Utc.with_ymd_and_hms(2026, 10, 24, 7, 0, 0).unwrap()
        );
        let after = Utc.with_ymd_and_hms(2026, 10, 26, 12, 0, 0).unwrap();
        assert_eq!(
            last_due(cron, tz, after).unwrap(),
            Utc.with_ymd_and_hms(2026, 10, 26, 8, 0, 0).unwrap()
        );
        // And in spring, forward again.
        let spring = Utc.with_ymd_and_hms(2027, 3, 29, 12, 0, 0).unwrap();
        assert_eq!(
            last_due(cron, tz, spring).unwrap(),
            Utc.with_ymd_and_hms(2027, 3, 29, 7, 0, 0).unwrap()
        );
    }

    #[test]
    fn monthly_times_fall_on_the_day_of_the_month_on_the_local_clock() {
        let cron = parse_cron("schedule.monthly", "0 0 8 1 * *").unwrap();
        let cron = cron.cron();
        let tz: Tz = "Europe/London".parse().unwrap();
        // 1 November is after the clocks went back (GMT); 1 October before (BST).
        let late_november = Utc.with_ymd_and_hms(2026, 11, 26, 12, 0, 0).unwrap();
        assert_eq!(
            last_due(cron, tz, late_november).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 1, 8, 0, 0).unwrap()
        );
        let early_october = Utc.with_ymd_and_hms(2026, 10, 1, 6, 59, 0).unwrap();
        assert_eq!(
            last_due(cron, tz, early_october).unwrap(),
            Utc.with_ymd_and_hms(2026, 9, 1, 7, 0, 0).unwrap()
        );
    }

    #[test]
    fn weekly_times_name_their_day() {
        let cron = parse_cron("schedule.weekly", "0 0 8 * * Mon").unwrap();
        let cron = cron.cron();
        let tz: Tz = "Europe/London".parse().unwrap();
        let wednesday = Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap();
        assert_eq!(
            last_due(cron, tz, wednesday).unwrap(),
            Utc.with_ymd_and_hms(2026, 11, 23, 8, 0, 0).unwrap()
        );
    }
}
