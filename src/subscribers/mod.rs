//! The subscriber side: subscription requests with double opt-in, confirmation,
//! preferences and leaving, an admin's adding, changing, erasing and importing
//! ([`Subscriptions`]), and the list as CSV (`csv`). The web form, the console, the API and
//! the CLI all come through here for every change; every change of status is decided by the
//! state machine in `domain` ([`SubscriberEvent::transition`]). Uses `domain`, `config`,
//! `store`, `site` (templates, links) and `mail` (composing, the outbox).

pub mod csv;
mod suppression;
mod topics;

pub use suppression::{address_hash, suppression_key};

use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use lettre::message::Mailbox;
use serde::Serialize;

use std::sync::Arc;

use tokio::sync::Notify;

use crate::config::SubscriberSettings;
use crate::domain::{
    Actor, Choices, ConsentEvidence, ConsentText, EmailAddress, EventKind, Frequency, HistoryEvent, Subscriber,
    SubscriberEvent, SubscriberSource, SubscriberStatus, Transition, truncate_ip,
};
use crate::mail::{Composer, Outgoing, compose, outbox::Outbox};
use crate::site::Site;
use crate::store::history::NewEvent;
use crate::store::subscribers::{Confirmed, NewSubscriber, SubscriberPatch};
use crate::store::{self, Db, outbox::NewMail};
use crate::worker::{self, Pass};
use csv::{ImportOptions, ImportReport};

/// Subscribing, confirming, changing and leaving.
pub struct Subscriptions {
    db: Db,
    site: Arc<Site>,
    composer: Arc<Composer>,
    outbox: Outbox,
    settings: SubscriberSettings,
    /// Rung when the form stores a request.
    wake: Notify,
    /// The key of the suppression list's hashes, read from the database once.
    suppression_key: tokio::sync::OnceCell<[u8; 32]>,
    /// When this instance last purged stale pending subscribers.
    last_purge: std::sync::Mutex<Option<std::time::Instant>>,
}

/// What someone asked for on the form (or an admin on their behalf).
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    pub email: EmailAddress,
    pub name: Option<String>,
    pub frequency: Frequency,
    pub topics: Vec<String>,
    pub source: SubscriberSource,
}

impl SubscribeRequest {
    fn choices(&self) -> Choices {
        Choices {
            name: self.name.clone(),
            frequency: self.frequency,
            topics: self.topics.clone(),
        }
    }
}

/// What an admin's adding someone did.
#[derive(Debug, Clone, PartialEq)]
pub enum Added {
    /// Added now; a pending one has been mailed a confirmation link.
    New(Subscriber),
    /// The address is already on record, and is left as it is.
    Exists(Subscriber),
    /// Nobody is added with this status: an admin adds people to mail, pending or confirmed.
    Refused(SubscriberStatus),
    /// The address was erased at its owner's request at this time: only they can bring it
    /// back, by subscribing on the form themselves.
    Erased(DateTime<Utc>),
}

/// What asking to send someone their confirmation link again did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resent {
    /// A fresh link is on its way (earlier ones are void).
    Sent,
    /// One went out less than `[subscribers] confirm_resend_minutes` ago: nothing more now.
    TooSoon,
    /// Only pending subscribers are sent a confirmation link; this one is not pending.
    NotPending(SubscriberStatus),
    /// No such subscriber.
    Gone,
}

/// How long a worker holds a claimed request before another may take it over.
const REQUEST_LEASE: std::time::Duration = std::time::Duration::from_secs(60);
/// A request that fails this many times is dropped (and logged) rather than retried for ever.
const REQUEST_ATTEMPTS: i32 = 10;
/// How often an instance purges pending subscribers who never confirmed.
const PURGE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// What a subject access request gets: everything stored about a person.
#[derive(Debug, Clone, Serialize)]
pub struct PersonRecord {
    #[serde(flatten)]
    pub subscriber: Subscriber,
    pub consent: ConsentEvidence,
    /// Oldest first.
    pub events: Vec<HistoryEvent>,
}

#[derive(Serialize)]
struct ConfirmContext<'a> {
    name: Option<&'a str>,
    email: &'a str,
    confirm_url: String,
    expires_days: u32,
    frequency_text: &'static str,
}

