//! `herald build` into a folder it built before: only what changed is written, what is
//! gone is removed, and what the user put there is kept.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::SystemTime;

use crate::cli::{herald, project};
use crate::common::post;

/// Every file under `dir` (relative path, with `/`) with its bytes and mtime.
fn snapshot(dir: &Path) -> BTreeMap<String, (Vec<u8>, SystemTime)> {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .map(Result::unwrap)
        .filter(|e| e.file_type().is_file())
        .map(|e| {
            let relative = e.path().strip_prefix(dir).unwrap().to_string_lossy().replace('\\', "/");
            let modified = e.metadata().unwrap().modified().unwrap();
            (relative, (std::fs::read(e.path()).unwrap(), modified))
        })
        .collect()
}

/// Runs `herald build` and returns what it printed.
fn build(config: &Path, out: &Path) -> String {
    let output = herald()
        .arg("--config")
        .arg(config)
        .args(["build", "--out"])
        .arg(out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    String::from_utf8(output.stdout).unwrap()
}

/// The files whose mtime changed between two snapshots, and those added or removed.
fn touched(
    before: &BTreeMap<String, (Vec<u8>, SystemTime)>,
    after: &BTreeMap<String, (Vec<u8>, SystemTime)>,
) -> Vec<String> {
    let mut files: Vec<String> = after
        .iter()
        .filter(|(path, (_, modified))| before.get(*path).is_none_or(|(_, was)| was != modified))
        .map(|(path, _)| path.clone())
        .collect();
    files.extend(before.keys().filter(|p| !after.contains_key(*p)).cloned());
    files.sort();
    files
}

fn three_posts() -> Vec<(&'static str, String)> {
    vec![
        (
            "otters.md",
            post("Otters", "2026-09-13", &["wildlife"], "Otters are back."),
        ),
        (
            "weirs.md",
            post("Weirs", "2026-09-14", &["rivers"], "A weir comes down."),
        ),
        ("fish.md", post("Fish", "2026-09-15", &["rivers"], "Salmon return.")),
    ]
}

/// Lets a rewrite show in the mtime even on a file system with coarse timestamps.
fn pause() {
    std::thread::sleep(std::time::Duration::from_millis(20));
}

#[test]
fn a_second_build_with_nothing_changed_rewrites_no_file() {
    let (dir, config) = project(&three_posts());
    let out = dir.path().join("public");
    let first = build(&config, &out);
    let before = snapshot(&out);
    assert!(first.contains("0 unchanged, 0 removed"), "{first}");
    pause();

    let again = build(&config, &out);

    assert_eq!(touched(&before, &snapshot(&out)), Vec::<String>::new());
    assert!(again.contains(": 0 written"), "{again}");
    assert!(again.contains("0 removed"), "{again}");
}

#[test]
fn an_edited_post_rewrites_its_page_and_the_pages_that_show_it_and_nothing_else() {
    let (dir, config) = project(&three_posts());
    let out = dir.path().join("public");
    build(&config, &out);
    let before = snapshot(&out);
    pause();

    std::fs::write(
        dir.path().join("content/posts/otters.md"),
        post("Otters", "2026-09-13", &["wildlife"], "Otters are back, with cubs."),
    )
    .unwrap();
    build(&config, &out);

    let after = snapshot(&out);
    let touched = touched(&before, &after);
    for page in [
        "posts/otters/index.html",
        "feed.atom",
        "feed.rss",
        "feed.json",
        "tags/wildlife/feed.atom",
    ] {
        assert!(touched.contains(&page.to_owned()), "{page} not rewritten: {touched:?}");
    }
    // Exactly the files whose bytes changed were written.
    for path in &touched {
        assert_ne!(before[path].0, after[path].0, "{path} rewritten with the same bytes");
    }
    for unrelated in [
        "posts/weirs/index.html",
        "posts/fish/index.html",
        "tags/rivers/feed.atom",
    ] {
        assert!(!touched.contains(&unrelated.to_owned()), "{unrelated} rewritten");
    }
    let page = String::from_utf8(after["posts/otters/index.html"].0.clone()).unwrap();
    assert!(page.contains("with cubs"), "{page}");
}

#[test]
fn a_removed_posts_page_disappears_from_the_output() {
    let (dir, config) = project(&three_posts());
    let out = dir.path().join("public");
    build(&config, &out);
    assert!(out.join("posts/otters/index.html").is_file());

    std::fs::remove_file(dir.path().join("content/posts/otters.md")).unwrap();
    let said = build(&config, &out);

    assert!(!out.join("posts/otters").exists(), "the post's folder is gone too");
    assert!(!out.join("tags/wildlife").exists(), "a topic without posts has no page");
    assert!(out.join("posts/weirs/index.html").is_file());
    assert!(!said.contains(" 0 removed"), "{said}");
    crate::feed_check::check_every_feed_in(&out);
}

#[test]
fn files_in_the_output_that_herald_did_not_write_are_left_alone() {
    let (dir, config) = project(&three_posts());
    let out = dir.path().join("public");
    build(&config, &out);
    std::fs::write(out.join("CNAME"), "news.example.org").unwrap();
    std::fs::write(out.join("posts/otters/notes.txt"), "mine").unwrap();
    std::fs::create_dir_all(out.join("extra")).unwrap();
    std::fs::write(out.join("extra/page.html"), "<p>mine</p>").unwrap();

    std::fs::remove_file(dir.path().join("content/posts/otters.md")).unwrap();
    build(&config, &out);

    assert_eq!(std::fs::read_to_string(out.join("CNAME")).unwrap(), "news.example.org");
    assert_eq!(
        std::fs::read_to_string(out.join("posts/otters/notes.txt")).unwrap(),
        "mine"
    );
    assert!(!out.join("posts/otters/index.html").exists());
    assert_eq!(
        std::fs::read_to_string(out.join("extra/page.html")).unwrap(),
        "<p>mine</p>"
    );
}

#[test]
fn a_folder_built_before_manifests_is_taken_over_whole() {
    // Earlier builds replaced the whole folder and marked it with one line: all of it was theirs.
    let (dir, config) = project(&three_posts());
    let out = dir.path().join("public");
    std::fs::create_dir_all(out.join("posts/gone")).unwrap();
    std::fs::write(out.join("posts/gone/index.html"), "old").unwrap();
    std::fs::write(
        out.join(".herald-build"),
        "Written by herald build; the next build replaces this folder.\n",
    )
    .unwrap();

    build(&config, &out);

    assert!(!out.join("posts/gone").exists());
    assert!(out.join("posts/otters/index.html").is_file());
}
