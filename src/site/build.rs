//! `herald build --out DIR`: every page and feed written as files, with the static folder
//! and the page bundles' files, laid out so any static host serves them at the same URLs
//! as `herald serve`.
//!
//! A build touches only what changed: a file whose bytes are already in place is left
//! alone (its mtime too, so rsync and static hosts see nothing new), and a file that an
//! earlier build wrote and this one no longer produces is removed. Which files are
//! Herald's is kept in a manifest in the output folder ([`MARKER`]); any other file there
//! is the user's and is never touched.

use std::collections::{HashMap, HashSet};
use std::path::{Component, Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::{Context, bail};
use chrono::Utc;
use sha2::{Digest, Sha256};

use super::Site;
use super::files::{self, Folder};
use crate::domain::{Post, Tag};
use crate::feeds::FeedFormat;
use crate::store;
use crate::store::Db;
use crate::store::posts::PostLink;

/// A file in the output folder that marks it as Herald's, and lists the files Herald wrote.
const MARKER: &str = ".herald-build";

/// The first line of the manifest; the files Herald wrote follow, one relative path a line.
const MANIFEST_HEADER: &str =
    "Written by herald build; the files below are its own, replaced or removed by the next build.";

/// What the build produced and what it had to do for it.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    /// Files the site consists of.
    pub files: usize,
    /// Of those, files whose bytes changed (or were new) and were written.
    pub written: usize,
    /// Files an earlier build wrote that this one no longer produces, removed.
    pub removed: usize,
    pub posts: usize,
    pub tags: usize,
}

/// Writes files into the output folder in place, skipping those already as they should be.
/// Shared by the threads that render: counters are atomic, the list of paths is locked.
struct Writer {
    root: PathBuf,
    /// The files the earlier build wrote, with the key of what each was rendered from.
    previous: HashMap<String, Option<String>>,
    produced: Mutex<Vec<(String, Option<String>)>>,
    written: AtomicUsize,
}

impl Writer {
    /// Writes a page rendered from inputs that `key` sums up, unless the earlier build
    /// wrote it from the same inputs and it is still there: then it is not even rendered.
    fn write_keyed(
        &self,
        relative: &str,
        key: String,
        render: impl FnOnce() -> anyhow::Result<String>,
    ) -> anyhow::Result<()> {
        if self.previous.get(relative).is_some_and(|k| k.as_ref() == Some(&key)) && self.root.join(relative).is_file() {
            self.produced
                .lock()
                .expect("no writer panics")
                .push((relative.to_owned(), Some(key)));
            return Ok(());
        }
        self.put(relative, Some(key), render()?.as_bytes())
    }

    fn write(&self, relative: &str, body: &[u8]) -> anyhow::Result<()> {
        self.put(relative, None, body)
    }

