//! A reader's private feed (`/feeds/{token}.atom`): the posts of the topics they chose, for a
//! feed reader instead of an inbox. Made, renewed and revoked on the preferences page.
//! Uses the store and the site's feed building.

use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use chrono::Utc;
use serde::Deserialize;

use super::extract::{Form, Path};
use super::subscribe::{by_token, message, preferences_page, topics, unknown_link};
use super::{AppState, Result, public};
use crate::domain::{Post, Subscriber, SubscriberStatus};
use crate::site::CachedDocument;
use crate::store;

/// The reader's posts: those with one of their topics (all posts when they chose none), as
/// their digests would have them, newest first.
async fn posts_for(app: &AppState, subscriber: &Subscriber) -> anyhow::Result<Vec<Post>> {
    let now = Utc::now();
    let limit = app.settings.feeds.limit.get();
    if subscriber.topics.is_empty() {
        return store::posts::list_public(&app.db, now, None, limit, 0).await;
    }
    let mut posts: Vec<Post> = Vec::new();
    for topic in &subscriber.topics {
        posts.extend(store::posts::list_public(&app.db, now, Some(topic), limit, 0).await?);
    }
    posts.sort_by(|a, b| b.published_at.cmp(&a.published_at).then(b.id.cmp(&a.id)));
    posts.dedup_by_key(|p| p.id);
    posts.truncate(limit as usize);
    Ok(posts)
}

/// The feed: for a confirmed reader only. An unknown or revoked token is a 404; the feed of
/// a reader who left answers 410 Gone, which tells feed readers to stop asking.
pub async fn feed(State(app): State<AppState>, Path(file): Path<String>, headers: HeaderMap) -> Result<Response> {
    let Some(token) = file.strip_suffix(".atom") else {
        return public::not_found(&app);
    };
    let Some(subscriber) = store::reader_feeds::subscriber(&app.db, token).await? else {
        return public::not_found(&app);
    };
    if subscriber.status != SubscriberStatus::Confirmed {
        return message(
            &app,
            StatusCode::GONE,
            "This feed has ended",
            &["The subscription it belonged to has ended."],
            Some(("Subscribe", app.settings.url_for("subscribe"))),
        );
    }
    let posts = posts_for(&app, &subscriber).await?;
    let chosen: Vec<_> = topics(&app)
        .await?
        .into_iter()
        .filter(|t| subscriber.topics.iter().any(|s| s == t.slug()))
        .collect();
    let url = app.site.reader_feed_url(token);
    let doc = app.site.reader_feed(subscriber.id, &chosen, &url, &posts);
    let mut response = public::respond(&CachedDocument::fresh(doc), &headers).await?;
    let headers = response.headers_mut();
    // One reader's feed: no shared cache keeps it, no search engine lists it.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("private, max-age=300"));
    headers.insert(
        header::HeaderName::from_static("x-robots-tag"),
        HeaderValue::from_static("noindex, nofollow"),
    );
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("no-referrer"));
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct FeedAction {
    /// `new` (make one, or replace the one there is) or `revoke`.
    action: String,
}

/// Makes, renews or revokes the reader's feed, from their preferences page (same-origin
/// only, as that page's other form).
pub async fn change(
    State(app): State<AppState>,
    Path(token): Path<String>,
    Form(form): Form<FeedAction>,
) -> Result<Response> {
    let Some(s) = by_token(&app, &token).await? else {
        return unknown_link(&app);
    };
    match form.action.as_str() {
        "new" if s.status == SubscriberStatus::Confirmed => {
            let token = store::reader_feeds::renew(&app.db, s.id, Utc::now()).await?;
            let url = app.site.reader_feed_url(&token);
            let notice = "Your private feed is ready. Copy its address into your feed reader now: \
                          it is shown only this once. Any earlier address no longer works.";
            preferences_page(&app, &s, Some(notice), None, Some(&url)).await
        }
        "new" => {
            preferences_page(
                &app,
                &s,
                None,
                Some("A feed is for confirmed subscriptions only."),
                None,
            )
            .await
        }
        "revoke" => {
            let notice = if store::reader_feeds::revoke(&app.db, s.id).await? {
                "Your private feed is revoked: its address no longer works."
            } else {
                "You have no private feed."
            };
            preferences_page(&app, &s, Some(notice), None, None).await
        }
        _ => preferences_page(&app, &s, None, Some("Choose to make a feed or to revoke it."), None).await,
    }
}
