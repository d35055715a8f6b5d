//! Files published as they are: the static folder at the site's root (`static/images/map.png`
//! at `/images/map.png`) and a page bundle's files beside its post (`posts/otters/photo.jpg`
//! at `/posts/otters/photo.jpg`). Which URL path names which file, the same for `herald
//! serve` and `herald build`: never a folder, a hidden file or anything outside the folder
//! (`..`, however encoded, or a symbolic link leading out). Uses `domain`.

use std::path::{Component, Path, PathBuf};

use anyhow::Context;
use percent_encoding::percent_decode_str;
use walkdir::{DirEntry, WalkDir};

use crate::domain::PostSource;

/// The first path segments that belong to Herald's own pages, feeds and console: a static
/// file there is neither served nor built (the route answers, whatever the folder holds).
pub const RESERVED: &[&str] = &[
    "admin",
    "posts",
    "tags",
    "page",
    "editions",
    "subscribe",
    "confirm",
    "unsubscribe",
    "preferences",
    "feeds",
    "r",
    "feed.rss",
    "feed.atom",
    "feed.json",
    "sitemap.xml",
    "robots.txt",
    "favicon.svg",
    "healthz",
    "readyz",
    "metrics",
];

/// Which folder a file is looked up in, and so which rules apply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Folder {
    /// The static folder: anything but the names in [`RESERVED`].
    Static,
    /// A page bundle: anything but Markdown (the post itself, or other posts) and the
    /// folders of bundles inside it (other posts, perhaps drafts).
    Bundle,
}

/// The folder of a post's own files, if it is a page bundle (`<slug>/index.md`).
pub fn bundle_folder(posts_dir: &Path, source: &PostSource) -> Option<PathBuf> {
    source.bundle_dir().map(|dir| posts_dir.join(dir))
}

/// The decoded segments of a URL path below a folder (`images/a%20b.png` ->
/// `["images", "a b.png"]`), or `None` when any of them could step outside it or hide:
/// empty (`a//b`, a trailing `/`), `.`, `..`, a hidden name (`.git`; `.well-known` is
/// allowed), or one that is not a single plain file name once decoded (`a%2Fb`, `C:`, `\`).
pub fn url_segments(url_path: &str) -> Option<Vec<String>> {
    let url_path = url_path.strip_prefix('/').unwrap_or(url_path);
    url_path
        .split('/')
        .map(|raw| {
            let segment = percent_decode_str(raw).decode_utf8().ok()?;
            let hidden = segment.starts_with('.') && segment != ".well-known";
            let plain = matches!(
                Path::new(segment.as_ref()).components().collect::<Vec<_>>().as_slice(),
                [Component::Normal(name)] if *name == segment.as_ref()
            );
            (plain && !hidden && !segment.contains(['/', '\\', '\0'])).then(|| segment.into_owned())
        })
        .collect()
}

fn allowed(segments: &[String], folder: Folder) -> bool {
    match folder {
        Folder::Static => segments.first().is_none_or(|first| !RESERVED.contains(&first.as_str())),
        Folder::Bundle => segments.last().is_none_or(|name| {
            !Path::new(name)
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("md"))
        }),
    }
}

/// The file that `url_path` (still percent-encoded, relative to `root`) names in `root`, if
/// it is one that may be published. Blocking: it reads the file system.
pub fn find(root: &Path, url_path: &str, folder: Folder) -> Option<PathBuf> {
    let segments = url_segments(url_path)?;
    if segments.is_empty() || !allowed(&segments, folder) {
        return None;
    }
    let root = root.canonicalize().ok()?;
    let mut path = root.clone();
    for (i, segment) in segments.iter().enumerate() {
        path.push(segment);
        // A folder inside a bundle that holds an index.md is another post's bundle.
        if folder == Folder::Bundle && i + 1 < segments.len() && path.join("index.md").exists() {
            return None;
        }
    }
    let file = path.canonicalize().ok()?;
    (file.starts_with(&root) && file.is_file()).then_some(file)
}

