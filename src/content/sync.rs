//! The posts folder into the store: new, changed and removed files, each failure reported by
//! file and line while the other posts still sync. Uses `domain` and `store`.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::Context;
use chrono::Utc;
use sha2::{Digest, Sha256};
use url::Url;
use walkdir::{DirEntry, WalkDir};

use super::{PostError, parse_post_file};
use crate::domain::{PostDraft, PostSource};
use crate::store::{self, Db};

/// Posts saved per transaction: large enough to be fast, small enough not to hold
/// the SQLite write lock for long.
const SAVE_BATCH: usize = 500;

/// A post file that could not be published, and why.
/// `site_meta` key recording when Herald first synced: posts public then are its archive.
pub const INITIAL_SYNC: &str = "initial_sync_at";

/// Bumped whenever rendering changes, so a re-sync re-renders every post once.
pub const RENDER_VERSION: &str = "herald-render-3";

pub type SyncFailure = PostError;

/// What a sync did, by count.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub added: usize,
    pub updated: usize,
    pub unchanged: usize,
    pub unpublished: usize,
    pub failed: Vec<SyncFailure>,
}

impl std::fmt::Display for SyncReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} added, {} updated, {} unchanged, {} unpublished, {} failed",
            self.added,
            self.updated,
            self.unchanged,
            self.unpublished,
            self.failed.len()
        )
    }
}

/// A post file as this sync found it.
enum Read {
    /// Same content as stored: nothing to parse; it keeps this slug.
    Unchanged(String),
    Draft(Box<PostDraft>),
}

/// Who holds a slug, for the message to the file that wanted it.
fn describe_source(posts_dir: &Path, source: &PostSource) -> String {
    match source {
        PostSource::File(relative) => posts_dir.join(relative).display().to_string(),
        PostSource::Feed(item) => format!("a post imported from {item}"),
    }
}

struct FileRead {
    path: PathBuf,
    source: PostSource,
    hash: String,
    /// The text, or the line a problem is on and what it is.
    text: Result<String, (usize, String)>,
}

/// Every `.md` file under `dir` (recursively), sorted so runs are repeatable. Files and
/// folders whose names start with a dot are left out, and symbolic links to folders are
/// not followed.
fn post_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let hidden = |e: &DirEntry| e.depth() > 0 && e.file_name().to_string_lossy().starts_with('.');
    let mut files = Vec::new();
    for entry in WalkDir::new(dir).into_iter().filter_entry(|e| !hidden(e)) {
        let entry = entry.map_err(|e| {
            let folder = e.path().unwrap_or(dir).display().to_string();
            anyhow::Error::new(e).context(format!("Failed to read the posts folder {folder}"))
        })?;
        if !entry.file_type().is_dir() && entry.path().extension().is_some_and(|e| e == "md") {
            files.push(entry.into_path());
        }
    }
    files.sort();
    Ok(files)
}

fn read_files(dir: &Path, base_url: &Url) -> anyhow::Result<Vec<FileRead>> {
    let files = post_files(dir)?;
    Ok(files
        .into_iter()
        .map(|path| {
            let relative = path
                .strip_prefix(dir)
                .unwrap_or(&path)
                .to_string_lossy()
                .replace('\\', "/");
            let bytes = std::fs::read(&path);
            let mut hasher = Sha256::new();
            hasher.update(RENDER_VERSION);
            hasher.update([0]);
            hasher.update(base_url.as_str());
            hasher.update([0]);
            if let Ok(b) = &bytes {
                hasher.update(b);
            }
            let text = match bytes {
                Ok(b) => String::from_utf8(b).map_err(|e| {
                    // Where an editor shows the bad byte: its line, and its column in bytes.
                    let valid = &e.as_bytes()[..e.utf8_error().valid_up_to()];
                    let line = valid.iter().filter(|b| **b == b'\n').count() + 1;
                    let column = valid.len() - valid.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1) + 1;
                    (
                        line,
                        format!("the file is not UTF-8 text (column {column}); save it as UTF-8"),
                    )
                }),
                Err(e) => Err((1, format!("cannot read the file: {e}"))),
            };
            FileRead {
                source: PostSource::File(relative),
                hash: hex::encode(hasher.finalize()),
                path,
                text,
            }
        })
        .collect())
}

