//! `herald build --out DIR`: every page and feed written as files, with the static folder
//! and the page bundles' files, laid out so any static host serves them at the same URLs
//! as `herald serve`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;

use super::Site;
use super::files::{self, Folder};
use crate::domain::{Post, Tag};
use crate::feeds::FeedFormat;
use crate::store;
use crate::store::Db;
use crate::store::posts::PostLink;

/// A file in the output folder that marks it as Herald's to replace.
const MARKER: &str = ".herald-build";

/// How much was written.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ExportReport {
    pub files: usize,
    pub posts: usize,
    pub tags: usize,
}

struct Writer {
    root: PathBuf,
    files: usize,
}

impl Writer {
    fn write(&mut self, relative: &str, body: &str) -> anyhow::Result<()> {
        let path = self.root.join(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("Failed to create {}", parent.display()))?;
        }
        std::fs::write(&path, body).with_context(|| format!("Failed to write {}", path.display()))?;
        self.files += 1;
        Ok(())
    }
}

/// Writes the whole site into `out`, replacing an earlier build there. The new build
/// is made beside it and moved into place, so `out` is never half-written.
pub async fn build(db: &Db, site: &Site, out: &Path) -> anyhow::Result<ExportReport> {
    if out.exists() && std::fs::read_dir(out)?.next().is_some() && !out.join(MARKER).exists() {
        bail!(
            "{} is not empty and was not written by herald build; choose an empty or new folder",
            out.display()
        );
    }
    let name = out
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "site".into());
    let parent = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(parent)?;
    let staging = parent.join(format!(".{name}.building-{}", std::process::id()));
    if staging.exists() {
        std::fs::remove_dir_all(&staging)?;
    }
    let mut writer = Writer {
        root: staging.clone(),
        files: 0,
    };
    let report = write_all(db, site, &mut writer).await;
    let report = match report {
        Ok(r) => r,
        Err(e) => {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(e);
        }
    };
    writer.write(
        MARKER,
        "Written by herald build; the next build replaces this folder.\n",
    )?;
    if out.exists() {
        let old = parent.join(format!(".{name}.old-{}", std::process::id()));
        std::fs::rename(out, &old).with_context(|| format!("Failed to move the old {} aside", out.display()))?;
        std::fs::rename(&staging, out)?;
        std::fs::remove_dir_all(&old).ok();
    } else {
        std::fs::rename(&staging, out).with_context(|| format!("Failed to create {}", out.display()))?;
    }
    Ok(ExportReport {
        files: writer.files,
        ..report
    })
}

async fn write_all(db: &Db, site: &Site, w: &mut Writer) -> anyhow::Result<ExportReport> {
    let now = Utc::now();

    // Files first, so that Herald's own pages win where a name is taken twice.
    let settings = site.settings();
    w.files += files::copy_folder(&settings.static_dir(), Folder::Static, &w.root)?;
    let posts_dir = settings.posts_dir();
    for (slug, source) in store::posts::public_sources(db, now).await? {
        if let Some(bundle) = files::bundle_folder(&posts_dir, &source) {
            w.files += files::copy_folder(&bundle, Folder::Bundle, &w.root.join("posts").join(&slug))?;
        }
    }

    // Read every public post once, newest first; every page and feed is cut from this list.
    let posts = Site::all_public_posts(db, now).await?;
    let tags = store::posts::public_tags(db, now).await?;
    let topics: Vec<Tag> = tags.iter().map(|(t, _)| t.clone()).collect();
    w.write("sitemap.xml", &site.sitemap_document(&posts, &topics).body)?;
    w.write("robots.txt", &site.robots())?;
    w.write(super::FAVICON_PATH, &site.favicon_svg())?;
    let changed = posts
        .iter()
        .map(|p| p.updated_at)
        .max()
        .unwrap_or(chrono::DateTime::UNIX_EPOCH);
    w.write("tags/index.html", &site.tags_document(&tags, changed)?.body)?;
    write_listing(site, w, None, &posts, &topics)?;
    // Newest first, as on the home page.
    let links: Vec<PostLink> = posts.iter().map(PostLink::from).collect();
    for (i, post) in posts.iter().enumerate() {
        let newer = i.checked_sub(1).map(|j| &links[j]);
        let doc = site.post_document(post, links.get(i + 1), newer)?;
        w.write(&format!("posts/{}/index.html", post.slug), &doc.body)?;
    }

    for tag in &topics {
        let tagged: Vec<Post> = posts.iter().filter(|p| p.has_tag(tag.slug())).cloned().collect();
        write_listing(site, w, Some(tag), &tagged, &topics)?;
    }
    w.write("404.html", &site.not_found()?)?;
    Ok(ExportReport {
        files: 0,
        posts: posts.len(),
        tags: tags.len(),
    })
}

/// The listing pages and feeds of the whole site (`tag` None) or of one tag.
fn write_listing(site: &Site, w: &mut Writer, tag: Option<&Tag>, posts: &[Post], topics: &[Tag]) -> anyhow::Result<()> {
    let prefix = tag.map(|t| format!("tags/{}/", t.slug())).unwrap_or_default();
    let per_page = site.settings().site.page_size.get() as usize;
    let total = posts.len() as i64;
    for page in 1..=site.page_count(total) {
        let start = (page as usize - 1) * per_page;
        let chunk = &posts[start.min(posts.len())..(start + per_page).min(posts.len())];
        let doc = site.listing_document(tag, page, total, chunk, topics)?;
        let folder = if page == 1 {
            prefix.clone()
        } else {
            format!("{prefix}page/{page}/")
        };
        w.write(&format!("{folder}index.html"), &doc.body)?;
    }
    for format in FeedFormat::ALL {
        let doc = site.feed_document(format, tag, posts);
        w.write(&format!("{prefix}{}", format.file_name()), &doc.body)?;
    }
    Ok(())
}
