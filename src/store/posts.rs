//! Posts and their tags.

use std::collections::HashMap;

use anyhow::Context;
use chrono::{DateTime, Utc};
use sqlx::QueryBuilder;

use super::{BeginWrite, Db, with_pool};
use crate::domain::{Post, PostDraft, PostSource, Slug, Tag};

/// What the store already knows about a post's source, for cheap change detection.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct SourceEntry {
    pub id: i64,
    pub slug: String,
    pub source: PostSource,
    pub content_hash: String,
    pub removed: bool,
}

/// What saving a draft did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Saved {
    Added,
    Updated,
}

/// A fingerprint of the published content: when it changes, rendered feeds and pages are stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContentStamp {
    pub total: i64,
    pub last_change: Option<DateTime<Utc>>,
    /// The earliest scheduled post not yet public: cached pages expire then.
    pub next_due: Option<DateTime<Utc>>,
}

#[derive(sqlx::FromRow)]
struct PostRow {
    id: i64,
    uid: String,
    slug: String,
    title: String,
    published_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    authors: String,
    summary: Option<String>,
    content_html: String,
    image: Option<String>,
    image_alt: Option<String>,
    draft: bool,
}

#[derive(sqlx::FromRow)]
struct TagRow {
    post_id: i64,
    tag: String,
    name: String,
}

/// The columns a [`PostRow`] reads.
macro_rules! post_columns {
    () => {
        "p.id, p.uid, p.slug, p.title, p.published_at, p.updated_at, p.authors, \
         p.summary, p.content_html, p.image, p.image_alt, p.draft"
    };
}

/// A query over public posts (`$1` is now): not drafts, not removed, date come.
macro_rules! public_posts_sql {
    ($select:expr, $join:literal, $extra:literal, $tail:literal) => {
        concat!(
            "select ",
            $select,
            " from posts p ",
            $join,
            " where not p.draft and p.removed_at is null and p.published_at <= $1 ",
            $extra,
            " ",
            $tail
        )
    };
}

/// Every post's source, removed posts included.
#[tracing::instrument(skip_all)]
pub async fn sources(db: &Db) -> anyhow::Result<Vec<SourceEntry>> {
    with_pool!(db, pool => {
        sqlx::query_as("select id, slug, source, content_hash, removed_at is not null as removed from posts")
            .fetch_all(pool)
            .await
    })
    .context("Failed to read the known post sources")
}

/// New posts per insert statement (14 values each: well under both backends' bind limits).
const INSERT_ROWS: usize = 200;
/// Tags per insert statement (4 values each).
const TAG_ROWS: usize = 500;

