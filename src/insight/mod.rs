//! Insight without tracking: how the list grows and shrinks, where subscribers come from,
//! and what each edition's mail came to, from what Herald keeps anyway. The console draws
//! it as SVG charts ([`charts`]); the API returns the same [`Report`] as JSON.
//! Uses `store` and `domain`.

pub mod charts;

use std::collections::{BTreeMap, HashMap};

use anyhow::bail;
use chrono::{DateTime, Datelike, Days, NaiveDate, Utc};
use serde::Serialize;

use crate::config::TrackingSettings;
use crate::domain::{Frequency, SubscriberSource, SubscriberStatus};
use crate::store::{self, Db};

/// The days a report covers unless asked otherwise.
pub const DEFAULT_DAYS: u32 = 90;
/// Longer reports than this are counted by week rather than by day.
const MAX_DAILY_DAYS: u32 = 120;
/// The longest report: two years.
pub const MAX_DAYS: u32 = 731;
/// How many of the latest editions a report describes.
pub const EDITIONS: u32 = 12;

/// How a report's periods are counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Bucket {
    Day,
    Week,
}

/// One day or week of the list's life: who joined and left in it, and how many were
/// confirmed at its end.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Period {
    /// `2026-11-23` for a day, `2026-W48` for an ISO week.
    pub label: String,
    pub start: NaiveDate,
    /// Confirmed subscribers at the end of the period (or now, for the current one).
    pub confirmed: i64,
    pub joined: i64,
    pub unsubscribed: i64,
    pub bounced: i64,
    pub complained: i64,
}

/// One edition and what its mail came to.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct EditionOutcome {
    pub id: i64,
    pub subject: String,
    pub frequency: Frequency,
    pub period: String,
    pub created_at: DateTime<Utc>,
    /// Messages the relay accepted.
    pub sent: i64,
    pub failed: i64,
    /// Recipients reported bouncing (hard or soft) for this edition.
    pub bounced: i64,
    /// Recipients who reported it as spam.
    pub complained: i64,
    /// Recipients for whom this was the last edition before they unsubscribed.
    pub unsubscribed_after: i64,
    /// Clicks on its tracked links (`[tracking] clicks`), and the readers who clicked
    /// (none are known when clicks are anonymous).
    pub clicks: i64,
    pub clickers: i64,
    /// The counts above as percentages of `sent`.
    pub rates: Rates,
}

/// Percentages of an edition's messages sent, to one decimal place.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Rates {
    pub failed: f64,
    pub bounced: f64,
    pub complained: f64,
    pub unsubscribed_after: f64,
    /// Readers who clicked a link.
    pub clicked: f64,
}

/// `n` as a percentage of `of`, to one decimal place; 0 of nothing is 0.
pub fn percent(n: i64, of: i64) -> f64 {
    if of == 0 {
        0.0
    } else {
        (n as f64 * 1000.0 / of as f64).round() / 10.0
    }
}

/// How many subscribers came by one way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SourceLine {
    pub source: SubscriberSource,
    /// Confirmed subscribers now.
    pub confirmed: i64,
    /// Everyone with this source, whatever their status.
    pub total: i64,
    /// Confirmed within the report's days.
    pub joined: i64,
}

/// Everything the console's insight page shows.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    /// The first and last day covered (UTC), inclusive.
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub days: u32,
    pub bucket: Bucket,
    /// What is recorded of clicks: `off`, `anonymous` (counted, no reader) or `named`.
    pub tracking: &'static str,
    /// Confirmed subscribers now.
    pub confirmed: i64,
    /// Confirmations within the report's days.
    pub joined: i64,
    /// Confirmed subscribers who left within them (unsubscribed, bounced, complained).
    pub left: i64,
    pub growth: Vec<Period>,
    /// The latest editions, oldest first.
    pub editions: Vec<EditionOutcome>,
    pub sources: Vec<SourceLine>,
}

/// Checks a report length asked for in a query or on the command line.
pub fn check_days(days: u32) -> anyhow::Result<u32> {
    if !(7..=MAX_DAYS).contains(&days) {
        bail!("days must be from 7 to {MAX_DAYS}, not {days}");
    }
    Ok(days)
}

