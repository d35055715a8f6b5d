//! Static build benchmark: `herald build` against Hugo on the same 10,000 posts.
//!
//! Writes 10,000 Markdown posts (8 paragraphs, a list, links, 3 tags each from 50) and a
//! minimal Hugo site with the same posts and the same kinds of pages (a page per post, a
//! home page and a page per tag in pages of 10, the tags' index, RSS for the site and each
//! tag, a sitemap), then times, taking turns, medians of 3:
//! - a fresh build: `herald build --out` with a new database and no output folder, and
//!   `hugo` with no `public/` and no cache;
//! - a build with nothing changed since the last one, for each.
//!
//! `cargo bench --bench build`. Installs Debian's `hugo` if it is missing. The work folder
//! is made under `HERALD_BENCH_DIR` (default: the system's temporary folder; check with
//! `df` that it is on disk, not tmpfs). `HERALD_BENCH_POSTS` changes the number of posts,
//! `HERALD_BENCH_REPEAT` the number of turns, `HERALD_BENCH_BEFORE=/path/to/herald` adds an
//! older binary to compare in the same run. When `HERALD_BENCH_LOCK` names a file, each
//! timed run holds an exclusive lock on it (`flock(2)`, as `flock FILE cmd` takes), so runs
//! of other benchmarks on the same machine never overlap a timed one; the clock starts
//! once the lock is held.

mod common;

use common::post_text;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const HUGO_CONFIG: &str = r#"baseURL = "https://news.example.org/"
title = "Benchmark Trust"
languageCode = "en"
paginate = 10
rssLimit = 20
disableKinds = ["section"]
[taxonomies]
tag = "tags"
[outputs]
home = ["HTML", "RSS"]
taxonomy = ["HTML"]
term = ["HTML", "RSS"]
"#;

const HUGO_HEAD: &str = r#"<!DOCTYPE html>
<html lang="{{ .Site.LanguageCode }}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ if not .IsHome }}{{ .Title }} - {{ end }}{{ .Site.Title }}</title><link rel="canonical" href="{{ .Permalink }}">
<link rel="alternate" type="application/rss+xml" title="{{ .Site.Title }}" href="{{ "index.xml" | absURL }}">
<style>body{max-width:40rem;margin:auto;font-family:sans-serif}</style></head>
<body><header><a href="{{ .Site.BaseURL }}">{{ .Site.Title }}</a> <a href="{{ "tags/" | absURL }}">Topics</a></header>
"#;

const HUGO_SINGLE: &str = r#"<main><article><h1>{{ .Title }}</h1>
<p><time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">{{ .Date.Format "2 January 2006" }}</time> by {{ .Params.author }}</p>
<ul>{{ range .GetTerms "tags" }}<li><a href="{{ .Permalink }}">{{ .LinkTitle }}</a></li>{{ end }}</ul>
{{ .Content }}</article>
<nav>{{ with .NextInSection }}<a rel="prev" href="{{ .Permalink }}">{{ .Title }}</a>{{ end }} {{ with .PrevInSection }}<a rel="next" href="{{ .Permalink }}">{{ .Title }}</a>{{ end }}</nav>
<form method="post" action="{{ "subscribe" | absURL }}"><input type="email" name="email"><button>Subscribe</button></form></main></body></html>
"#;

const HUGO_LIST: &str = r#"<main><h1>{{ .Title }}</h1>
{{ range .Paginator.Pages }}<article><h2><a href="{{ .Permalink }}">{{ .Title }}</a></h2>
<p><time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">{{ .Date.Format "2 January 2006" }}</time> by {{ .Params.author }}</p>
<ul>{{ range .GetTerms "tags" }}<li><a href="{{ .Permalink }}">{{ .LinkTitle }}</a></li>{{ end }}</ul></article>
{{ end }}<nav>{{ with .Paginator.Prev }}<a href="{{ .URL }}">Newer</a>{{ end }} Page {{ .Paginator.PageNumber }} of {{ .Paginator.TotalPages }} {{ with .Paginator.Next }}<a href="{{ .URL }}">Older</a>{{ end }}</nav>
<form method="post" action="{{ "subscribe" | absURL }}"><input type="email" name="email"><button>Subscribe</button></form></main></body></html>
"#;

