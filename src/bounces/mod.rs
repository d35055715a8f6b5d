//! The one bounce policy: what a reported bounce, complaint or reactivation does to a
//! subscriber, and the record kept of each. Every reporter calls [`Bounces::record`]: the
//! provider webhooks (`web::webhooks`), delivery status notifications (IMAP, ingest), and
//! the same rule holds for SMTP replies during a send (kept by `store::deliveries` in the
//! transaction that records the delivery). Uses `store`, `config` and `domain`.
//!
//! The rule:
//! - a **hard** bounce suppresses the address at once (status `bounced`);
//! - a **soft** bounce is counted: `[bounces] soft_limit` of them (default 3) within
//!   `soft_days` days (default 14) of the newest, and since the address was last
//!   reactivated, suppress it as a hard bounce would;
//! - a **complaint** suppresses it at once (status `complained`, which a later bounce
//!   never overwrites);
//! - an admin may **reactivate** a suppressed address, with a reason that is kept.
//!
//! The subscriber's status always changes through the state machine
//! ([`SubscriberEvent::transition`]), so a bounce never undoes a complaint or an admin's
//! later decision. Every event is kept, matched or not; a report carrying the provider's
//! id of the event (`external_id`) is kept once, and a repeat changes nothing.

pub mod reports;
pub mod webhooks;

use chrono::{DateTime, Utc};

use crate::config::BounceSettings;
use crate::domain::{
    Actor, BounceKind, BounceSource, EmailAddress, OwnMessage, Subscriber, SubscriberEvent, SubscriberStatus,
    Transition, clean_diagnostic,
};
use crate::store::{self, Db};

/// A bounce or complaint as a reporter saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct BounceReport {
    /// The address the message was sent to, as reported (lowercased when kept).
    pub address: String,
    /// `Hard`, `Soft` or `Complaint` (a reactivation is [`Bounces::reactivate`]).
    pub kind: BounceKind,
    /// The provider's or the DSN's text (cut to 1000 characters when kept).
    pub diagnostic: Option<String>,
    pub source: BounceSource,
    /// The Message-ID of the message that bounced, when the report gives it: Herald's own
    /// (`<edition.E.S@domain>`) names the edition and subscriber.
    pub message_id: Option<String>,
    /// The provider's id of the event, so a retried report is kept once.
    pub external_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
}

/// What [`Bounces::record`] did.
#[derive(Debug, Clone, PartialEq)]
pub enum Recorded {
    /// An event with the same `external_id` was already kept: nothing was done.
    Duplicate,
    /// Kept as event `event_id`.
    Kept {
        event_id: i64,
        /// The subscriber the report was matched to, if any.
        subscriber_id: Option<i64>,
        edition_id: Option<i64>,
        /// The subscriber's status after the report (`None`: no subscriber matched).
        status: Option<SubscriberStatus>,
        /// Whether the status changed because of this report.
        changed: bool,
    },
}

/// Why a report or a reactivation was refused.
#[derive(Debug, thiserror::Error)]
pub enum BounceError {
    #[error("a bounce report needs the address it is about")]
    NoAddress,
    #[error("a reactivation is not reported: an admin asks for it with a reason")]
    ReactivationReported,
    #[error("a reactivation needs a reason")]
    NoReason,
    #[error("subscriber {0} does not exist")]
    NoSuchSubscriber(i64),
    #[error("subscriber {id} is {status}, not bounced or complained: there is nothing to reactivate")]
    NotSuppressed { id: i64, status: SubscriberStatus },
    #[error(transparent)]
    Store(#[from] anyhow::Error),
}

/// The policy, with its settings. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Bounces {
    db: Db,
    soft_limit: u32,
    soft_window: chrono::Duration,
}

impl Bounces {
    pub fn new(db: Db, settings: &BounceSettings) -> Self {
        Self {
            db,
            soft_limit: settings.soft_limit.get(),
            soft_window: chrono::Duration::days(i64::from(settings.soft_days.get())),
        }
    }