/// The report for the `days` days up to and including `now`'s.
pub async fn report(db: &Db, tracking: &TrackingSettings, now: DateTime<Utc>, days: u32) -> anyhow::Result<Report> {
    let days = check_days(days)?;
    let to = now.date_naive();
    let from = to - Days::new(u64::from(days - 1));
    let since = from.and_hms_opt(0, 0, 0).expect("midnight exists").and_utc();

    let baseline = store::insight::confirmed_at(db, since).await?;
    let joined = store::insight::joined_since(db, since).await?;
    let left = store::insight::left_since(db, since).await?;
    let bucket = if days > MAX_DAILY_DAYS {
        Bucket::Week
    } else {
        Bucket::Day
    };
    let growth = periods(from, to, bucket, baseline, &joined, &left);

    let mut sources: Vec<SourceLine> = SubscriberSource::ALL
        .iter()
        .map(|s| SourceLine {
            source: *s,
            confirmed: 0,
            total: 0,
            joined: 0,
        })
        .collect();
    let line = |sources: &[SourceLine], source: SubscriberSource| -> usize {
        sources
            .iter()
            .position(|l| l.source == source)
            .expect("every source has a line")
    };
    for (source, status, n) in store::insight::by_source(db).await? {
        let i = line(&sources, source);
        sources[i].total += n;
        if status == SubscriberStatus::Confirmed {
            sources[i].confirmed += n;
        }
    }
    for j in &joined {
        let i = line(&sources, j.source);
        sources[i].joined += j.count;
    }
    let confirmed = sources.iter().map(|s| s.confirmed).sum();

    let mut latest = store::editions::list(db, EDITIONS).await?;
    latest.reverse();
    let ids: Vec<i64> = latest.iter().map(|e| e.id).collect();
    let oldest = latest.iter().map(|e| e.created_at).min().unwrap_or(now);
    let outcomes = store::insight::outcomes(db, &ids, oldest).await?;
    let clicks: BTreeMap<i64, (i64, i64)> = store::clicks::per_edition(db, &ids)
        .await?
        .into_iter()
        .map(|c| (c.edition_id, (c.clicks, c.unique_clickers)))
        .collect();
    let editions = latest
        .into_iter()
        .map(|e| {
            let o = outcomes.get(&e.id).cloned().unwrap_or_default();
            let (clicks, clickers) = clicks.get(&e.id).copied().unwrap_or_default();
            EditionOutcome {
                id: e.id,
                subject: e.subject,
                frequency: e.frequency,
                period: e.period,
                created_at: e.created_at,
                sent: o.sent,
                failed: o.failed,
                bounced: o.bounced,
                complained: o.complained,
                unsubscribed_after: o.unsubscribed_after,
                clicks,
                clickers,
                rates: Rates {
                    clicked: percent(clickers, o.sent),
                    failed: percent(o.failed, o.sent),
                    bounced: percent(o.bounced, o.sent),
                    complained: percent(o.complained, o.sent),
                    unsubscribed_after: percent(o.unsubscribed_after, o.sent),
                },
            }
        })
        .collect();

    Ok(Report {
        from,
        to,
        days,
        bucket,
        tracking: match (tracking.clicks, tracking.anonymous) {
            (false, _) => "off",
            (true, true) => "anonymous",
            (true, false) => "named",
        },
        confirmed,
        joined: growth.iter().map(|p| p.joined).sum(),
        left: growth.iter().map(|p| p.unsubscribed + p.bounced + p.complained).sum(),
        growth,
        editions,
        sources,
    })
}

/// The label and first day of the period `day` falls in.
fn period_of(day: NaiveDate, bucket: Bucket) -> (String, NaiveDate) {
    match bucket {
        Bucket::Day => (day.format("%Y-%m-%d").to_string(), day),
        Bucket::Week => {
            let week = day.iso_week();
            let monday = day - Days::new(u64::from(day.weekday().num_days_from_monday()));
            (format!("{}-W{:02}", week.year(), week.week()), monday)
        }
    }
}