const HUGO_HOME: &str = r#"<main><h1>{{ .Site.Title }}</h1>
{{ range (.Paginate (where .Site.RegularPages "Type" "posts")).Pages }}<article><h2><a href="{{ .Permalink }}">{{ .Title }}</a></h2>
<p><time datetime="{{ .Date.Format "2006-01-02T15:04:05Z07:00" }}">{{ .Date.Format "2 January 2006" }}</time> by {{ .Params.author }}</p>
<ul>{{ range .GetTerms "tags" }}<li><a href="{{ .Permalink }}">{{ .LinkTitle }}</a></li>{{ end }}</ul></article>
{{ end }}<nav>{{ with .Paginator.Prev }}<a href="{{ .URL }}">Newer</a>{{ end }} Page {{ .Paginator.PageNumber }} of {{ .Paginator.TotalPages }} {{ with .Paginator.Next }}<a href="{{ .URL }}">Older</a>{{ end }}</nav>
<form method="post" action="{{ "subscribe" | absURL }}"><input type="email" name="email"><button>Subscribe</button></form></main></body></html>
"#;

const HUGO_TERMS: &str = r#"<main><h1>Topics</h1><ul>
{{ range .Data.Terms.ByCount }}<li><a href="{{ .Page.Permalink }}">{{ .Page.Title }}</a> {{ .Count }} posts <a href="{{ .Page.Permalink }}index.xml">feed</a></li>{{ end }}
</ul></main></body></html>
"#;

/// Writes the posts for Herald (`posts/`) and a Hugo site with the same posts (`hugo/`).
fn generate(dir: &Path, count: usize) -> anyhow::Result<()> {
    let posts = dir.join("posts");
    let hugo = dir.join("hugo");
    let layouts = hugo.join("layouts/_default");
    std::fs::create_dir_all(&posts)?;
    std::fs::create_dir_all(hugo.join("content/posts"))?;
    std::fs::create_dir_all(&layouts)?;
    for i in 0..count {
        let text = post_text(i);
        std::fs::write(posts.join(format!("post-{i:05}.md")), &text)?;
        std::fs::write(hugo.join(format!("content/posts/post-{i:05}.md")), &text)?;
    }
    std::fs::write(
        dir.join("config.toml"),
        "[site]\ntitle = \"Benchmark Trust\"\nbase_url = \"https://news.example.org/\"\n\
         [content]\nposts_dir = \"posts\"\n[database]\nurl = \"sqlite://herald.db\"\n",
    )?;
    std::fs::write(hugo.join("config.toml"), HUGO_CONFIG)?;
    std::fs::write(hugo.join("layouts/index.html"), format!("{HUGO_HEAD}{HUGO_HOME}"))?;
    std::fs::write(layouts.join("single.html"), format!("{HUGO_HEAD}{HUGO_SINGLE}"))?;
    std::fs::write(layouts.join("list.html"), format!("{HUGO_HEAD}{HUGO_LIST}"))?;
    std::fs::write(layouts.join("terms.html"), format!("{HUGO_HEAD}{HUGO_TERMS}"))?;
    Ok(())
}

/// An exclusive `flock` on the file `HERALD_BENCH_LOCK` names (the same lock as `flock FILE
/// command`), held until the file returned is dropped; nothing when no file is named.
fn bench_lock() -> anyhow::Result<Option<std::fs::File>> {
    let Some(path) = std::env::var_os("HERALD_BENCH_LOCK") else {
        return Ok(None);
    };
    let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
    #[cfg(unix)]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor this process owns; the lock goes with the file.
        anyhow::ensure!(
            unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) } == 0,
            "cannot lock the benchmark lock file"
        );
    }
    Ok(Some(file))
}