/// Inserts or updates each draft by slug in one transaction; a removed post comes back.
///
/// A new post whose date has come is noted public as it is inserted (with `archive` as
/// [`mark_public`] would set it at `now`), so a first import does not write every row twice.
/// New posts and all tags go in multi-row statements: a first import of thousands of posts
/// costs a few dozen statements, not five per post.
#[tracing::instrument(skip_all, fields(count = drafts.len()))]
pub async fn save_all(db: &Db, drafts: &[PostDraft], now: DateTime<Utc>, archive: bool) -> anyhow::Result<Vec<Saved>> {
    if drafts.is_empty() {
        return Ok(Vec::new());
    }
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await.context("Failed to start saving posts")?;
        let mut existing: HashMap<String, i64> = HashMap::new();
        for chunk in drafts.chunks(INSERT_ROWS * 4) {
            let mut query = QueryBuilder::new("select slug, id from posts where slug in (");
            let mut slugs = query.separated(", ");
            for draft in chunk {
                slugs.push_bind(draft.slug.as_str());
            }
            query.push(")");
            let rows: Vec<(String, i64)> = query.build_query_as().fetch_all(&mut *tx).await?;
            existing.extend(rows);
        }
        let mut outcomes = Vec::with_capacity(drafts.len());
        let mut new_posts = Vec::new();
        for draft in drafts {
            let Some(&id) = existing.get(draft.slug.as_str()) else {
                outcomes.push(Saved::Added);
                new_posts.push(draft);
                continue;
            };
            outcomes.push(Saved::Updated);
            sqlx::query(
                "update posts set title = $2, published_at = $3, updated_at = $4, authors = $5, \
                 summary = $6, content_html = $7, image = $8, image_alt = $9, draft = $10, \
                 source = $11, content_hash = $12, removed_at = null, changed_at = $13 where id = $1",
            )
            .bind(id)
            .bind(&draft.title)
            .bind(draft.published_at)
            .bind(draft.updated_at.unwrap_or(draft.published_at))
            .bind(serde_json::to_string(&draft.authors)?)
            .bind(&draft.summary)
            .bind(&draft.content_html)
            .bind(&draft.image)
            .bind(&draft.image_alt)
            .bind(draft.draft)
            .bind(&draft.source)
            .bind(&draft.content_hash)
            .bind(now)
            .execute(&mut *tx)
            .await
            .with_context(|| format!("Failed to update post {}", draft.slug))?;
            sqlx::query("delete from post_tags where post_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        for chunk in new_posts.chunks(INSERT_ROWS) {
            let mut query = QueryBuilder::new(
                "insert into posts (uid, slug, title, published_at, updated_at, authors, summary, \
                 content_html, image, image_alt, draft, source, content_hash, created_at, changed_at, \
                 public_at, archived) ",
            );
            let mut rows = Vec::with_capacity(chunk.len());
            for draft in chunk {
                rows.push((draft, serde_json::to_string(&draft.authors)?));
            }
            query.push_values(&rows, |mut row, (draft, authors)| {
                let public = !draft.draft && draft.published_at <= now;
                row.push_bind(format!("urn:uuid:{}", uuid::Uuid::new_v4()))
                    .push_bind(draft.slug.as_str())
                    .push_bind(&draft.title)
                    .push_bind(draft.published_at)
                    .push_bind(draft.updated_at.unwrap_or(draft.published_at))
                    .push_bind(authors)
                    .push_bind(&draft.summary)
                    .push_bind(&draft.content_html)
                    .push_bind(&draft.image)
                    .push_bind(&draft.image_alt)
                    .push_bind(draft.draft)
                    .push_bind(&draft.source)
                    .push_bind(&draft.content_hash)
                    .push_bind(now)
                    .push_bind(now)
                    .push_bind(public.then_some(now))
                    .push_bind(public && archive);
            });
            query.push(" returning slug, id");
            let inserted: Vec<(String, i64)> = query
                .build_query_as()
                .fetch_all(&mut *tx)
                .await
                .with_context(|| format!("Failed to insert {} posts, the first {}", chunk.len(), chunk[0].slug))?;
            existing.extend(inserted);
        }
        let tags: Vec<(i64, &Tag, i32)> = drafts
            .iter()
            .flat_map(|draft| {
                let id = existing[draft.slug.as_str()];
                let mut seen = std::collections::HashSet::new();
                draft
                    .tags
                    .iter()
                    .enumerate()
                    .filter(move |(_, tag)| seen.insert(tag.slug()))
                    .map(move |(position, tag)| (id, tag, position as i32))
            })
            .collect();
        for chunk in tags.chunks(TAG_ROWS) {
            let mut query = QueryBuilder::new("insert into post_tags (post_id, tag, name, position) ");
            query.push_values(chunk, |mut row, (id, tag, position)| {
                row.push_bind(*id).push_bind(tag.slug()).push_bind(tag.name()).push_bind(*position);
            });
            query.push(" on conflict (post_id, tag) do nothing");
            query.build().execute(&mut *tx).await.context("Failed to save the tags of posts")?;
        }
        tx.commit().await.context("Failed to commit saved posts")?;
        Ok(outcomes)
    })
}

/// Unpublishes posts whose source is gone; they stay in the store and come back if it returns.
#[tracing::instrument(skip_all, fields(count = ids.len()))]
pub async fn mark_removed(db: &Db, ids: &[i64], now: DateTime<Utc>) -> anyhow::Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    with_pool!(db, pool => {
        let mut tx = pool.begin_write().await?;
        let mut removed = 0;
        for id in ids {
            removed += sqlx::query(
                "update posts set removed_at = $2, changed_at = $2 where id = $1 and removed_at is null",
            )
            .bind(id)
            .bind(now)
            .execute(&mut *tx)
            .await
            .context("Failed to unpublish a post")?
            .rows_affected();
        }
        tx.commit().await?;
        Ok(removed)
    })
}