/// Walks the days from `from` to `to`, carrying the confirmed count from `baseline`, and
/// groups them into periods.
fn periods(
    from: NaiveDate,
    to: NaiveDate,
    bucket: Bucket,
    baseline: i64,
    joined: &[store::insight::Joined],
    left: &[store::insight::Left],
) -> Vec<Period> {
    let mut joins: BTreeMap<NaiveDate, i64> = BTreeMap::new();
    for j in joined {
        *joins.entry(j.day).or_default() += j.count;
    }
    let mut leaves: HashMap<(NaiveDate, SubscriberStatus), i64> = HashMap::new();
    for l in left.iter().filter(|l| l.were_confirmed) {
        *leaves.entry((l.day, l.status)).or_default() += l.count;
    }
    let mut out: Vec<Period> = Vec::new();
    let mut confirmed = baseline;
    let mut day = from;
    while day <= to {
        let get = |status| leaves.get(&(day, status)).copied().unwrap_or(0);
        let (joined, unsubscribed, bounced, complained) = (
            joins.get(&day).copied().unwrap_or(0),
            get(SubscriberStatus::Unsubscribed),
            get(SubscriberStatus::Bounced),
            get(SubscriberStatus::Complained),
        );
        confirmed += joined - unsubscribed - bounced - complained;
        let (label, start) = period_of(day, bucket);
        match out.last_mut() {
            Some(p) if p.label == label => {
                p.confirmed = confirmed;
                p.joined += joined;
                p.unsubscribed += unsubscribed;
                p.bounced += bounced;
                p.complained += complained;
            }
            _ => out.push(Period {
                label,
                start,
                confirmed,
                joined,
                unsubscribed,
                bounced,
                complained,
            }),
        }
        day = day.succ_opt().expect("a day after");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use store::insight::{Joined, Left};

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn days_carry_the_confirmed_count_and_pending_departures_do_not_count() {
        let joined = [
            Joined {
                day: d("2026-11-02"),
                source: SubscriberSource::Form,
                count: 3,
            },
            Joined {
                day: d("2026-11-02"),
                source: SubscriberSource::Import,
                count: 10,
            },
            Joined {
                day: d("2026-11-04"),
                source: SubscriberSource::Form,
                count: 1,
            },
        ];
        let left = [
            Left {
                day: d("2026-11-03"),
                status: SubscriberStatus::Unsubscribed,
                were_confirmed: true,
                count: 2,
            },
            Left {
                day: d("2026-11-03"),
                status: SubscriberStatus::Unsubscribed,
                were_confirmed: false,
                count: 5,
            },
            Left {
                day: d("2026-11-04"),
                status: SubscriberStatus::Bounced,
                were_confirmed: true,
                count: 1,
            },
        ];
        let p = periods(d("2026-11-01"), d("2026-11-04"), Bucket::Day, 100, &joined, &left);
        let confirmed: Vec<i64> = p.iter().map(|p| p.confirmed).collect();
        assert_eq!(confirmed, [100, 113, 111, 111]);
        assert_eq!(
            p[2].unsubscribed, 2,
            "a pending request that is dropped never was a subscriber"
        );
        assert_eq!((p[3].joined, p[3].bounced), (1, 1));
        assert_eq!(p[0].label, "2026-11-01");
    }

    #[test]
    fn weeks_are_iso_weeks_ending_with_their_last_count() {
        let joined = [
            Joined {
                day: d("2026-11-01"),
                source: SubscriberSource::Api,
                count: 1,
            }, // Sunday, W44
            Joined {
                day: d("2026-11-02"),
                source: SubscriberSource::Api,
                count: 2,
            }, // Monday, W45
            Joined {
                day: d("2026-11-08"),
                source: SubscriberSource::Api,
                count: 4,
            }, // Sunday, W45
        ];
        let p = periods(d("2026-11-01"), d("2026-11-10"), Bucket::Week, 0, &joined, &[]);
        let got: Vec<(&str, i64, i64)> = p.iter().map(|p| (p.label.as_str(), p.joined, p.confirmed)).collect();
        assert_eq!(got, [("2026-W44", 1, 1), ("2026-W45", 6, 7), ("2026-W46", 0, 7)]);
        assert_eq!(p[1].start, d("2026-11-02"));
    }

    #[test]
    fn report_length_is_bounded() {
        assert!(check_days(6).is_err());
        assert!(
            check_days(MAX_DAYS + 1)
                .unwrap_err()
                .to_string()
                .contains("days must be from 7")
        );
        assert_eq!(check_days(30).unwrap(), 30);
    }

    #[test]
    fn rates_are_of_the_messages_sent() {
        assert_eq!(percent(1, 3), 33.3);
        assert_eq!(percent(2, 3), 66.7);
        assert_eq!(percent(1, 0), 0.0);
    }
}