fn stored_request(row: &store::requests::ClaimedRequest) -> anyhow::Result<SubscribeRequest> {
    Ok(SubscribeRequest {
        email: EmailAddress::parse(&row.email)?,
        name: row.name.clone(),
        frequency: row.frequency.parse()?,
        topics: serde_json::from_str(&row.topics).context("The stored topics are not a JSON list")?,
        source: row.source.parse()?,
    })
}

/// The choices a request asks for, in words for its history.
fn asked_for(choices: &Choices) -> String {
    let topics = if choices.topics.is_empty() {
        "every topic".to_owned()
    } else {
        choices.topics.join(",")
    };
    format!("asked for {}, {topics}", choices.frequency)
}

impl Subscriptions {
    pub fn new(
        db: Db,
        site: Arc<Site>,
        composer: Arc<Composer>,
        outbox: Outbox,
        settings: &SubscriberSettings,
    ) -> Self {
        Self {
            db,
            site,
            composer,
            outbox,
            settings: settings.clone(),
            wake: Notify::new(),
            suppression_key: tokio::sync::OnceCell::new(),
            last_purge: std::sync::Mutex::new(None),
        }
    }

    /// The keyed hash an address has on the suppression list.
    pub async fn address_hash(&self, email: &EmailAddress) -> anyhow::Result<String> {
        let key = self
            .suppression_key
            .get_or_try_init(|| suppression_key(&self.db))
            .await?;
        Ok(address_hash(key, email))
    }

    /// When the address was erased at its owner's request, if it is on the suppression list.
    pub async fn erased_at(&self, email: &EmailAddress) -> anyhow::Result<Option<DateTime<Utc>>> {
        let hash = self.address_hash(email).await?;
        Ok(store::history::suppressed(&self.db, &[hash])
            .await?
            .first()
            .map(|(_, at)| *at))
    }

    /// Keeps the consent wording this instance's form shows, so that the version a request
    /// carries can always be shown as words.
    pub async fn keep_consent_text(&self, text: &ConsentText) -> anyhow::Result<()> {
        store::history::keep_consent_text(&self.db, text, Utc::now()).await
    }

    /// Everything that happened to a subscriber, oldest first.
    pub async fn history(&self, id: i64) -> anyhow::Result<Vec<HistoryEvent>> {
        store::history::for_subscriber(&self.db, id).await
    }

    /// How a subscriber's consent was given, from their history: the newest request, adding
    /// or import that put them on the list, and the newest confirmation.
    pub async fn consent(&self, subscriber: &Subscriber, history: &[HistoryEvent]) -> anyhow::Result<ConsentEvidence> {
        let kinds = |ks: &[EventKind]| {
            history
                .iter()
                .rev()
                .find(|e| ks.iter().any(|k| k.as_str() == e.kind))
                .cloned()
        };
        let given = kinds(&[EventKind::Requested, EventKind::Added, EventKind::Imported]);
        let confirmed = kinds(&[EventKind::Confirmed, EventKind::Resubscribed]);
        let version = confirmed
            .as_ref()
            .and_then(|e| e.wording_version.clone())
            .or_else(|| given.as_ref().and_then(|e| e.wording_version.clone()));
        let wording = match version {
            Some(v) => Some(
                store::history::consent_text(&self.db, &v)
                    .await?
                    .unwrap_or(ConsentText {
                        version: v,
                        text: String::new(),
                    }),
            ),
            None => None,
        };
        Ok(ConsentEvidence {
            given_at: given.as_ref().map(|e| e.at).or(subscriber.consent_at),
            source: given
                .as_ref()
                .map_or_else(|| subscriber.source.as_str().to_owned(), |e| e.source.clone()),
            by: given.as_ref().and_then(|e| e.by.clone()),
            wording,
            confirmed_at: confirmed.as_ref().map(|e| e.at).or(subscriber.confirmed_at),
            confirmed_from: confirmed.and_then(|e| e.ip),
        })
    }

    /// A subscriber's stored data, history and consent evidence (a subject access request).
    pub async fn record_of(&self, subscriber: Subscriber) -> anyhow::Result<PersonRecord> {
        let events = self.history(subscriber.id).await?;
        let consent = self.consent(&subscriber, &events).await?;
        Ok(PersonRecord {
            subscriber,
            consent,
            events,
        })
    }