    fn put(&self, relative: &str, key: Option<String>, body: &[u8]) -> anyhow::Result<()> {
        let path = self.root.join(relative);
        self.produced
            .lock()
            .expect("no writer panics")
            .push((relative.to_owned(), key));
        match std::fs::metadata(&path) {
            // Same size: compare the bytes before deciding to write.
            Ok(meta) if meta.is_file() && meta.len() == body.len() as u64 => {
                if std::fs::read(&path).is_ok_and(|old| old == body) {
                    return Ok(());
                }
                self.replace(&path, body)?;
            }
            Ok(meta) if meta.is_file() => self.replace(&path, body)?,
            Ok(_) => bail!("{} is in the way of a file the build writes", path.display()),
            Err(_) => {
                // A new file: nobody is reading it yet, so it is written in place (no
                // temporary file, no rename, no fsync: a build can always be run again).
                if let Some(parent) = path.parent() {
                    std::fs::create_dir_all(parent)
                        .with_context(|| format!("Failed to create {}", parent.display()))?;
                }
                std::fs::write(&path, body).with_context(|| format!("Failed to write {}", path.display()))?;
            }
        }
        self.written.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// A file a web server may be sending right now: the new bytes go to a temporary file
    /// beside it that is renamed over it, so no reader sees half of each.
    fn replace(&self, path: &Path, body: &[u8]) -> anyhow::Result<()> {
        let name = path.file_name().map(|n| n.to_string_lossy()).unwrap_or_default();
        let temporary = path.with_file_name(format!(".{name}.herald-{}", std::process::id()));
        std::fs::write(&temporary, body).with_context(|| format!("Failed to write {}", temporary.display()))?;
        std::fs::rename(&temporary, path).with_context(|| format!("Failed to replace {}", path.display()))
    }

    /// Copies the publishable files of a static folder or bundle to `prefix` in the output.
    fn copy_folder(&self, root: &Path, folder: Folder, prefix: &str) -> anyhow::Result<()> {
        for (relative, file) in files::publishable(root, folder)? {
            let body = std::fs::read(&file).with_context(|| format!("Failed to read {}", file.display()))?;
            self.write(&format!("{prefix}{relative}"), &body)?;
        }
        Ok(())
    }
}

/// A relative path read back from a manifest, if it stays inside the output folder.
fn safe_relative(line: &str) -> Option<&str> {
    let plain = !line.is_empty() && Path::new(line).components().all(|c| matches!(c, Component::Normal(_)));
    (plain && line != MARKER).then_some(line)
}

/// A manifest line: a path, and after a tab the key of what the file was rendered from.
fn manifest_entry(line: &str) -> Option<(String, Option<String>)> {
    let (path, key) = match line.rsplit_once('\t') {
        Some((path, key)) if key.len() == 64 && key.bytes().all(|b| b.is_ascii_hexdigit()) => (path, Some(key)),
        _ => (line, None),
    };
    safe_relative(path).map(|p| (p.to_owned(), key.map(str::to_owned)))
}

/// The files an earlier build wrote into `out`. A folder written by a Herald that kept no
/// manifest was replaced whole by each build, so every file in it was Herald's.
fn previous_files(out: &Path) -> anyhow::Result<HashMap<String, Option<String>>> {
    let marker = out.join(MARKER);
    let Ok(text) = std::fs::read_to_string(&marker) else {
        return Ok(HashMap::new());
    };
    let mut lines = text.lines();
    if lines.next() == Some(MANIFEST_HEADER) {
        return Ok(lines.filter_map(manifest_entry).collect());
    }
    let mut all = HashMap::new();
    for entry in walkdir::WalkDir::new(out).min_depth(1) {
        let entry = entry.with_context(|| format!("Failed to read {}", out.display()))?;
        if entry.file_type().is_file()
            && let Ok(relative) = entry.path().strip_prefix(out)
            && let Some(relative) = relative.to_str().and_then(safe_relative)
        {
            all.insert(relative.to_owned(), None);
        }
    }
    Ok(all)
}

/// Removes a file an earlier build wrote, and the folders it leaves empty.
fn remove_stale(out: &Path, relative: &str) -> anyhow::Result<bool> {
    let path = out.join(relative);
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e).with_context(|| format!("Failed to remove {}", path.display())),
    }
    let mut folder = path.parent();
    while let Some(dir) = folder
        && dir != out
        && std::fs::remove_dir(dir).is_ok()
    {
        folder = dir.parent();
    }
    Ok(true)
}

/// Writes the manifest, through a temporary file: it decides what the next build deletes.
fn write_manifest(out: &Path, files: &[(String, Option<String>)]) -> anyhow::Result<()> {
    let mut text = String::with_capacity(files.iter().map(|(f, _)| f.len() + 66).sum::<usize>() + 128);
    text.push_str(MANIFEST_HEADER);
    text.push('\n');
    for (file, key) in files {
        if file.contains(['\n', '\r']) {
            continue;
        }
        text.push_str(file);
        if let Some(key) = key.as_ref().filter(|_| !file.contains('\t')) {
            text.push('\t');
            text.push_str(key);
        }
        text.push('\n');
    }
    let path = out.join(MARKER);
    if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
        return Ok(());
    }
    let temporary = out.join(format!("{MARKER}.{}", std::process::id()));
    std::fs::write(&temporary, text).with_context(|| format!("Failed to write {}", temporary.display()))?;
    std::fs::rename(&temporary, &path).with_context(|| format!("Failed to write {}", path.display()))
}