/// Public posts, newest first (ties broken by id), optionally only those with a tag.
#[tracing::instrument(skip_all)]
pub async fn list_public(
    db: &Db,
    now: DateTime<Utc>,
    tag: Option<&str>,
    limit: u32,
    offset: u32,
) -> anyhow::Result<Vec<Post>> {
    const PLAIN: &str = public_posts_sql!(
        post_columns!(),
        "",
        "",
        "order by p.published_at desc, p.id desc limit $2 offset $3"
    );
    const TAGGED: &str = public_posts_sql!(
        post_columns!(),
        "join post_tags t on t.post_id = p.id and t.tag = $4",
        "",
        "order by p.published_at desc, p.id desc limit $2 offset $3"
    );
    let rows: Vec<PostRow> = with_pool!(db, pool => {
        match tag {
            None => sqlx::query_as(PLAIN)
                .bind(now)
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .fetch_all(pool)
                .await,
            Some(tag) => sqlx::query_as(TAGGED)
                .bind(now)
                .bind(i64::from(limit))
                .bind(i64::from(offset))
                .bind(tag)
                .fetch_all(pool)
                .await,
        }
    })
    .context("Failed to list published posts")?;
    with_tags(db, rows).await
}

/// How many posts are public, optionally with a tag.
#[tracing::instrument(skip_all)]
pub async fn count_public(db: &Db, now: DateTime<Utc>, tag: Option<&str>) -> anyhow::Result<i64> {
    const PLAIN: &str = public_posts_sql!("count(*)", "", "", "");
    const TAGGED: &str = public_posts_sql!(
        "count(*)",
        "join post_tags t on t.post_id = p.id and t.tag = $2",
        "",
        ""
    );
    with_pool!(db, pool => {
        match tag {
            None => sqlx::query_scalar(PLAIN).bind(now).fetch_one(pool).await,
            Some(tag) => sqlx::query_scalar(TAGGED).bind(now).bind(tag).fetch_one(pool).await,
        }
    })
    .context("Failed to count published posts")
}

/// The public post with this slug, if there is one.
#[tracing::instrument(skip_all)]
pub async fn find_public(db: &Db, slug: &Slug, now: DateTime<Utc>) -> anyhow::Result<Option<Post>> {
    const SQL: &str = public_posts_sql!(post_columns!(), "", "and p.slug = $2", "");
    let rows: Vec<PostRow> = with_pool!(db, pool => {
        sqlx::query_as(SQL).bind(now).bind(slug.as_str()).fetch_all(pool).await
    })
    .with_context(|| format!("Failed to read post {slug}"))?;
    Ok(with_tags(db, rows).await?.pop())
}

/// The slug of every tag a post that is not removed carries (drafts and scheduled posts too).
#[tracing::instrument(skip_all)]
pub async fn known_topics(db: &Db) -> anyhow::Result<std::collections::BTreeSet<String>> {
    let tags: Vec<String> = with_pool!(db, pool => {
        sqlx::query_scalar(
            "select distinct t.tag from post_tags t join posts p on p.id = t.post_id where p.removed_at is null",
        )
        .fetch_all(pool)
        .await
    })
    .context("Failed to read the known topics")?;
    Ok(tags.into_iter().collect())
}

/// Where the public post with this slug comes from, if there is one.
#[tracing::instrument(skip_all)]
pub async fn public_source(db: &Db, slug: &Slug, now: DateTime<Utc>) -> anyhow::Result<Option<PostSource>> {
    const SQL: &str = public_posts_sql!("p.source", "", "and p.slug = $2", "");
    with_pool!(db, pool => {
        sqlx::query_scalar(SQL).bind(now).bind(slug.as_str()).fetch_optional(pool).await
    })
    .with_context(|| format!("Failed to read where post {slug} comes from"))
}

/// Where every public post comes from, by slug.
#[tracing::instrument(skip_all)]
pub async fn public_sources(db: &Db, now: DateTime<Utc>) -> anyhow::Result<Vec<(String, PostSource)>> {
    const SQL: &str = public_posts_sql!("p.slug, p.source", "", "", "order by p.slug");
    with_pool!(db, pool => {
        sqlx::query_as(SQL).bind(now).fetch_all(pool).await
    })
    .context("Failed to read where the public posts come from")
}

/// A link to another post: enough to name it and to date the page that links to it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct PostLink {
    pub slug: String,
    pub title: String,
    pub published_at: DateTime<Utc>,
}

impl From<&Post> for PostLink {
    fn from(post: &Post) -> Self {
        Self {
            slug: post.slug.as_str().to_owned(),
            title: post.title.clone(),
            published_at: post.published_at,
        }
    }
}

