//! The subscriber side: subscription requests with double opt-in, confirmation,
//! preferences and leaving. The web form, the CLI and the API all come through here.

use anyhow::Context;
use chrono::{Duration, Utc};
use lettre::message::Mailbox;
use serde::Serialize;

use crate::app::App;
use crate::delivery::{Composer, Outgoing, compose};
use crate::domain::{EmailAddress, Frequency, Subscriber, SubscriberSource, SubscriberStatus};
use crate::store::{self, outbox::NewMail, subscribers::NewSubscriber};

/// What someone asked for on the form (or an admin on their behalf).
#[derive(Debug, Clone)]
pub struct SubscribeRequest {
    pub email: EmailAddress,
    pub name: Option<String>,
    pub frequency: Frequency,
    pub topics: Vec<String>,
    pub source: SubscriberSource,
}

/// Words for a frequency in a sentence ("with every new post").
pub fn frequency_text(f: Frequency) -> &'static str {
    match f {
        Frequency::Immediate => "with every new post",
        Frequency::Daily => "once a day, when there is news",
        Frequency::Weekly => "once a week, when there is news",
    }
}

/// The links in a subscriber's mail that let them manage or leave the list.
pub fn preferences_url(app: &App, subscriber: &Subscriber) -> String {
    app.settings
        .url_for(&format!("preferences/{}", subscriber.manage_token))
}

pub fn unsubscribe_url(app: &App, subscriber: &Subscriber) -> String {
    app.settings
        .url_for(&format!("unsubscribe/{}", subscriber.manage_token))
}

/// Handles a subscription request. The caller learns nothing of what was on the list
/// before (the form's answer is the same for everyone); mail goes out only where due:
/// a new or returning address gets a confirmation, at most one per address per
/// `[subscribers] confirm_resend_minutes`; confirmed and suppressed addresses get nothing.
#[tracing::instrument(skip_all)]
pub async fn request(app: &App, req: SubscribeRequest) -> anyhow::Result<()> {
    let now = Utc::now();
    let new = NewSubscriber {
        email: req.email,
        name: req.name,
        status: SubscriberStatus::Pending,
        frequency: req.frequency,
        topics: req.topics,
        source: req.source,
        consent_at: Some(now),
    };
    let (subscriber, created) = store::subscribers::insert_or_get(&app.db, &new, now).await?;
    if !created {
        match subscriber.status {
            SubscriberStatus::Pending | SubscriberStatus::Unsubscribed => {
                store::subscribers::resubscribe(&app.db, subscriber.id, &new, now).await?;
            }
            SubscriberStatus::Confirmed | SubscriberStatus::Bounced | SubscriberStatus::Complained => return Ok(()),
        }
        let resend_after = now - Duration::minutes(i64::from(app.settings.subscribers.confirm_resend_minutes));
        let sent_at = store::subscribers::confirmation_sent_at(&app.db, subscriber.id).await?;
        if store::subscribers::confirmation_recent(sent_at, resend_after) {
            return Ok(());
        }
    }
    let subscriber = store::subscribers::find(&app.db, subscriber.id)
        .await?
        .context("The subscriber vanished")?;
    send_confirmation(app, &subscriber).await
}

#[derive(Serialize)]
struct ConfirmContext<'a> {
    name: Option<&'a str>,
    email: &'a str,
    confirm_url: String,
    expires_days: u32,
    frequency_text: &'static str,
}

/// Queues a confirmation mail with a fresh single-use token and wakes the outbox.
pub async fn send_confirmation(app: &App, subscriber: &Subscriber) -> anyhow::Result<()> {
    let now = Utc::now();
    let token = store::subscribers::new_token();
    let days = app.settings.subscribers.confirm_token_days;
    let mut ctx = tera::Context::new();
    ctx.insert("site", &app.site.site_view());
    ctx.extend(tera::Context::from_serialize(ConfirmContext {
        name: subscriber.name.as_deref(),
        email: subscriber.email.as_str(),
        confirm_url: app.settings.url_for(&format!("confirm/{token}")),
        expires_days: days,
        frequency_text: frequency_text(subscriber.frequency),
    })?);
    let templates = app.site.templates();
    let to = Mailbox::new(
        subscriber.name.clone(),
        subscriber
            .email
            .as_str()
            .parse()
            .context("The stored address is not a mailbox")?,
    );
    let key = format!("confirm.{}.{}", subscriber.id, uuid::Uuid::new_v4().simple());
    let (_, message) = app.composer.build(Outgoing {
        to,
        subject: format!("Confirm your subscription to {}", app.settings.site.title),
        html: compose::body(Composer::inline_css(&templates.render("email/confirm.html", &ctx)?)?),
        text: compose::body(templates.render("email/confirm.txt", &ctx)?),
        message_key: key.clone(),
        headers: vec![("Auto-Submitted", "auto-generated".into())],
    })?;
    let mail = NewMail {
        kind: "confirmation",
        subscriber_id: Some(subscriber.id),
        recipient: subscriber.email.as_str().to_owned(),
        message_id: app.composer.message_id(&key),
        message,
    };
    let expires = now + Duration::days(i64::from(days));
    store::outbox::queue_confirmation(
        &app.db,
        subscriber.id,
        &store::subscribers::token_hash(&token),
        expires,
        &mail,
        now,
    )
    .await?;
    app.outbox.wake();
    tracing::info!(subscriber = subscriber.id, "confirmation queued");
    Ok(())
}

/// Leaves the list. Idempotent; a suppressed address stays suppressed.
pub async fn unsubscribe(app: &App, subscriber: &Subscriber) -> anyhow::Result<()> {
    if matches!(
        subscriber.status,
        SubscriberStatus::Pending | SubscriberStatus::Confirmed
    ) {
        let patch = store::subscribers::SubscriberPatch {
            status: Some(SubscriberStatus::Unsubscribed),
            ..Default::default()
        };
        store::subscribers::update(&app.db, subscriber.id, &patch, Utc::now()).await?;
        tracing::info!(subscriber = subscriber.id, "unsubscribed");
    }
    Ok(())
}