    /// Keeps a report and applies the policy to the subscriber it is about. The subscriber
    /// and edition are matched by Herald's own Message-ID when the report carries one (the
    /// subscriber only if their address is the one reported), else the subscriber by the
    /// address. A report about an address Herald does not know is kept unmatched.
    #[tracing::instrument(skip_all, fields(kind = %report.kind, source = %report.source))]
    pub async fn record(&self, report: BounceReport) -> Result<Recorded, BounceError> {
        if report.kind == BounceKind::Reactivated {
            return Err(BounceError::ReactivationReported);
        }
        let address = report.address.trim().to_lowercase();
        if address.is_empty() {
            return Err(BounceError::NoAddress);
        }
        let external_id = report.external_id.as_deref().map(str::trim).filter(|id| !id.is_empty());
        if let Some(id) = external_id
            && store::bounces::external_id_known(&self.db, id).await?
        {
            tracing::info!("bounce report already recorded");
            return Ok(Recorded::Duplicate);
        }
        let (subscriber, edition_id) = self.match_report(&address, report.message_id.as_deref()).await?;
        let now = Utc::now();
        let diagnostic = report.diagnostic.as_deref().and_then(clean_diagnostic);
        let new = store::bounces::NewBounceEvent {
            subscriber_id: subscriber.as_ref().map(|s| s.id),
            address: &address,
            kind: report.kind,
            diagnostic: diagnostic.as_deref(),
            source: report.source,
            edition_id,
            external_id,
            occurred_at: report.occurred_at,
            recorded_at: now,
        };
        let Some(subscriber) = subscriber else {
            return Ok(match store::bounces::insert(&self.db, &new).await? {
                None => Recorded::Duplicate,
                Some(event_id) => {
                    tracing::info!(event = event_id, "bounce report for an unknown address kept");
                    Recorded::Kept {
                        event_id,
                        subscriber_id: None,
                        edition_id,
                        status: None,
                        changed: false,
                    }
                }
            });
        };
        // Hard bounces and complaints move the status before the event is kept: should
        // Herald stop in between, the provider's retry finds no event and applies it again
        // (which changes nothing the second time). A soft bounce is kept first, since the
        // count includes it.
        let event = match report.kind {
            BounceKind::Hard => Some(SubscriberEvent::Bounced),
            BounceKind::Complaint => Some(SubscriberEvent::Complained),
            BounceKind::Soft | BounceKind::Reactivated => None,
        };
        let reporter = Actor::new(report.source.into(), None);
        let (event_id, applied) = match event {
            Some(event) => {
                let applied = store::subscribers::apply(&self.db, subscriber.id, event, &reporter, None, now).await?;
                let Some(event_id) = store::bounces::insert(&self.db, &new).await? else {
                    return Ok(Recorded::Duplicate);
                };
                (event_id, applied)
            }
            None => {
                let Some(event_id) = store::bounces::insert(&self.db, &new).await? else {
                    return Ok(Recorded::Duplicate);
                };
                let since = report.occurred_at - self.soft_window;
                let count = store::bounces::soft_count_since(&self.db, subscriber.id, since).await?;
                let applied = if count >= i64::from(self.soft_limit) {
                    tracing::info!(subscriber = subscriber.id, count, "soft bounces reached the limit");
                    let detail = format!("{count} soft bounces");
                    store::subscribers::apply(
                        &self.db,
                        subscriber.id,
                        SubscriberEvent::Bounced,
                        &reporter,
                        Some(&detail),
                        now,
                    )
                    .await?
                } else {
                    None
                };
                (event_id, applied)
            }
        };
        let (status, changed) = match applied {
            Some(applied) => (
                applied.subscriber.status,
                matches!(applied.transition, Transition::To(_)),
            ),
            None => (subscriber.status, false),
        };
        tracing::info!(event = event_id, subscriber = subscriber.id, %status, changed, "bounce report kept");
        Ok(Recorded::Kept {
            event_id,
            subscriber_id: Some(subscriber.id),
            edition_id,
            status: Some(status),
            changed,
        })
    }

    /// The subscriber and edition a report is about.
    async fn match_report(
        &self,
        address: &str,
        message_id: Option<&str>,
    ) -> anyhow::Result<(Option<Subscriber>, Option<i64>)> {
        let parsed = EmailAddress::parse(address).ok();
        let own = message_id.and_then(OwnMessage::parse).unwrap_or_default();
        let edition_id = match own.edition_id {
            Some(id) if store::bounces::edition_exists(&self.db, id).await? => Some(id),
            _ => None,
        };
        if let Some(id) = own.subscriber_id
            && let Some(subscriber) = store::subscribers::find(&self.db, id).await?
            && parsed.as_ref().is_none_or(|a| a.key() == subscriber.email.key())
        {
            return Ok((Some(subscriber), edition_id));
        }
        let subscriber = match &parsed {
            Some(address) => store::subscribers::find_by_email(&self.db, address).await?,
            None => None,
        };
        Ok((subscriber, edition_id))
    }

    /// Puts a bounced or complained subscriber back on the list, as an admin asked
    /// (`source` is `Console` or `Api`; `by` the admin or API token), keeping `reason` with
    /// the event and in their history. They return to
    /// where they were before: confirmed if they had confirmed, unsubscribed if they had
    /// left since, pending otherwise. Returns the subscriber as they now are.
    #[tracing::instrument(skip_all, fields(subscriber = id, source = %source))]
    pub async fn reactivate(
        &self,
        id: i64,
        reason: &str,
        source: BounceSource,
        by: Option<&str>,
    ) -> Result<Subscriber, BounceError> {
        let reason = clean_diagnostic(reason).ok_or(BounceError::NoReason)?;
        let subscriber = store::subscribers::find(&self.db, id)
            .await?
            .ok_or(BounceError::NoSuchSubscriber(id))?;
        if !subscriber.status.suppressed() {
            return Err(BounceError::NotSuppressed {
                id,
                status: subscriber.status,
            });
        }
        let to = match (subscriber.confirmed_at, subscriber.unsubscribed_at) {
            (Some(confirmed), Some(left)) if left > confirmed => SubscriberStatus::Unsubscribed,
            (Some(_), _) => SubscriberStatus::Confirmed,
            (None, Some(_)) => SubscriberStatus::Unsubscribed,
            (None, None) => SubscriberStatus::Pending,
        };
        let now = Utc::now();
        let admin = Actor::new(source.into(), by.map(str::to_owned));
        let applied = store::subscribers::apply(
            &self.db,
            id,
            SubscriberEvent::AdminSet { to },
            &admin,
            Some(&reason),
            now,
        )
        .await?
        .ok_or(BounceError::NoSuchSubscriber(id))?;
        let address = applied.subscriber.email.as_str().to_lowercase();
        store::bounces::insert(
            &self.db,
            &store::bounces::NewBounceEvent {
                subscriber_id: Some(id),
                address: &address,
                kind: BounceKind::Reactivated,
                diagnostic: Some(&reason),
                source,
                edition_id: None,
                external_id: None,
                occurred_at: now,
                recorded_at: now,
            },
        )
        .await?;
        tracing::info!(%to, "suppressed subscriber reactivated");
        Ok(applied.subscriber)
    }

    /// A subscriber's events, newest first (at most `limit`).
    pub async fn events(&self, subscriber_id: i64, limit: u32) -> anyhow::Result<Vec<crate::domain::BounceEvent>> {
        store::bounces::for_subscriber(&self.db, subscriber_id, limit).await
    }
}