/// Brings `out` in line with the site: writes the files that are new or changed, leaves
/// the others alone, and removes the files an earlier build wrote that the site no longer
/// has. Files in `out` that Herald did not write are kept; a folder that holds such files
/// and was never written by Herald is refused.
pub async fn build(db: &Db, site: &Site, out: &Path) -> anyhow::Result<ExportReport> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() && !out.join(MARKER).exists() {
        bail!(
            "{} is not empty and was not written by herald build; choose an empty or new folder",
            out.display()
        );
    }
    std::fs::create_dir_all(out).with_context(|| format!("Failed to create {}", out.display()))?;
    let writer = Writer {
        root: out.to_path_buf(),
        previous: previous_files(out)?,
        produced: Mutex::new(Vec::new()),
        written: AtomicUsize::new(0),
    };
    let result = write_all(db, site, &writer).await;
    let mut produced = writer.produced.into_inner().expect("no writer panics");
    produced.sort_unstable();
    produced.dedup_by(|a, b| a.0 == b.0);
    let previous = writer.previous;
    let report = match result {
        Ok(report) => report,
        Err(e) => {
            // Whatever this build wrote and the earlier one listed stays Herald's to remove;
            // the keys are dropped, so every page is rendered again next time.
            let mut all: Vec<(String, Option<String>)> = previous
                .into_keys()
                .chain(produced.into_iter().map(|(f, _)| f))
                .map(|f| (f, None))
                .collect();
            all.sort_unstable();
            all.dedup();
            let _ = write_manifest(out, &all);
            return Err(e);
        }
    };
    let keep: HashSet<&str> = produced.iter().map(|(f, _)| f.as_str()).collect();
    let mut removed = 0;
    for stale in previous.keys().filter(|f| !keep.contains(f.as_str())) {
        removed += usize::from(remove_stale(out, stale)?);
    }
    write_manifest(out, &produced)?;
    Ok(ExportReport {
        files: produced.len(),
        written: writer.written.into_inner(),
        removed,
        ..report
    })
}

/// What every page's key starts from: the program, the templates, the settings and the
/// site's identity. A new binary or an edited template renders every page again.
fn build_key(site: &Site) -> Vec<u8> {
    let mut hasher = Sha256::new();
    if let Ok(exe) = std::env::current_exe()
        && let Ok(meta) = std::fs::metadata(&exe)
    {
        hasher.update(format!("{} {} {:?}", exe.display(), meta.len(), meta.modified().ok()));
    }
    hasher.update(env!("CARGO_PKG_VERSION"));
    hasher.update(site.templates.fingerprint());
    hasher.update(format!("{:?}", site.settings));
    hasher.update(site.site_uuid.as_bytes());
    hasher.finalize().to_vec()
}

/// A hash of everything a page may show of a post.
fn post_digest(post: &Post) -> anyhow::Result<[u8; 32]> {
    let mut hasher = Sha256::new();
    serde_json::to_writer(HashWriter(&mut hasher), post)?;
    Ok(hasher.finalize().into())
}

/// The key of a post's page: the post and its neighbours' links, on top of [`build_key`].
fn post_key(build: &[u8], post: &[u8; 32], older: Option<&PostLink>, newer: Option<&PostLink>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(build);
    hasher.update(post);
    for link in [older, newer] {
        match link {
            Some(l) => {
                hasher.update([1]);
                hasher.update(&l.slug);
                hasher.update([0]);
                hasher.update(&l.title);
                hasher.update([0]);
            }
            None => hasher.update([0]),
        }
    }
    hex::encode(hasher.finalize())
}

/// The key of a listing page: which listing and page, how many posts in all, the posts it
/// shows and the topics its form offers, on top of [`build_key`].
fn listing_key(build: &[u8], tag: Option<&Tag>, page: u32, total: i64, posts: &[[u8; 32]], topics: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(build);
    if let Some(tag) = tag {
        hasher.update(tag.slug());
        hasher.update([0]);
        hasher.update(tag.name());
    }
    hasher.update([0]);
    hasher.update(page.to_le_bytes());
    hasher.update(total.to_le_bytes());
    hasher.update(topics);
    for post in posts {
        hasher.update(post);
    }
    hex::encode(hasher.finalize())
}

/// Lets serde write straight into a hash.
struct HashWriter<'a>(&'a mut Sha256);

impl std::io::Write for HashWriter<'_> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.update(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Runs `job` on every item, the items split among the machine's cores.
fn in_parallel<T: Sync>(items: &[T], job: impl Fn(usize, &T) -> anyhow::Result<()> + Sync) -> anyhow::Result<()> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(items.len().max(1));
    if threads <= 1 {
        return items.iter().enumerate().try_for_each(|(i, item)| job(i, item));
    }
    let per_thread = items.len().div_ceil(threads);
    std::thread::scope(|scope| {
        let job = &job;
        let handles: Vec<_> = items
            .chunks(per_thread)
            .enumerate()
            .map(|(n, chunk)| {
                scope.spawn(move || {
                    chunk
                        .iter()
                        .enumerate()
                        .try_for_each(|(i, item)| job(n * per_thread + i, item))
                })
            })
            .collect();
        handles
            .into_iter()
            .try_for_each(|h| h.join().unwrap_or_else(|_| bail!("a build thread panicked")))
    })
}

