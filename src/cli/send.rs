//! `herald send`, `herald status` and `herald preview`.

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::digest::render::EditionContent;
use crate::digest::send::{self, DigestSender};
use crate::domain::{EditionStatus, EmailAddress, Frequency};
use crate::schedule::SendRequest;
use crate::startup::Parts;
use crate::store::{self, Db};
use anyhow::Context;

use super::args::StatusFormat;
use chrono::{DateTime, Utc};
use indicatif::{ProgressBar, ProgressStyle};

/// Composes what is due (or, forced, an extra edition) and delivers everything queued;
/// exits when the queue is empty.
pub async fn send(
    parts: &Parts,
    frequency: Option<Frequency>,
    force: bool,
    dry_run: bool,
    since: Option<DateTime<Utc>>,
) -> anyhow::Result<ExitCode> {
    let request = SendRequest {
        frequency,
        force,
        since,
    };
    let (db, jobs) = (parts.db().await?, parts.jobs().await?);
    if dry_run {
        for plan in jobs.plan_send(request).await? {
            let f = plan.frequency;
            if plan.posts.is_empty() {
                println!("{f}: nothing new");
                continue;
            }
            match &plan.held_back {
                Some(why) => println!(
                    "{f}: no edition now ({why}; --force sends one), {} post(s) waiting",
                    plan.posts.len()
                ),
                None => println!(
                    "{f}: {} edition(s), {} post(s), {} confirmed subscriber(s) (fewer if topics filter)",
                    plan.editions,
                    plan.posts.len(),
                    plan.recipients
                ),
            }
            for p in store::posts::find_by_ids(&db, &plan.posts).await? {
                println!("  - {} ({})", p.title, p.published_at.format("%Y-%m-%d"));
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    for edition in jobs.send_now(request).await? {
        println!(
            "edition {} ({} {}): \"{}\" to {} subscriber(s)",
            edition.id, edition.frequency, edition.period, edition.subject, edition.recipients
        );
    }
    // Canary samples whose wait is over are judged before counting what is left to send.
    store::pauses::judge_canaries(&db, parts.sender().await?.canary_limits(), Utc::now()).await?;
    let total = store::deliveries::claimable_left(&db).await? as u64;
    if total == 0 {
        println!("nothing to deliver");
        return held_back(&db).await;
    }
    let terminal = std::io::stderr().is_terminal();
    let bar = if terminal {
        ProgressBar::new(total)
    } else {
        ProgressBar::hidden()
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} {msg} {per_sec} eta {eta}")
            .expect("a valid progress template"),
    );
    let began = Instant::now();
    let totals = Arc::new(Totals::default());
    let mut workers = tokio::task::JoinSet::new();
    let sender = parts.sender().await?;
    for _ in 0..parts.settings.digest.workers.get() {
        workers.spawn(work(sender.clone(), db.clone(), totals.clone()));
    }
    let mut last_log = Instant::now();
    loop {
        let done = totals.done();
        bar.set_position(done);
        bar.set_message(format!(
            "sent {}, failed {}",
            totals.sent.load(Ordering::Relaxed),
            totals.failed.load(Ordering::Relaxed)
        ));
        if !terminal && last_log.elapsed() > Duration::from_secs(5) {
            last_log = Instant::now();
            tracing::info!(done, total, "delivering");
        }
        tokio::select! {
            finished = workers.join_next() => match finished {
                Some(result) => result??,
                None => break,
            },
            _ = tokio::time::sleep(Duration::from_millis(200)) => {}
        }
    }
    let (sent, failed, skipped) = (
        totals.sent.load(Ordering::Relaxed),
        totals.failed.load(Ordering::Relaxed),
        totals.skipped.load(Ordering::Relaxed),
    );
    bar.finish_and_clear();
    let secs = began.elapsed().as_secs_f64();
    println!(
        "sent {sent}, failed {failed}, skipped {skipped} in {secs:.1}s ({:.0} msg/s)",
        sent as f64 / secs.max(0.001)
    );
    let waiting = held_back(&db).await?;
    Ok(if failed > 0 { ExitCode::FAILURE } else { waiting })
}

/// Says which editions wait (for their canary's verdict, or paused for an admin); failure
/// when one is paused, so a cron job's owner hears of it.
async fn held_back(db: &Db) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    for e in store::editions::list(db, 100).await? {
        match e.status {
            EditionStatus::Paused => {
                code = ExitCode::FAILURE;
                println!(
                    "edition {} is paused: {}; `herald send --resume {}` sends the rest, the console can cancel it",
                    e.id,
                    e.paused_reason.as_deref().unwrap_or("no reason recorded"),
                    e.id
                );
            }
            EditionStatus::Canary => match e.canary_until {
                Some(until) => println!(
                    "edition {}: canary sample sent; the rest goes from {} if the sample is healthy \
                     (`herald serve`, or `herald send` run again then)",
                    e.id,
                    until.format("%Y-%m-%d %H:%M UTC")
                ),
                None => println!("edition {}: canary sample still being sent", e.id),
            },
            _ => {}
        }
    }
    Ok(code)
}

/// Resumes one paused edition, or (0) every one.
pub async fn resume(parts: &Parts, id: i64) -> anyhow::Result<()> {
    let db = parts.db().await?;
    let ids: Vec<i64> = if id == 0 {
        store::pauses::paused(&db)
            .await?
            .into_iter()
            .map(|(id, _)| id)
            .collect()
    } else {
        vec![id]
    };
    if ids.is_empty() {
        println!("no edition is paused");
    }
    for id in ids {
        if store::pauses::resume(&db, id, chrono::Utc::now()).await? {
            println!("edition {id} resumed");
        } else {
            return Err(super::output::UsageError(format!("--resume: edition {id} is not paused")).into());
        }
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    sent: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
}

impl Totals {
    fn done(&self) -> u64 {
        self.sent.load(Ordering::Relaxed) + self.failed.load(Ordering::Relaxed) + self.skipped.load(Ordering::Relaxed)
    }
}

/// One delivery worker: batches until the whole queue is final.
async fn work(sender: Arc<DigestSender>, db: Db, totals: Arc<Totals>) -> anyhow::Result<()> {
    loop {
        let report = send::deliver_batch(&sender).await?;
        totals.sent.fetch_add(report.sent as u64, Ordering::Relaxed);
        totals.failed.fetch_add(report.failed as u64, Ordering::Relaxed);
        totals.skipped.fetch_add(report.skipped as u64, Ordering::Relaxed);
        if report.claimed > 0 {
            continue;
        }
        // Deliveries of paused editions, and those waiting for a canary's verdict, are not
        // this run's to wait for.
        if store::deliveries::claimable_left(&db).await? == 0 {
            return Ok(());
        }
        // Left: deliveries waiting for a retry, or in another worker's hands (ours finish in
        // moments; a crashed one's come back when its lease runs out). Look again soon.
        let wait = match store::deliveries::next_due(&db).await? {
            Some(due) => (due - Utc::now()).to_std().unwrap_or(Duration::ZERO),
            None => Duration::ZERO,
        };
        tokio::time::sleep(wait.clamp(Duration::from_millis(20), Duration::from_millis(250))).await;
    }
}

/// Editions, the delivery queue, the outbox and the list, at a glance: a table, or one JSON
/// object with the keys `queue`, `outbox`, `subscribers` and `editions` (newest first).
pub async fn status(db: &Db, format: StatusFormat) -> anyhow::Result<ExitCode> {
    let report = StatusReport {
        queue: store::editions::counts(db, None).await?,
        outbox: by_status(store::outbox::counts(db).await?),
        subscribers: by_status(store::subscribers::count_by_status(db).await?),
        editions: {
            let mut editions = Vec::new();
            for e in store::editions::list(db, 20).await? {
                let c = store::editions::counts(db, Some(e.id)).await?;
                editions.push(EditionLine {
                    id: e.id,
                    frequency: e.frequency.to_string(),
                    period: e.period,
                    status: e.status.to_string(),
                    sent: c.sent,
                    failed: c.failed,
                    left: c.remaining(),
                    paused_reason: e.paused_reason,
                    canary_until: e.canary_until,
                    subject: e.subject,
                });
            }
            editions
        },
    };
    if format == StatusFormat::Json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    let q = &report.queue;
    println!(
        "queue: {} pending, {} sending, {} sent, {} failed, {} skipped",
        q.pending, q.sending, q.sent, q.failed, q.skipped
    );
    let counts = |map: &BTreeMap<String, i64>| {
        map.iter()
            .map(|(s, n)| format!("{n} {s}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!("outbox: {}", counts(&report.outbox));
    println!("subscribers: {}", counts(&report.subscribers));
    println!("editions (newest first):");
    let mut table = super::output::table([
        "id",
        "frequency",
        "period",
        "status",
        "sent",
        "failed",
        "left",
        "subject",
    ]);
    for e in &report.editions {
        table.add_row([
            format!("#{}", e.id),
            e.frequency.clone(),
            e.period.clone(),
            e.status.clone(),
            e.sent.to_string(),
            e.failed.to_string(),
            e.left.to_string(),
            e.subject.clone(),
        ]);
    }
    println!("{}", table.trim_fmt());
    for e in &report.editions {
        if let Some(reason) = &e.paused_reason {
            println!("edition #{} is paused: {reason}", e.id);
            println!(
                "  `herald send --resume {}` sends the rest; the console can also cancel it",
                e.id
            );
        }
        if let Some(until) = e.canary_until.filter(|_| e.status == "canary") {
            println!(
                "edition #{}: canary sample sent, the rest goes from {}",
                e.id,
                until.format("%Y-%m-%d %H:%M UTC")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `herald status --format json` prints.
#[derive(serde::Serialize)]
struct StatusReport {
    queue: store::editions::DeliveryCounts,
    outbox: BTreeMap<String, i64>,
    subscribers: BTreeMap<String, i64>,
    editions: Vec<EditionLine>,
}

/// One edition with its deliveries counted.
#[derive(serde::Serialize)]
struct EditionLine {
    id: i64,
    frequency: String,
    period: String,
    status: String,
    sent: i64,
    failed: i64,
    left: i64,
    /// Why it paused, while it is paused.
    paused_reason: Option<String>,
    /// When its canary wait ends.
    canary_until: Option<DateTime<Utc>>,
    subject: String,
}

fn by_status<S: std::fmt::Display>(rows: Vec<(S, i64)>) -> BTreeMap<String, i64> {
    rows.into_iter().map(|(s, n)| (s.to_string(), n)).collect()
}

/// Renders the next edition of a frequency to a file, or sends it to one address as a test.
pub async fn preview(
    parts: &Parts,
    frequency: Frequency,
    to: Option<&str>,
    out: Option<PathBuf>,
) -> anyhow::Result<ExitCode> {
    let (db, digests) = (parts.db().await?, parts.digests().await?);
    let mut plan = digests.plan(frequency, None).await?;
    if plan.post_ids.is_empty() {
        // Nothing new: preview with the latest posts so the layout can still be checked.
        plan.post_ids = store::posts::list_public(&db, Utc::now(), None, 3, 0)
            .await?
            .iter()
            .map(|p| p.id)
            .collect();
        println!(
            "no new posts for {frequency}; previewing the latest {} instead",
            plan.post_ids.len()
        );
    }
    if frequency == Frequency::Immediate {
        plan.post_ids.truncate(1);
    }
    let content = EditionContent::preview(digests.renderer(), frequency, &plan.post_ids).await?;
    match to {
        Some(address) => {
            let email = EmailAddress::parse(address)
                .map_err(|e| super::output::UsageError(format!("--to: {address:?} is not a usable address: {e}")))?;
            let (envelope, message) = content.test_message(digests.renderer(), &email)?;
            parts
                .mailer()?
                .send(&envelope, &message)
                .await
                .map_err(|e| anyhow::anyhow!("the test was not sent: {e}"))?;
            println!("test sent to {email}");
        }
        None => {
            let path = out.unwrap_or_else(|| PathBuf::from(format!("preview-{frequency}.html")));
            let html = content
                .web_html(digests.renderer())?
                .context("the preview has no posts")?;
            std::fs::write(&path, html).with_context(|| format!("Cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
