//! `/r/{token}`: the tracked links of digests (`[tracking] clicks`). Records the click and
//! redirects, only ever to a link the token's edition carried; anything else is a 404 page.
//! Uses the store and `domain::click`.

use axum::extract::State;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;

use super::extract::Path;
use super::subscribe::message;
use super::{AppState, Result};
use crate::domain::click::{self, ClickToken};
use crate::store::{self, clicks::EditionLink};

/// The link a token opens: its link must be one of an edition's, and a reader's part must
/// carry that edition's signature for that reader. Returns the link and who clicked.
async fn resolve(app: &AppState, token: &str) -> anyhow::Result<Option<(EditionLink, Option<i64>)>> {
    let Some(parsed) = ClickToken::parse(token) else {
        return Ok(None);
    };
    let Some(link) = store::clicks::find_link(&app.db, parsed.link).await? else {
        return Ok(None);
    };
    let reader = match parsed.reader {
        None => None,
        Some((id, signature)) => {
            let key = store::clicks::signing_key(&app.db).await?;
            if !click::reader_signed(&key, link.edition_id, id, signature) {
                return Ok(None);
            }
            Some(id)
        }
    };
    Ok(Some((link, reader)))
}

/// Redirects a tracked link to where it leads, recording the click. A HEAD request (what
/// some link checkers send) is answered the same but not counted; link scanners that GET
/// every link of a message are counted (see the README).
pub async fn redirect(State(app): State<AppState>, method: Method, Path(token): Path<String>) -> Result<Response> {
    let Some((link, reader)) = resolve(&app, &token).await? else {
        return not_ours(&app);
    };
    // A URL with characters a header cannot carry goes out percent-encoded.
    let Some(location) = url::Url::parse(&link.url)
        .ok()
        .and_then(|u| HeaderValue::from_str(u.as_str()).ok())
    else {
        return not_ours(&app);
    };
    let tracking = app.settings.tracking;
    if method == Method::GET && tracking.clicks {
        let reader = reader.filter(|_| tracking.names_readers());
        store::clicks::record(&app.db, &link, reader, Utc::now()).await?;
    }
    Ok((
        StatusCode::FOUND,
        [
            (header::LOCATION, location),
            // Every click comes back here rather than to a cached answer.
            (header::CACHE_CONTROL, HeaderValue::from_static("no-store")),
            // The token names its reader: the site the link leads to need not see it.
            (header::REFERRER_POLICY, HeaderValue::from_static("no-referrer")),
            (
                header::HeaderName::from_static("x-robots-tag"),
                HeaderValue::from_static("noindex"),
            ),
        ],
    )
        .into_response())
}

fn not_ours(app: &AppState) -> Result<Response> {
    message(
        app,
        StatusCode::NOT_FOUND,
        "This link does not lead anywhere",
        &[
            "It is not one of the links in our newsletters, or it was copied incompletely. \
             Nothing was opened.",
        ],
        Some(("Go to the home page", app.settings.url_for(""))),
    )
}

/// An edition's clicks as the console and the API show them.
#[derive(Debug, serde::Serialize)]
pub(super) struct ClickReport {
    /// What `[tracking]` records now: `off`, `anonymous` or `named`.
    tracking: &'static str,
    /// Every click on the edition's links.
    clicks: i64,
    /// Readers who clicked; `None` while clicks are anonymous (nobody is recorded).
    unique_clickers: Option<i64>,
    /// Messages of the edition delivered (sent).
    delivered: i64,
    /// Unique clickers / delivered; `None` without either.
    click_rate: Option<f64>,
    /// The same as a percentage for people (`12.5 %`).
    click_rate_text: Option<String>,
    /// Each link of the edition, most clicked first.
    links: Vec<store::clicks::LinkClicks>,
}

impl ClickReport {
    pub(super) async fn load(app: &AppState, edition_id: i64, delivered: i64) -> anyhow::Result<Self> {
        let figures = store::clicks::for_edition(&app.db, edition_id).await?;
        let t = app.settings.tracking;
        let tracking = match t {
            t if !t.clicks => "off",
            t if t.anonymous => "anonymous",
            _ => "named",
        };
        let unique_clickers = (!t.anonymous).then_some(figures.unique_clickers);
        let click_rate = unique_clickers
            .filter(|_| delivered > 0)
            .map(|u| u as f64 / delivered as f64);
        Ok(Self {
            tracking,
            clicks: figures.clicks,
            unique_clickers,
            delivered,
            click_rate,
            click_rate_text: click_rate.map(|r| format!("{:.1} %", r * 100.0)),
            links: figures.links,
        })
    }
}