/// The public posts just before (older) and just after (newer) `post`, in the order of
/// the home page (date, then id).
#[tracing::instrument(skip_all)]
pub async fn neighbours(
    db: &Db,
    post: &Post,
    now: DateTime<Utc>,
) -> anyhow::Result<(Option<PostLink>, Option<PostLink>)> {
    const OLDER: &str = public_posts_sql!(
        "p.slug, p.title, p.published_at",
        "",
        "and (p.published_at < $2 or (p.published_at = $2 and p.id < $3))",
        "order by p.published_at desc, p.id desc limit 1"
    );
    const NEWER: &str = public_posts_sql!(
        "p.slug, p.title, p.published_at",
        "",
        "and (p.published_at > $2 or (p.published_at = $2 and p.id > $3))",
        "order by p.published_at asc, p.id asc limit 1"
    );
    with_pool!(db, pool => {
        let older = sqlx::query_as(OLDER)
            .bind(now)
            .bind(post.published_at)
            .bind(post.id)
            .fetch_optional(pool)
            .await?;
        let newer = sqlx::query_as(NEWER)
            .bind(now)
            .bind(post.published_at)
            .bind(post.id)
            .fetch_optional(pool)
            .await?;
        Ok::<_, sqlx::Error>((older, newer))
    })
    .with_context(|| format!("Failed to read the posts beside {}", post.slug))
}

/// A post by slug whether public or not yet (a draft, or dated in the future), for an
/// admin's preview; removed posts are gone.
#[tracing::instrument(skip_all)]
pub async fn find_for_preview(db: &Db, slug: &Slug) -> anyhow::Result<Option<Post>> {
    const SQL: &str = concat!(
        "select ",
        post_columns!(),
        " from posts p where p.slug = $1 and p.removed_at is null"
    );
    let rows: Vec<PostRow> = with_pool!(db, pool => {
        sqlx::query_as(SQL).bind(slug.as_str()).fetch_all(pool).await
    })
    .with_context(|| format!("Failed to read post {slug}"))?;
    Ok(with_tags(db, rows).await?.pop())
}

/// Every tag that has at least one public post, with that count, by slug.
#[tracing::instrument(skip_all)]
pub async fn public_tags(db: &Db, now: DateTime<Utc>) -> anyhow::Result<Vec<(Tag, i64)>> {
    const SQL: &str = "select t.tag, min(t.name) as name, count(*) as posts from post_tags t \
         join posts p on p.id = t.post_id \
         where not p.draft and p.removed_at is null and p.published_at <= $1 \
         group by t.tag order by t.tag";
    let rows: Vec<(String, String, i64)> = with_pool!(db, pool => {
        sqlx::query_as(SQL).bind(now).fetch_all(pool).await
    })
    .context("Failed to list tags")?;
    Ok(rows
        .into_iter()
        .map(|(slug, name, count)| (Tag::from_parts(slug, name), count))
        .collect())
}

/// The tag with this slug if a public post carries it.
pub async fn find_public_tag(db: &Db, slug: &str, now: DateTime<Utc>) -> anyhow::Result<Option<Tag>> {
    const SQL: &str = "select min(t.name) from post_tags t join posts p on p.id = t.post_id \
         where t.tag = $2 and not p.draft and p.removed_at is null and p.published_at <= $1";
    let name: Option<String> = with_pool!(db, pool => {
        sqlx::query_scalar(SQL).bind(now).bind(slug).fetch_one(pool).await
    })
    .context("Failed to read a tag")?;
    Ok(name.map(|name| Tag::from_parts(slug.to_owned(), name)))
}

/// The fingerprint of everything published, read in one query.
pub async fn stamp(db: &Db, now: DateTime<Utc>) -> anyhow::Result<ContentStamp> {
    const SQL: &str = "select count(*), max(changed_at), \
         min(case when published_at > $1 and not draft and removed_at is null then published_at end) \
         from posts";
    let (total, last_change, next_due): (i64, Option<DateTime<Utc>>, Option<DateTime<Utc>>) = with_pool!(db, pool => {
        sqlx::query_as(SQL).bind(now).fetch_one(pool).await
    })
    .context("Failed to read the content stamp")?;
    Ok(ContentStamp {
        total,
        last_change,
        next_due,
    })
}