/// Runs `cmd` to completion and returns its wall time, which starts once the lock is held.
fn timed(mut cmd: Command, what: &str) -> anyhow::Result<(Duration, String)> {
    let _lock = bench_lock()?;
    let start = Instant::now();
    let output = cmd.stdin(Stdio::null()).output()?;
    let took = start.elapsed();
    anyhow::ensure!(
        output.status.success(),
        "{what} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((took, String::from_utf8_lossy(&output.stdout).trim().to_owned()))
}

/// A fresh Herald build, then one with nothing changed.
fn herald(binary: &str, dir: &Path) -> anyhow::Result<(Duration, Duration, String)> {
    let out = dir.join("site");
    for leftover in ["herald.db", "herald.db-wal", "herald.db-shm"] {
        let _ = std::fs::remove_file(dir.join(leftover));
    }
    let _ = std::fs::remove_dir_all(&out);
    let run = || {
        let mut cmd = Command::new(binary);
        cmd.arg("--config")
            .arg(dir.join("config.toml"))
            .arg("build")
            .arg("--out")
            .arg(&out)
            .env("HERALD_LOG", "warn")
            .env_remove("HERALD_CONFIG");
        cmd
    };
    let (fresh, _) = timed(run(), "herald build")?;
    let (again, said) = timed(run(), "herald build (unchanged)")?;
    Ok((fresh, again, said))
}

/// A fresh Hugo build (no `public/`, no cache), then one with nothing changed.
fn hugo(dir: &Path) -> anyhow::Result<(Duration, Duration, String)> {
    let site = dir.join("hugo");
    let _ = std::fs::remove_dir_all(site.join("public"));
    let _ = std::fs::remove_dir_all(site.join("resources"));
    let cache = dir.join("hugo-cache");
    let _ = std::fs::remove_dir_all(&cache);
    let run = || {
        let mut cmd = Command::new("hugo");
        cmd.arg("--source")
            .arg(&site)
            .arg("--cacheDir")
            .arg(&cache)
            .args(["--noBuildLock", "--quiet"]);
        cmd
    };
    let (fresh, _) = timed(run(), "hugo")?;
    let (again, said) = timed(run(), "hugo (unchanged)")?;
    Ok((fresh, again, said))
}

fn count_files(dir: &Path) -> usize {
    walkdir::WalkDir::new(dir)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .count()
}

fn median(samples: &mut [Duration]) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn ensure_hugo() -> anyhow::Result<()> {
    if Command::new("hugo")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success())
    {
        return Ok(());
    }
    println!("installing hugo (apt-get install -y hugo)");
    let status = Command::new("apt-get")
        .args(["install", "-y", "hugo"])
        .env("DEBIAN_FRONTEND", "noninteractive")
        .status()?;
    anyhow::ensure!(status.success(), "hugo is needed: apt-get install -y hugo failed");
    Ok(())
}

fn main() -> anyhow::Result<()> {
    ensure_hugo()?;
    let count: usize = std::env::var("HERALD_BENCH_POSTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let repeat: usize = std::env::var("HERALD_BENCH_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let base: PathBuf = std::env::var_os("HERALD_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::tempdir_in(&base)?;
    generate(dir.path(), count)?;
    println!("{count} posts in {}", dir.path().display());
    println!(
        "{}",
        String::from_utf8_lossy(&Command::new("hugo").arg("version").output()?.stdout).trim()
    );

    let mut binaries: Vec<String> = std::env::var("HERALD_BENCH_BEFORE").into_iter().collect();
    binaries.push(env!("CARGO_BIN_EXE_herald").to_owned());
    // Samples: [fresh, unchanged] per binary, then Hugo's.
    let mut samples = vec![[Vec::new(), Vec::new()]; binaries.len() + 1];
    for turn in 1..=repeat {
        for (i, binary) in binaries.iter().enumerate() {
            let (fresh, again, said) = herald(binary, dir.path())?;
            println!(
                "turn {turn}: herald {binary}\n  fresh {:>6.2} s, unchanged {:>6.2} s  ({said})",
                fresh.as_secs_f64(),
                again.as_secs_f64()
            );
            samples[i][0].push(fresh);
            samples[i][1].push(again);
        }
        let (fresh, again, _) = hugo(dir.path())?;
        println!(
            "turn {turn}: hugo\n  fresh {:>6.2} s, unchanged {:>6.2} s  ({} files)",
            fresh.as_secs_f64(),
            again.as_secs_f64(),
            count_files(&dir.path().join("hugo/public"))
        );
        let last = samples.len() - 1;
        samples[last][0].push(fresh);
        samples[last][1].push(again);
    }
    println!(
        "herald wrote {} files, hugo {}",
        count_files(&dir.path().join("site")),
        count_files(&dir.path().join("hugo/public"))
    );
    let medians: Vec<[Duration; 2]> = samples
        .iter_mut()
        .map(|[fresh, again]| [median(fresh), median(again)])
        .collect();
    let hugo = medians[medians.len() - 1];
    println!("\nmedians of {repeat}        fresh      unchanged");
    println!(
        "hugo               {:>7.2} s  {:>7.2} s",
        hugo[0].as_secs_f64(),
        hugo[1].as_secs_f64()
    );
    for (binary, [fresh, again]) in binaries.iter().zip(&medians) {
        println!(
            "herald             {:>7.2} s  {:>7.2} s   {binary}",
            fresh.as_secs_f64(),
            again.as_secs_f64()
        );
        println!(
            "  hugo / herald    {:>7.1} x  {:>7.1} x   (goals: 5 x and 20 x)",
            hugo[0].as_secs_f64() / fresh.as_secs_f64(),
            hugo[1].as_secs_f64() / again.as_secs_f64()
        );
    }
    Ok(())
}
