//! `herald build --out DIR`: every page and feed written as files, laid out so any
//! static host serves them at the same URLs as `herald serve`.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use chrono::Utc;

use crate::app::App;
use crate::feeds::FeedFormat;
use crate::site::Document;
use crate::store;

/// A file in the output folder that marks it as Herald's to replace.
const MARKER: &str = ".herald-build";
const POSTS_PER_QUERY: u32 = 500;

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

    fn page(&mut self, folder: &str, doc: Option<Document>) -> anyhow::Result<()> {
        if let Some(doc) = doc {
            self.write(&format!("{folder}index.html"), &doc.body)?;
        }
        Ok(())
    }
}

/// Writes the whole site into `out`, replacing an earlier build there. The new build
/// is made beside it and moved into place, so `out` is never half-written.
pub async fn build(app: &App, out: &Path) -> anyhow::Result<ExportReport> {
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
    let report = write_all(app, &mut writer).await;
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

async fn write_all(app: &App, w: &mut Writer) -> anyhow::Result<ExportReport> {
    let db = &app.db;
    let site = &app.site;
    let now = Utc::now();
    let mut report = ExportReport::default();

    listing_pages(app, w, None, now).await?;
    for format in FeedFormat::ALL {
        if let Some(doc) = site.feed(db, format, None, now).await? {
            w.write(format.file_name(), &doc.body)?;
        }
    }

    let mut offset = 0;
    loop {
        let posts = store::posts::list_public(db, now, None, POSTS_PER_QUERY, offset).await?;
        for post in &posts {
            let doc = site.post_document(post)?;
            w.write(&format!("posts/{}/index.html", post.slug), &doc.body)?;
        }
        report.posts += posts.len();
        if posts.len() < POSTS_PER_QUERY as usize {
            break;
        }
        offset += POSTS_PER_QUERY;
    }

    for (tag, _) in store::posts::public_tags(db, now).await? {
        listing_pages(app, w, Some(tag.slug()), now).await?;
        for format in FeedFormat::ALL {
            if let Some(doc) = site.feed(db, format, Some(tag.slug()), now).await? {
                w.write(&format!("tags/{}/{}", tag.slug(), format.file_name()), &doc.body)?;
            }
        }
        report.tags += 1;
    }
    w.write("404.html", &site.not_found()?)?;
    Ok(report)
}

async fn listing_pages(app: &App, w: &mut Writer, tag: Option<&str>, now: chrono::DateTime<Utc>) -> anyhow::Result<()> {
    let prefix = tag.map(|t| format!("tags/{t}/")).unwrap_or_default();
    let mut page = 1;
    while let Some(doc) = app.site.listing(&app.db, tag, page, now).await? {
        let folder = if page == 1 {
            prefix.clone()
        } else {
            format!("{prefix}page/{page}/")
        };
        w.page(&folder, Some(doc))?;
        page += 1;
    }
    Ok(())
}