async fn write_all(db: &Db, site: &Site, w: &Writer) -> anyhow::Result<ExportReport> {
    let now = Utc::now();

    // Files first, so that Herald's own pages win where a name is taken twice.
    let settings = site.settings();
    w.copy_folder(&settings.static_dir(), Folder::Static, "")?;
    let posts_dir = settings.posts_dir();
    for (slug, source) in store::posts::public_sources(db, now).await? {
        if let Some(bundle) = files::bundle_folder(&posts_dir, &source) {
            w.copy_folder(&bundle, Folder::Bundle, &format!("posts/{slug}/"))?;
        }
    }

    // Read every public post once, newest first; every page and feed is cut from this list.
    let posts = Site::all_public_posts(db, now).await?;
    let tags = store::posts::public_tags(db, now).await?;
    let topics: Vec<Tag> = tags.iter().map(|(t, _)| t.clone()).collect();
    w.write("sitemap.xml", site.sitemap_document(&posts, &topics).body.as_bytes())?;
    w.write("robots.txt", site.robots().as_bytes())?;
    w.write(super::FAVICON_PATH, site.favicon_svg().as_bytes())?;
    let changed = posts
        .iter()
        .map(|p| p.updated_at)
        .max()
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    w.write("tags/index.html", site.tags_document(&tags, changed)?.body.as_bytes())?;
    w.write("404.html", site.not_found()?.as_bytes())?;

    // Newest first, as on the home page.
    let links: Vec<PostLink> = posts.iter().map(PostLink::from).collect();
    let build = build_key(site);
    let digests = posts.iter().map(post_digest).collect::<anyhow::Result<Vec<_>>>()?;
    in_parallel(&posts, |i, post| {
        let (older, newer) = (links.get(i + 1), i.checked_sub(1).map(|j| &links[j]));
        let key = post_key(&build, &digests[i], older, newer);
        w.write_keyed(&format!("posts/{}/index.html", post.slug), key, || {
            Ok(site.post_document(post, older, newer)?.body)
        })
    })?;

    // The listings: the whole site's, then each tag's, their pages rendered side by side.
    let mut listings: Vec<(Option<&Tag>, Vec<usize>)> = vec![(None, (0..posts.len()).collect())];
    for tag in &topics {
        let tagged = (0..posts.len()).filter(|i| posts[*i].has_tag(tag.slug())).collect();
        listings.push((Some(tag), tagged));
    }
    let topics_key = {
        let mut hasher = Sha256::new();
        for tag in &topics {
            hasher.update(tag.slug());
            hasher.update([0]);
            hasher.update(tag.name());
            hasher.update([0]);
        }
        hasher.finalize().to_vec()
    };
    let per_page = site.settings().site.page_size.get() as usize;
    let mut pages: Vec<(Option<&Tag>, u32, i64, &[usize])> = Vec::new();
    for (tag, tagged) in &listings {
        let total = tagged.len() as i64;
        for page in 1..=site.page_count(total) {
            let start = (page as usize - 1) * per_page;
            let chunk = &tagged[start.min(tagged.len())..(start + per_page).min(tagged.len())];
            pages.push((*tag, page, total, chunk));
        }
    }
    in_parallel(&pages, |_, (tag, page, total, chunk)| {
        let prefix = tag.map(|t| format!("tags/{}/", t.slug())).unwrap_or_default();
        let folder = if *page == 1 {
            prefix
        } else {
            format!("{prefix}page/{page}/")
        };
        let shown: Vec<[u8; 32]> = chunk.iter().map(|i| digests[*i]).collect();
        let key = listing_key(&build, *tag, *page, *total, &shown, &topics_key);
        w.write_keyed(&format!("{folder}index.html"), key, || {
            let chunk: Vec<&Post> = chunk.iter().map(|i| &posts[*i]).collect();
            Ok(site.listing_document(*tag, *page, *total, &chunk, &topics)?.body)
        })
    })?;
    in_parallel(&listings, |_, (tag, tagged)| {
        let limit = site.settings().feeds.limit.get() as usize;
        let newest: Vec<Post> = tagged.iter().take(limit).map(|i| posts[*i].clone()).collect();
        let prefix = tag.map(|t| format!("tags/{}/", t.slug())).unwrap_or_default();
        for format in FeedFormat::ALL {
            let doc = site.feed_document(format, *tag, &newest);
            w.write(&format!("{prefix}{}", format.file_name()), doc.body.as_bytes())?;
        }
        Ok(())
    })?;
    Ok(ExportReport {
        posts: posts.len(),
        tags: tags.len(),
        ..ExportReport::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_names_nothing_outside_the_output_folder() {
        for bad in ["", "../x", "/etc/passwd", "a/../../b", "./.herald-build", MARKER] {
            assert_eq!(safe_relative(bad), None, "{bad}");
        }
        assert_eq!(safe_relative("posts/a/index.html"), Some("posts/a/index.html"));
    }
}