/// Every file of `root` that [`find`] would serve, as its path relative to `root` (with `/`
/// between segments) and the file to read. A missing `root` has none.
pub fn publishable(root: &Path, folder: Folder) -> anyhow::Result<Vec<(String, PathBuf)>> {
    if !root.is_dir() {
        return Ok(Vec::new());
    }
    let skip = |e: &DirEntry| {
        e.depth() > 0
            && e.file_type().is_dir()
            && (e.file_name().to_string_lossy().starts_with('.')
                || (folder == Folder::Bundle && e.path().join("index.md").exists()))
            && e.file_name() != ".well-known"
    };
    let mut found = Vec::new();
    for entry in WalkDir::new(root).min_depth(1).into_iter().filter_entry(|e| !skip(e)) {
        let entry = entry.with_context(|| format!("Failed to read the folder {}", root.display()))?;
        if entry.file_type().is_dir() {
            continue;
        }
        let Ok(relative) = entry.path().strip_prefix(root) else {
            continue;
        };
        let segments: Vec<String> = relative
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        let url_path: Vec<String> = segments.iter().map(|s| s.replace('%', "%25")).collect();
        let Some(file) = find(root, &url_path.join("/"), folder) else {
            continue;
        };
        found.push((segments.join("/"), file));
    }
    Ok(found)
}

/// Copies every file of `root` that [`find`] would serve into `out` (created as needed), at
/// the same relative path, and returns how many. A missing `root` copies nothing.
pub fn copy_folder(root: &Path, folder: Folder, out: &Path) -> anyhow::Result<usize> {
    let files = publishable(root, folder)?;
    for (relative, file) in &files {
        let target = out.join(relative);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).with_context(|| format!("Failed to create {}", parent.display()))?;
        }
        std::fs::copy(file, &target)
            .with_context(|| format!("Failed to copy {} to {}", file.display(), target.display()))?;
    }
    Ok(files.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_paths_that_could_step_out_or_hide_name_nothing() {
        assert_eq!(
            url_segments("/images/a%20b.png"),
            Some(vec!["images".into(), "a b.png".into()])
        );
        assert_eq!(
            url_segments(".well-known/security.txt"),
            Some(vec![".well-known".into(), "security.txt".into()])
        );
        for bad in [
            "../etc/passwd",
            "images/../../x",
            "%2e%2e/x",
            "%2E%2E%2Fx",
            "images%2f..%2f..%2fx",
            "a//b",
            "images/",
            "./x",
            ".git/config",
            ".env",
            "a%5c..%5cb",
            "a%00b",
            "%ff",
        ] {
            assert_eq!(url_segments(bad), None, "{bad}");
        }
    }

    #[test]
    fn finds_files_inside_the_folder_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("static");
        std::fs::create_dir_all(root.join("images")).unwrap();
        std::fs::write(root.join("images/map.png"), "png").unwrap();
        std::fs::write(root.join("feed.rss"), "mine").unwrap();
        std::fs::write(tmp.path().join("secret.txt"), "secret").unwrap();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(tmp.path().join("secret.txt"), root.join("leak.txt")).unwrap();
            std::os::unix::fs::symlink(root.join("images/map.png"), root.join("alias.png")).unwrap();
        }
        assert_eq!(
            find(&root, "/images/map.png", Folder::Static),
            Some(root.join("images/map.png").canonicalize().unwrap())
        );
        assert_eq!(find(&root, "/images", Folder::Static), None, "a folder");
        assert_eq!(find(&root, "/feed.rss", Folder::Static), None, "Herald's own");
        assert_eq!(find(&root, "/images/%2e%2e/%2e%2e/secret.txt", Folder::Static), None);
        assert_eq!(find(&root, "/missing.png", Folder::Static), None);
        if cfg!(unix) {
            assert_eq!(find(&root, "/leak.txt", Folder::Static), None, "a link leading out");
            assert!(find(&root, "/alias.png", Folder::Static).is_some(), "a link inside");
        }
        let missing = tmp.path().join("nowhere");
        assert_eq!(find(&missing, "/images/map.png", Folder::Static), None);
        assert_eq!(copy_folder(&missing, Folder::Static, tmp.path()).unwrap(), 0);
    }

    #[test]
    fn a_bundle_publishes_its_files_but_not_posts() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("otters");
        for file in [
            "index.md",
            "photo.jpg",
            "notes.MD",
            "images/x.png",
            "cubs/index.md",
            "cubs/draft.jpg",
            ".hidden/y.png",
        ] {
            let path = root.join(file);
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, file).unwrap();
        }
        assert!(find(&root, "photo.jpg", Folder::Bundle).is_some());
        assert!(find(&root, "images/x.png", Folder::Bundle).is_some());
        for refused in ["index.md", "notes.MD", "cubs/draft.jpg", ".hidden/y.png"] {
            assert_eq!(find(&root, refused, Folder::Bundle), None, "{refused}");
        }
        let out = tmp.path().join("out");
        assert_eq!(copy_folder(&root, Folder::Bundle, &out).unwrap(), 2);
        assert!(out.join("photo.jpg").is_file());
        assert!(out.join("images/x.png").is_file());
        assert!(!out.join("index.md").exists());
    }
}