    /// Deletes the subscribers still pending `[subscribers] purge_pending_days` after they
    /// were added and last mailed a link, with every trace of their address: they never
    /// joined. Safe with several instances at once. Returns how many went.
    #[tracing::instrument(skip_all)]
    pub async fn purge_pending(&self, now: DateTime<Utc>) -> anyhow::Result<usize> {
        let cutoff = now - Duration::days(i64::from(self.settings.purge_pending_days.get()));
        let mut purged = 0;
        loop {
            let n = store::subscribers::purge_pending(&self.db, cutoff, 500).await?;
            purged += n;
            if n < 500 {
                break;
            }
        }
        if purged > 0 {
            tracing::info!(purged, "unconfirmed subscribers purged");
        }
        Ok(purged)
    }

    /// Purges (as [`Self::purge_pending`]) when this instance has not for [`PURGE_EVERY`].
    async fn purge_when_due(&self) -> anyhow::Result<()> {
        {
            let mut last = self.last_purge.lock().unwrap_or_else(|e| e.into_inner());
            if last.is_some_and(|t| t.elapsed() < PURGE_EVERY) {
                return Ok(());
            }
            *last = Some(std::time::Instant::now());
        }
        self.purge_pending(Utc::now()).await.map(|_| ())
    }

    /// Takes a subscription request: stores it and wakes the worker that acts on it
    /// ([`act_on`]). The caller's answer costs the same for every address, new, pending,
    /// confirmed or suppressed, so its timing tells nothing about the list (the work that
    /// differs happens later, in the background); the request is durable before the form
    /// says "check your inbox", so a crash loses nothing that was acknowledged.
    #[tracing::instrument(skip_all)]
    ///
    /// `wording_version` is the version of the consent wording the form showed
    /// ([`ConsentText`]), kept as part of the evidence of consent.
    pub async fn request(&self, req: SubscribeRequest, wording_version: Option<&str>) -> anyhow::Result<()> {
        let choices = req.choices();
        let new = store::requests::NewRequest {
            email: &req.email,
            choices: &choices,
            source: req.source,
            wording_version,
        };
        store::requests::insert(&self.db, &new, Utc::now()).await?;
        self.wake.notify_one();
        Ok(())
    }

    /// Acts on a subscription request ([`SubscriberEvent::Requested`]). A new address is
    /// stored as pending; a known one keeps its status, which the state machine decides on:
    /// a pending or departed one gets a confirmation link carrying the choices asked for,
    /// which apply only if that link is followed (so a stranger filling in the form for
    /// someone else's address changes nothing of theirs), at most one mail per address per
    /// `[subscribers] confirm_resend_minutes`. Confirmed and suppressed addresses (the
    /// machine refuses their request) get nothing and keep everything.
    ///
    /// A request that mails a link is kept in the address's history as given at
    /// `requested_at` (when the form took it) under the consent wording `wording_version`.
    /// An address erased at its owner's request may ask again like any other: the owner's
    /// own request, confirmed by the link, is fresh consent (the suppression is lifted only
    /// when the link is followed).
    #[tracing::instrument(skip_all)]
    pub async fn act_on(
        &self,
        req: &SubscribeRequest,
        wording_version: Option<&str>,
        requested_at: DateTime<Utc>,
    ) -> anyhow::Result<()> {
        let now = Utc::now();
        let choices = req.choices();
        let event = SubscriberEvent::Requested;
        let Transition::To(status) = event.transition(None) else {
            anyhow::bail!("A request cannot add {}", req.email);
        };
        let new = NewSubscriber {
            email: req.email.clone(),
            name: req.name.clone(),
            status,
            frequency: req.frequency,
            topics: req.topics.clone(),
            source: req.source,
            consent_at: Some(requested_at),
        };
        let (subscriber, _created) = store::subscribers::insert_or_get(&self.db, &new, now).await?;
        if event.transition(Some(subscriber.status)) == Transition::Refused {
            return Ok(());
        }
        let resend_after = now - Duration::minutes(i64::from(self.settings.confirm_resend_minutes));
        let sent_at = store::subscribers::confirmation_sent_at(&self.db, subscriber.id).await?;
        if store::subscribers::confirmation_recent(sent_at, resend_after) {
            return Ok(());
        }
        self.send_confirmation_with(&subscriber, &choices).await?;
        let actor = Actor::new(req.source.into(), None);
        let record = NewEvent {
            wording_version: wording_version.map(str::to_owned),
            ..NewEvent::new(subscriber.id, EventKind::Requested, &actor, requested_at).detail(asked_for(&choices))
        };
        store::history::record(&self.db, &record).await
    }

