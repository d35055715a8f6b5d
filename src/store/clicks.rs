//! Clicks on digest links (`[tracking] clicks`): each edition's links with the random token
//! of their tracked address, the clicks on them, and the figures per edition.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{BeginWrite, Db, with_pool};
use crate::domain::click::new_link_token;

/// The `site_meta` key of the secret that signs readers into tracked links.
const SIGNING_KEY: &str = "click_signing_key";

/// The installation's key for signing readers into tracked links, made on first use. Every
/// instance reads the same one, so any of them answers a link another one wrote.
#[tracing::instrument(skip_all)]
pub async fn signing_key(db: &Db) -> anyhow::Result<Vec<u8>> {
    if let Some(key) = super::meta_get(db, SIGNING_KEY).await? {
        return hex::decode(key).context("The stored click signing key is not hex");
    }
    let fresh: [u8; 32] = rand::random();
    super::meta_set_once(db, SIGNING_KEY, &hex::encode(fresh)).await?;
    let key = super::meta_get(db, SIGNING_KEY)
        .await?
        .context("The click signing key vanished right after it was stored")?;
    hex::decode(key).context("The stored click signing key is not hex")
}

/// Records `urls` as links of the edition (once each, whoever asks first) and returns every
/// link of the edition with its token.
#[tracing::instrument(skip_all)]
pub async fn register_links(
    db: &Db,
    edition_id: i64,
    urls: &[String],
    now: DateTime<Utc>,
) -> anyhow::Result<HashMap<String, String>> {
    let rows: Vec<(String, String)> = with_pool!(db, pool => {
        async {
            let mut tx = pool.begin_write().await?;
            for url in urls {
                sqlx::query(
                    "insert into edition_links (edition_id, url, token, created_at) values ($1, $2, $3, $4) \
                     on conflict (edition_id, url) do nothing",
                )
                .bind(edition_id)
                .bind(url)
                .bind(new_link_token())
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            let rows = sqlx::query_as("select url, token from edition_links where edition_id = $1")
                .bind(edition_id)
                .fetch_all(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(rows)
        }
        .await
    })
    .with_context(|| format!("Failed to store the links of edition {edition_id}"))?;
    Ok(rows.into_iter().collect())
}

/// One of an edition's links, found by its token.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct EditionLink {
    pub id: i64,
    pub edition_id: i64,
    pub url: String,
}

/// The link whose tracked address carries `token`.
#[tracing::instrument(skip_all)]
pub async fn find_link(db: &Db, token: &str) -> anyhow::Result<Option<EditionLink>> {
    with_pool!(db, pool => {
        sqlx::query_as("select id, edition_id, url from edition_links where token = $1")
            .bind(token)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to look up a tracked link")
}

/// Records a click on `link`, by `subscriber_id` when the click names its reader (a reader
/// erased since is left out).
#[tracing::instrument(skip_all)]
pub async fn record(db: &Db, link: &EditionLink, subscriber_id: Option<i64>, now: DateTime<Utc>) -> anyhow::Result<()> {
    with_pool!(db, pool => {
        sqlx::query(
            "insert into link_clicks (link_id, edition_id, subscriber_id, clicked_at) \
             values ($1, $2, (select id from subscribers where id = $3), $4)",
        )
        .bind(link.id)
        .bind(link.edition_id)
        .bind(subscriber_id)
        .bind(now)
        .execute(pool)
        .await
        .map(|_| ())
    })
    .context("Failed to record a click")?;
    Ok(())
}

/// Clicks on one of an edition's links.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct LinkClicks {
    pub url: String,
    /// Every click (a reader clicking twice counts twice).
    pub clicks: i64,
    /// Readers who clicked it; 0 when clicks are anonymous.
    pub unique_clickers: i64,
}

/// An edition's clicks.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EditionClicks {
    pub edition_id: i64,
    pub clicks: i64,
    /// Readers who clicked at least one link; anonymous clicks name none.
    pub unique_clickers: i64,
    /// Every link the edition carried, most clicked first (ties by address).
    pub links: Vec<LinkClicks>,
}

/// The clicks of one edition.
#[tracing::instrument(skip_all)]
pub async fn for_edition(db: &Db, edition_id: i64) -> anyhow::Result<EditionClicks> {
    let (links, unique): (Vec<LinkClicks>, i64) = with_pool!(db, pool => {
        async {
            let links = sqlx::query_as(
                "select l.url, count(c.id) as clicks, count(distinct c.subscriber_id) as unique_clickers \
                 from edition_links l left join link_clicks c on c.link_id = l.id \
                 where l.edition_id = $1 group by l.id, l.url order by count(c.id) desc, l.url",
            )
            .bind(edition_id)
            .fetch_all(pool)
            .await?;
            let unique = sqlx::query_scalar(
                "select count(distinct subscriber_id) from link_clicks where edition_id = $1",
            )
            .bind(edition_id)
            .fetch_one(pool)
            .await?;
            Ok::<_, sqlx::Error>((links, unique))
        }
        .await
    })
    .with_context(|| format!("Failed to count the clicks of edition {edition_id}"))?;
    Ok(EditionClicks {
        edition_id,
        clicks: links.iter().map(|l| l.clicks).sum(),
        unique_clickers: unique,
        links,
    })
}

/// Clicks and unique clickers of several editions at once (for charts): one entry per
/// edition asked for, in the order asked, without the per-link figures.
#[tracing::instrument(skip_all)]
pub async fn per_edition(db: &Db, edition_ids: &[i64]) -> anyhow::Result<Vec<EditionClicks>> {
    let mut out = Vec::with_capacity(edition_ids.len());
    // Few editions at a time (a chart's worth); one small query each keeps both backends'
    // SQL plain.
    for &edition_id in edition_ids {
        let (clicks, unique_clickers): (i64, i64) = with_pool!(db, pool => {
            sqlx::query_as(
                "select count(*), count(distinct subscriber_id) from link_clicks where edition_id = $1",
            )
            .bind(edition_id)
            .fetch_one(pool)
            .await
        })
        .with_context(|| format!("Failed to count the clicks of edition {edition_id}"))?;
        out.push(EditionClicks {
            edition_id,
            clicks,
            unique_clickers,
            links: Vec::new(),
        });
    }
    Ok(out)
}