async fn with_tags(db: &Db, rows: Vec<PostRow>) -> anyhow::Result<Vec<Post>> {
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    let tag_rows: Vec<TagRow> = with_pool!(db, pool => {
        let mut query = QueryBuilder::new("select post_id, tag, name from post_tags where post_id in (");
        let mut ids = query.separated(", ");
        for row in &rows {
            ids.push_bind(row.id);
        }
        query.push(") order by post_id, position");
        query.build_query_as().fetch_all(pool).await
    })
    .context("Failed to read the tags of posts")?;
    let mut tags: HashMap<i64, Vec<Tag>> = HashMap::new();
    for t in tag_rows {
        tags.entry(t.post_id).or_default().push(Tag::from_parts(t.tag, t.name));
    }
    rows.into_iter()
        .map(|r| {
            Ok(Post {
                id: r.id,
                uid: r.uid,
                slug: Slug::parse(&r.slug).with_context(|| format!("Stored slug {:?} is invalid", r.slug))?,
                title: r.title,
                published_at: r.published_at,
                updated_at: r.updated_at,
                authors: serde_json::from_str(&r.authors).unwrap_or_default(),
                summary: r.summary,
                content_html: r.content_html,
                image: r.image,
                image_alt: r.image_alt,
                draft: r.draft,
                tags: tags.remove(&r.id).unwrap_or_default(),
            })
        })
        .collect()
}

/// Notes the posts that have become public since the last look (their date has come and
/// they are not drafts). `archive` marks them as Herald's archive: never mailed as new.
#[tracing::instrument(skip_all)]
pub async fn mark_public(db: &Db, now: DateTime<Utc>, archive: bool) -> anyhow::Result<u64> {
    with_pool!(db, pool => {
        sqlx::query(
            "update posts set public_at = $1, archived = $2 \
             where public_at is null and not draft and removed_at is null and published_at <= $1",
        )
        .bind(now)
        .bind(archive)
        .execute(pool)
        .await
        .map(|r| r.rows_affected())
    })
    .context("Failed to note newly public posts")
}

/// Claims the posts public at `now` that no instance has announced to the WebSub hubs yet,
/// and returns their ids: each post is claimed once, whichever instance asks first.
#[tracing::instrument(skip_all)]
pub async fn claim_unannounced(db: &Db, now: DateTime<Utc>) -> anyhow::Result<Vec<i64>> {
    with_pool!(db, pool => {
        sqlx::query_scalar(
            "update posts set websub_announced_at = $1 \
             where websub_announced_at is null and not draft and removed_at is null and published_at <= $1 \
             returning id",
        )
        .bind(now)
        .fetch_all(pool)
        .await
    })
    .context("Failed to claim posts to announce")
}

/// The tag slugs of `ids`, each once, sorted.
pub async fn tag_slugs(db: &Db, ids: &[i64]) -> anyhow::Result<Vec<String>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    with_pool!(db, pool => {
        let mut query = QueryBuilder::new("select distinct tag from post_tags where post_id in (");
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        query.push(") order by tag");
        query.build_query_scalar().fetch_all(pool).await
    })
    .context("Failed to read the tags of posts")
}

/// Posts by id, in the order of `ids`, whatever their state.
pub async fn find_by_ids(db: &Db, ids: &[i64]) -> anyhow::Result<Vec<Post>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<PostRow> = with_pool!(db, pool => {
        let mut query = QueryBuilder::new(concat!("select ", post_columns!(), " from posts p where p.id in ("));
        let mut list = query.separated(", ");
        for id in ids {
            list.push_bind(*id);
        }
        query.push(")");
        query.build_query_as().fetch_all(pool).await
    })
    .context("Failed to read posts")?;
    let mut posts = with_tags(db, rows).await?;
    posts.sort_by_key(|p| ids.iter().position(|id| *id == p.id));
    Ok(posts)
}

/// What the store holds for an imported item.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Imported {
    pub slug: String,
    pub content_hash: String,
    pub published_at: DateTime<Utc>,
}

/// The post imported from `source`, if any (the oldest, should an older version of
/// Herald have made two).
pub async fn by_source(db: &Db, source: &PostSource) -> anyhow::Result<Option<Imported>> {
    with_pool!(db, pool => {
        sqlx::query_as("select slug, content_hash, published_at from posts where source = $1 order by id limit 1")
            .bind(source)
            .fetch_optional(pool)
            .await
    })
    .context("Failed to look up a post by its source")
}

/// Whether a post already has this slug.
pub async fn slug_taken(db: &Db, slug: &str) -> anyhow::Result<bool> {
    let n: i64 = with_pool!(db, pool => {
        sqlx::query_scalar("select count(*) from posts where slug = $1").bind(slug).fetch_one(pool).await
    })
    .context("Failed to check a slug")?;
    Ok(n > 0)
}