    /// One pass over the stored requests: claims the due ones and acts on each, oldest
    /// first. Returns how many were claimed. Tests call this to work the queue step by step.
    #[tracing::instrument(skip_all)]
    pub async fn process_requests(&self) -> anyhow::Result<usize> {
        let now = Utc::now();
        let lease_until = now + Duration::from_std(REQUEST_LEASE)?;
        let mut claimed = store::requests::claim_due(&self.db, now, lease_until, 50).await?;
        claimed.sort_by_key(|r| r.id);
        for row in &claimed {
            let request = match stored_request(row) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(
                        request = row.id,
                        error = format!("{e:#}"),
                        "unusable subscription request dropped"
                    );
                    store::requests::delete(&self.db, row.id).await?;
                    continue;
                }
            };
            match self
                .act_on(&request, row.wording_version.as_deref(), row.created_at)
                .await
            {
                Ok(()) => store::requests::delete(&self.db, row.id).await?,
                // Left claimed: another pass takes it again when its lease ends.
                Err(e) if row.attempts < REQUEST_ATTEMPTS => {
                    tracing::warn!(
                        request = row.id,
                        attempts = row.attempts,
                        error = format!("{e:#}"),
                        "subscription request deferred"
                    );
                }
                Err(e) => {
                    tracing::error!(
                        request = row.id,
                        attempts = row.attempts,
                        error = format!("{e:#}"),
                        "subscription request given up"
                    );
                    store::requests::delete(&self.db, row.id).await?;
                }
            }
        }
        Ok(claimed.len())
    }

    /// Works on subscription requests until `shutdown`: at once when the form stores one,
    /// else every few seconds (requests left by a crashed or stopped instance).
    pub async fn run(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        worker::run("subscription request pass", &self.wake, &shutdown, || async {
            // Housekeeping rides on this loop: every instance runs it, and a purge that
            // another instance is running at the same time deletes nothing twice.
            if let Err(e) = self.purge_when_due().await {
                tracing::error!(error = format!("{e:#}"), "purge of unconfirmed subscribers failed");
            }
            Ok(match self.process_requests().await? {
                0 => Pass::Idle(std::time::Duration::from_secs(5)),
                _ => Pass::Busy,
            })
        })
        .await
    }

    /// Queues a confirmation mail with a fresh single-use token that keeps the subscriber's
    /// current choices (an admin adding someone), and wakes the outbox.
    async fn send_confirmation(&self, subscriber: &Subscriber) -> anyhow::Result<()> {
        self.send_confirmation_with(subscriber, &Choices::of(subscriber)).await
    }

    /// Queues a confirmation mail with a fresh single-use token carrying `choices`, voiding
    /// the address's earlier links, and wakes the outbox.
    pub async fn send_confirmation_with(&self, subscriber: &Subscriber, choices: &Choices) -> anyhow::Result<()> {
        let now = Utc::now();
        let token = store::subscribers::new_token();
        let days = self.settings.confirm_token_days.get();
        let mut ctx = tera::Context::new();
        ctx.insert("site", &self.site.site_view());
        ctx.extend(tera::Context::from_serialize(ConfirmContext {
            name: choices.name.as_deref().or(subscriber.name.as_deref()),
            email: subscriber.email.as_str(),
            confirm_url: self.site.settings().url_for(&format!("confirm/{token}")),
            expires_days: days,
            frequency_text: choices.frequency.sentence(),
        })?);
        let templates = self.site.templates();
        let to = Mailbox::new(
            choices.name.clone().or_else(|| subscriber.name.clone()),
            (&subscriber.email).into(),
        );
        let key = format!("confirm.{}.{}", subscriber.id, uuid::Uuid::new_v4().simple());
        let (_, message) = self.composer.build(Outgoing {
            to,
            subject: format!("Confirm your subscription to {}", self.site.settings().site.title),
            html: compose::body(Composer::inline_css(&templates.render("email/confirm.html", &ctx)?)?),
            text: compose::body(compose::plain_text(&templates.render("email/confirm.txt", &ctx)?)),
            message_key: key.clone(),
            return_token: None,
            headers: vec![("Auto-Submitted", "auto-generated".into())],
        })?;
        let mail = NewMail {
            kind: "confirmation",
            subscriber_id: Some(subscriber.id),
            recipient: subscriber.email.as_str().to_owned(),
            message_id: self.composer.message_id(&key),
            message,
        };
        let hash = store::subscribers::token_hash(&token);
        let confirmation = store::outbox::NewConfirmation {
            subscriber_id: subscriber.id,
            token_hash: &hash,
            expires_at: now + Duration::days(i64::from(days)),
            choices,
        };
        store::outbox::queue_confirmation(&self.db, &confirmation, &mail, now).await?;
        self.outbox.wake();
        tracing::info!(subscriber = subscriber.id, "confirmation queued");
        Ok(())
    }

    /// An admin adds someone ([`SubscriberEvent::AdminSet`] on no record): as pending, mailed
    /// a confirmation link that keeps the choices given here, or as confirmed. An address
    /// already on record is left as it is.
    ///
    /// An address erased at its owner's request is not added again by an admin
    /// ([`Added::Erased`]); `by` is kept in the history as who added them.
    #[tracing::instrument(skip_all)]
    pub async fn add(&self, req: SubscribeRequest, status: SubscriberStatus, by: &Actor) -> anyhow::Result<Added> {
        let Transition::To(status) = (SubscriberEvent::AdminSet { to: status }).transition(None) else {
            return Ok(Added::Refused(status));
        };
        if let Some(at) = self.erased_at(&req.email).await? {
            return Ok(Added::Erased(at));
        }
        let now = Utc::now();
        let new = NewSubscriber {
            email: req.email,
            name: req.name,
            status,
            frequency: req.frequency,
            topics: req.topics,
            source: req.source,
            consent_at: Some(now),
        };
        let (subscriber, created) = store::subscribers::insert_or_get(&self.db, &new, now).await?;
        if !created {
            return Ok(Added::Exists(subscriber));
        }
        tracing::info!(subscriber = subscriber.id, %status, "subscriber added");
        let record = NewEvent::new(subscriber.id, EventKind::Added, by, now).detail(format!("as {status}"));
        store::history::record(&self.db, &record).await?;
        if subscriber.status == SubscriberStatus::Pending {
            self.send_confirmation(&subscriber).await?;
        }
        Ok(Added::New(subscriber))
    }

    /// Follows a confirmation link ([`SubscriberEvent::Confirmed`]): only the newest unused,
    /// unexpired link of an address works, and only once.
    #[tracing::instrument(skip_all)]
    ///
    /// `from` is the address of the request that followed it: its network alone (/24, /48)
    /// is kept with the confirmation. An address that was erased at its owner's request
    /// comes off the suppression list here: following the link is their own fresh consent.
    pub async fn confirm(&self, token: &str, from: Option<std::net::IpAddr>) -> anyhow::Result<Confirmed> {
        let ip = from.map(|ip| truncate_ip(ip).to_string());
        let confirmed = store::subscribers::confirm(&self.db, token, ip, Utc::now()).await?;
        if let Confirmed::Confirmed(s) = &confirmed {
            tracing::info!(subscriber = s.id, status = %s.status, "confirmation link followed");
            if s.status == SubscriberStatus::Confirmed
                && store::history::lift(&self.db, &self.address_hash(&s.email).await?).await?
            {
                tracing::info!(subscriber = s.id, "erased address subscribed again: suppression lifted");
            }
        }
        Ok(confirmed)
    }

    /// Changes a subscriber's choices (the reader's preferences form, or an admin); their
    /// status stays as it is. `by` is kept in the history (the reader's link, or an admin).
    /// `None` if there is no such subscriber.
    pub async fn update_preferences(
        &self,
        id: i64,
        patch: &SubscriberPatch,
        by: &Actor,
    ) -> anyhow::Result<Option<Subscriber>> {
        store::subscribers::update(&self.db, id, patch, by, Utc::now()).await
    }

    /// An admin changes a subscriber: their choices, and their status if `status` is given
    /// ([`SubscriberEvent::AdminSet`]: an admin's word is final, the one way besides a forced
    /// import to bring back a suppressed address). `None` if there is no such subscriber.
    #[tracing::instrument(skip_all)]
    pub async fn admin_update(
        &self,
        id: i64,
        patch: &SubscriberPatch,
        status: Option<SubscriberStatus>,
        by: &Actor,
    ) -> anyhow::Result<Option<Subscriber>> {
        let now = Utc::now();
        if let Some(to) = status {
            let event = SubscriberEvent::AdminSet { to };
            let Some(applied) = store::subscribers::apply(&self.db, id, event, by, None, now).await? else {
                return Ok(None);
            };
            if applied.transition == Transition::Refused {
                anyhow::bail!("Subscriber {id} cannot be set to {to}");
            }
        }
        store::subscribers::update(&self.db, id, patch, by, now).await
    }

    /// An admin sends a pending subscriber their confirmation link again, keeping their
    /// current choices; like the form, at most once per `[subscribers] confirm_resend_minutes`.
    /// Nobody else is mailed: a confirmed reader needs no link, and a departed one asks again
    /// themselves.
    #[tracing::instrument(skip_all)]
    pub async fn resend_confirmation(&self, id: i64) -> anyhow::Result<Resent> {
        let Some(subscriber) = store::subscribers::find(&self.db, id).await? else {
            return Ok(Resent::Gone);
        };
        if subscriber.status != SubscriberStatus::Pending {
            return Ok(Resent::NotPending(subscriber.status));
        }
        let now = Utc::now();
        let resend_after = now - Duration::minutes(i64::from(self.settings.confirm_resend_minutes));
        let sent_at = store::subscribers::confirmation_sent_at(&self.db, id).await?;
        if store::subscribers::confirmation_recent(sent_at, resend_after) {
            return Ok(Resent::TooSoon);
        }
        self.send_confirmation(&subscriber).await?;
        Ok(Resent::Sent)
    }

    /// Erases a person at their request (`by`: the admin, API token or command line that
    /// asks): their row, history, tokens and queued mail, and their address in bounce
    /// reports. Only a keyed hash of the address is kept, on the suppression list, so that no
    /// import or admin adds them again by mistake; they may still subscribe on the form
    /// themselves. Returns whether anyone was there.
    #[tracing::instrument(skip_all)]
    pub async fn erase(&self, id: i64, by: &Actor) -> anyhow::Result<bool> {
        let Some(subscriber) = store::subscribers::find(&self.db, id).await? else {
            return Ok(false);
        };
        let hash = self.address_hash(&subscriber.email).await?;
        let erased = store::subscribers::erase(&self.db, id, &hash, by.source, Utc::now()).await?;
        if erased {
            tracing::info!(subscriber = id, "subscriber erased");
        }
        Ok(erased)
    }

    /// Imports a CSV list (see [`csv::import_csv`]); each row's status is an
    /// [`SubscriberEvent::Imported`] for the state machine. `progress` is told how many bytes
    /// have been read so far; `by` names the file (and who imports it) in the history. Rows
    /// of erased addresses are refused, each with its line.
    pub async fn import<R: std::io::Read + Send + 'static>(
        &self,
        reader: R,
        options: ImportOptions,
        by: &Actor,
        progress: impl Fn(u64),
    ) -> anyhow::Result<ImportReport> {
        csv::import_csv_as(&self.db, reader, options, self.settings.default_frequency, by, progress).await
    }

    /// Leaves the list ([`SubscriberEvent::Unsubscribed`]), voiding any confirmation link
    /// still outstanding. Idempotent; a suppressed address stays suppressed.
    pub async fn unsubscribe(&self, subscriber: &Subscriber) -> anyhow::Result<()> {
        let now = Utc::now();
        let event = SubscriberEvent::Unsubscribed;
        let applied = store::subscribers::apply(&self.db, subscriber.id, event, &Actor::link(), None, now).await?;
        match applied.map(|a| a.transition) {
            // Moving off the list voided the links.
            Some(Transition::To(_)) => tracing::info!(subscriber = subscriber.id, "unsubscribed"),
            // Already gone, but someone may have asked for them again since: leaving again
            // says no to that request too.
            Some(_) => store::subscribers::revoke_confirmations(&self.db, subscriber.id, now).await?,
            None => {}
        }
        Ok(())
    }
}