/// Parses the files, in their order, on every core.
fn parse_all(files: Vec<FileRead>, base_url: &Url) -> Vec<Result<Read, PostError>> {
    let parse = |file: FileRead| {
        let parsed = file.text.map_err(|(line, message)| PostError {
            path: file.path.clone(),
            line,
            message,
        });
        parsed
            .and_then(|text| parse_post_file(&file.path, &text, base_url, file.source, file.hash))
            .map(|d| Read::Draft(Box::new(d)))
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    if threads <= 1 || files.len() < 64 {
        return files.into_iter().map(parse).collect();
    }
    let per_thread = files.len().div_ceil(threads);
    let mut chunks: Vec<Vec<FileRead>> = Vec::new();
    let mut files = files.into_iter().peekable();
    while files.peek().is_some() {
        chunks.push(files.by_ref().take(per_thread).collect());
    }
    std::thread::scope(|scope| {
        let parse = &parse;
        let handles: Vec<_> = chunks
            .into_iter()
            .map(|chunk| scope.spawn(move || chunk.into_iter().map(parse).collect::<Vec<_>>()))
            .collect();
        handles
            .into_iter()
            .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
            .collect()
    })
}

/// Notes posts that have become public. Those public at Herald's very first import are its
/// archive: setting Herald up on an existing blog mails nobody. Whatever becomes public
/// later is news.
pub async fn note_public(db: &Db, now: chrono::DateTime<Utc>) -> anyhow::Result<()> {
    let first_sync = first_sync(db).await?;
    store::posts::mark_public(db, now, first_sync).await?;
    if first_sync {
        store::meta_set_once(db, INITIAL_SYNC, &now.to_rfc3339()).await?;
    }
    Ok(())
}

/// Whether Herald has never synced: what is public now is its archive (see [`note_public`]).
pub async fn first_sync(db: &Db) -> anyhow::Result<bool> {
    Ok(store::meta_get(db, INITIAL_SYNC).await?.is_none())
}

/// Reads every post file under the posts folder and brings the store in line with it.
///
/// Unchanged files (same content hash) are skipped without parsing. A broken file is
/// reported with its path and line and its last good version, if any, stays
/// published; every other post still syncs. A post whose file is gone is unpublished.
#[tracing::instrument(skip_all, fields(dir = %posts_dir.display()))]
pub async fn sync_posts(db: &Db, posts_dir: &Path, base_url: &Url) -> anyhow::Result<SyncReport> {
    let dir = posts_dir.to_path_buf();
    let base = base_url.clone();
    let files = tokio::task::spawn_blocking(move || read_files(&dir, &base))
        .await
        .context("The posts reader stopped")??;

    // Every post, whatever its source: a file may not take a slug a remote post holds either.
    let known = store::posts::sources(db).await?;
    let by_source: HashMap<&PostSource, &store::posts::SourceEntry> = known
        .iter()
        .filter(|e| e.source.is_file())
        .map(|e| (&e.source, e))
        .collect();
    let mut report = SyncReport::default();
    let mut kept_sources: HashSet<PostSource> = HashSet::new();
    let mut reads: Vec<(PathBuf, Option<Result<Read, PostError>>)> = Vec::new();
    let mut to_parse: Vec<FileRead> = Vec::new();

    for file in files {
        // A broken file keeps its last good version: its source counts as present.
        kept_sources.insert(file.source.clone());
        if let Some(entry) = by_source.get(&file.source)
            && entry.content_hash == file.hash
            && !entry.removed
        {
            reads.push((file.path, Some(Ok(Read::Unchanged(entry.slug.clone())))));
            continue;
        }
        reads.push((file.path.clone(), None));
        to_parse.push(file);
    }
    // Parsing renders and sanitises the Markdown: the costly part, spread over the cores.
    let base = base_url.clone();
    let mut parsed = tokio::task::spawn_blocking(move || parse_all(to_parse, &base))
        .await
        .context("The posts parser stopped")?
        .into_iter();
    let reads: Vec<(PathBuf, Result<Read, PostError>)> = reads
        .into_iter()
        .map(|(path, read)| {
            let read = read.or_else(|| parsed.next()).expect("one parse per file not skipped");
            (path, read)
        })
        .collect();

    // A published post keeps its slug unless its file is gone or now names another slug
    // (a rename: the file that takes the slug over in the same sync is the post moved).
    // Otherwise no newcomer may take the slug, and with it the post's URL and feed id.
    let drafted: HashMap<&PostSource, &str> = reads
        .iter()
        .filter_map(|(_, r)| match r {
            Ok(Read::Draft(d)) => Some((&d.source, d.slug.as_str())),
            _ => None,
        })
        .collect();
    let holders: HashMap<&str, &store::posts::SourceEntry> = known
        .iter()
        .filter(|e| !e.removed)
        .filter(|e| {
            !e.source.is_file()
                || (kept_sources.contains(&e.source) && drafted.get(&e.source).is_none_or(|slug| *slug == e.slug))
        })
        .map(|e| (e.slug.as_str(), e))
        .collect();

    let mut claimed_slugs: HashMap<String, PathBuf> = HashMap::new();
    let mut to_save: Vec<PostDraft> = Vec::new();
    for (path, read) in reads {
        let draft = match read {
            Ok(Read::Unchanged(slug)) => {
                report.unchanged += 1;
                claimed_slugs.insert(slug, path);
                continue;
            }
            Ok(Read::Draft(draft)) => *draft,
            Err(e) => {
                report.failed.push(e);
                continue;
            }
        };
        let owner = match holders.get(draft.slug.as_str()) {
            Some(holder) if holder.source != draft.source => Some(describe_source(posts_dir, &holder.source)),
            _ => claimed_slugs.get(draft.slug.as_str()).map(|p| p.display().to_string()),
        };
        if let Some(owner) = owner {
            report.failed.push(PostError {
                path,
                line: 1,
                message: format!(
                    "slug {:?} is already used by {owner}; give this post another slug",
                    draft.slug.as_str()
                ),
            });
            continue;
        }
        claimed_slugs.insert(draft.slug.as_str().to_owned(), path);
        to_save.push(draft);
    }

    let now = Utc::now();
    let archive = first_sync(db).await?;
    for batch in to_save.chunks(SAVE_BATCH) {
        for saved in store::posts::save_all(db, batch, now, archive).await? {
            match saved {
                store::posts::Saved::Added => report.added += 1,
                store::posts::Saved::Updated => report.updated += 1,
            }
        }
    }

    // Gone: the file disappeared, or it now names another slug.
    let new_slugs: HashMap<&PostSource, &str> = to_save.iter().map(|d| (&d.source, d.slug.as_str())).collect();
    let gone: Vec<i64> = by_source
        .values()
        .filter(|e| !e.removed && !claimed_slugs.contains_key(&e.slug))
        .filter(|e| !kept_sources.contains(&e.source) || new_slugs.get(&e.source).is_some_and(|slug| *slug != e.slug))
        .map(|e| e.id)
        .collect();
    report.unpublished = store::posts::mark_removed(db, &gone, now).await? as usize;
    note_public(db, now).await?;

    tracing::info!(%report, "posts synced");
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn post_files_are_the_visible_md_files_in_order() {
        let tmp = tempfile::tempdir().unwrap();
        // The posts folder's own name may start with a dot; only what is inside it counts.
        let dir = tmp.path().join(".posts");
        for file in [
            "b.md",
            "a.md",
            "notes.txt",
            ".draft.md",
            ".git/config.md",
            "2026/09/otters.md",
            "2026/.hidden/x.md",
            "folder.md/inner.md",
        ] {
            let path = dir.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, "x").unwrap();
        }
        // A link to a folder is not followed (its posts would be found twice); a link to a file is a file.
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(dir.join("2026"), dir.join("linked")).unwrap();
            std::os::unix::fs::symlink(dir.join("a.md"), dir.join("c.md")).unwrap();
        }
        let found: Vec<String> = post_files(&dir)
            .unwrap()
            .iter()
            .map(|p| p.strip_prefix(&dir).unwrap().to_string_lossy().replace('\\', "/"))
            .collect();
        let mut expected = vec!["2026/09/otters.md", "a.md", "b.md", "folder.md/inner.md"];
        if cfg!(unix) {
            expected.insert(3, "c.md");
        }
        assert_eq!(found, expected);
    }

    #[test]
    fn a_missing_posts_folder_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        let missing = tmp.path().join("nowhere");
        let err = post_files(&missing).unwrap_err().to_string();
        assert_eq!(err, format!("Failed to read the posts folder {}", missing.display()));
    }
}
