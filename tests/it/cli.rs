//! The `herald` binary as users run it.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::common::post;

pub(crate) fn herald() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env_remove("HERALD_CONFIG").env("HERALD_LOG", "warn");
    cmd
}

/// A config folder with a posts folder beside it, and a database the tests can share.
pub(crate) fn project(posts: &[(&str, String)]) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("content/posts")).unwrap();
    for (name, text) in posts {
        std::fs::write(dir.path().join("content/posts").join(name), text).unwrap();
    }
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        "[site]\ntitle = \"CLI Trust\"\nbase_url = \"https://news.example.org/\"\n[server]\nlisten = \"127.0.0.1:0\"\n",
    )
    .unwrap();
    (dir, config)
}

fn two_posts() -> Vec<(&'static str, String)> {
    vec![
        ("otters.md", post("Otters", "2026-09-14", &["wildlife"], "Body.")),
        (
            "water.md",
            post("Water", "2026-09-15", &["water-quality", "wildlife"], "Body."),
        ),
    ]
}

#[test]
fn build_writes_every_page_and_feed_from_another_folder() {
    let (dir, config) = project(&two_posts());
    let out = dir.path().join("public");
    // Run from an unrelated folder: paths in the config follow the config file.
    let elsewhere = tempfile::tempdir().unwrap();
    let output = herald()
        .current_dir(elsewhere.path())
        .arg("--config")
        .arg(&config)
        .args(["build", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    for file in [
        "index.html",
        "404.html",
        "feed.rss",
        "feed.atom",
        "feed.json",
        "posts/otters/index.html",
        "posts/water/index.html",
        "tags/wildlife/index.html",
        "tags/wildlife/feed.atom",
        "tags/water-quality/feed.rss",
        "tags/water-quality/feed.json",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
        if file.contains("feed.") {
            crate::feed_check::read_feed_file(&out.join(file));
        }
    }
    assert!(
        dir.path().join("herald.db").is_file(),
        "the database sits beside the config file"
    );
    assert_eq!(
        crate::feed_check::check_every_feed_in(&out).len(),
        3 * 3,
        "the site's and two tags' feeds, three formats each"
    );
    let feed = crate::feed_check::read_feed_file(&out.join("feed.atom"));
    assert_eq!(feed.entries.len(), 2);
    assert_eq!(feed.entries[0].links[0].href, "https://news.example.org/posts/water/");

    // A second build replaces the first: an unpublished post's page goes away.
    std::fs::remove_file(dir.path().join("content/posts/otters.md")).unwrap();
    let again = herald()
        .arg("--config")
        .arg(&config)
        .args(["build", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(again.status.success());
    assert!(!out.join("posts/otters/index.html").exists());
    assert!(out.join("posts/water/index.html").exists());
}

#[test]
fn build_refuses_to_overwrite_a_folder_it_did_not_write() {
    let (dir, config) = project(&two_posts());
    let out = dir.path().join("precious");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("thesis.txt"), "years of work").unwrap();
    let output = herald()
        .arg("--config")
        .arg(&config)
        .args(["build", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not written by herald build"));
    assert_eq!(
        std::fs::read_to_string(out.join("thesis.txt")).unwrap(),
        "years of work"
    );
}

#[test]
fn the_environment_overrides_the_config_file() {
    let posts: Vec<_> = (0..4)
        .map(|i| {
            (
                ["a.md", "b.md", "c.md", "d.md"][i],
                post("P", &format!("2026-09-1{i}"), &["x"], "B"),
            )
        })
        .collect();
    let (dir, config) = project(&posts);
    let out = dir.path().join("public");
    let output = herald()
        .env("HERALD_FEEDS__LIMIT", "2")
        .env("HERALD_SITE__TITLE", "From The Environment")
        .arg("--config")
        .arg(&config)
        .args(["build", "--out"])
        .arg(&out)
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let feed = crate::feed_check::read_feed_file(&out.join("feed.json"));
    assert_eq!(feed.entries.len(), 2);
    assert_eq!(feed.title.unwrap().content, "From The Environment");
}

#[test]
fn bad_configuration_is_refused_naming_the_key() {
    let (_dir, config) = project(&[]);
    for (toml, key) in [
        ("[site]\ntitel = \"x\"\n", "titel"),
        ("[feeds]\nlimit = \"many\"\n", "feeds.limit"),
        ("[site]\nbase_url = \"not a url\"\n", "site.base_url"),
        ("[schedule]\nsync = \"every five minutes\"\n", "schedule.sync"),
        ("[digest]\nbreaker_failure_rate = 0\n", "digest.breaker_failure_rate"),
        ("[digest]\ncanary_percent = 100\n", "digest.canary_percent"),
        (
            "[digest]\nmax_complaint_rate = 0.3\nmax_bounce_rate = 2\n",
            "digest.max_bounce_rate",
        ),
    ] {
        std::fs::write(&config, toml).unwrap();
        let cmd = if key == "schedule.sync" { "serve" } else { "sync" };
        let output = herald().arg("--config").arg(&config).arg(cmd).output().unwrap();
        assert!(!output.status.success(), "{toml}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(key), "{toml} -> {stderr}");
    }
    let missing = herald()
        .args(["--config", "/nonexistent/config.toml", "sync"])
        .output()
        .unwrap();
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("/nonexistent/config.toml"));
}

#[test]
fn sync_reports_counts_and_fails_only_when_a_post_failed() {
    let (dir, config) = project(&two_posts());
    let ok = herald().arg("--config").arg(&config).arg("sync").output().unwrap();
    assert!(ok.status.success());
    assert_eq!(
        String::from_utf8_lossy(&ok.stdout).trim(),
        "2 added, 0 updated, 0 unchanged, 0 unpublished, 0 failed"
    );
    std::fs::write(
        dir.path().join("content/posts/broken.md"),
        "---\ntitle: Broken\ndate: someday\n---\n",
    )
    .unwrap();
    let failed = herald().arg("--config").arg(&config).arg("sync").output().unwrap();
    assert!(!failed.status.success());
    assert_eq!(
        String::from_utf8_lossy(&failed.stdout).trim(),
        "0 added, 0 updated, 2 unchanged, 0 unpublished, 1 failed"
    );
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(stderr.contains("broken.md:3: date:"), "{stderr}");
    assert_eq!(stderr.matches("broken.md").count(), 1, "each failure once: {stderr}");
}

fn repo_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[tokio::test]
async fn serve_publishes_the_example_posts() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config.toml");
    let posts = repo_root().join("content/posts");
    std::fs::write(
        &config,
        format!(
            "[server]\nlisten = \"127.0.0.1:0\"\n[content]\nposts_dir = \"{}\"\n",
            posts.display()
        ),
    )
    .unwrap();
    let mut child = herald()
        .arg("--config")
        .arg(&config)
        .arg("serve")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let address = BufReader::new(stdout)
        .lines()
        .map(Result::unwrap)
        .find_map(|line| line.split(" on ").nth(1).map(str::to_owned))
        .expect("serve prints its address");
    let atom = reqwest::get(format!("{address}/feed.atom"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    child.kill().ok();
    child.wait().ok();
    let feed = crate::feed_check::parse_feed("/feed.atom", atom.as_bytes());
    let titles: Vec<_> = feed.entries.iter().map(|e| e.title.clone().unwrap().content).collect();
    assert_eq!(
        titles.len(),
        3,
        "three example posts are public, one is a draft, one is scheduled: {titles:?}"
    );
}

#[test]
fn subscribers_can_be_added_listed_imported_exported_and_removed() {
    let mut posts = two_posts();
    posts.push(("policy.md", post("Policy", "2026-09-16", &["policy"], "Body.")));
    let (dir, config) = project(&posts);
    let run = |args: &[&str]| herald().arg("--config").arg(&config).args(args).output().unwrap();
    assert!(run(&["sync"]).status.success());
    // A topic no post has would never bring mail: refused, with the known ones named.
    let refused = run(&["subscribers", "add", "x@example.org", "--topics", "wildlife,otterz"]);
    assert_eq!(refused.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert!(
        stderr.contains("--topics: unknown topic \"otterz\" (known topics: policy, water-quality, wildlife)"),
        "{stderr}"
    );
    let added = run(&[
        "subscribers",
        "add",
        "cli@example.org",
        "--name",
        "Cli",
        "--topics",
        "wildlife,policy",
    ]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    assert!(String::from_utf8_lossy(&added.stdout).contains("pending"));
    let outbox: Vec<_> = std::fs::read_dir(dir.path().join("outbox")).unwrap().collect();
    assert_eq!(outbox.len(), 1, "the confirmation is written to the outbox folder");
    let again = run(&["subscribers", "add", "CLI@example.org"]);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already on the list"));
    let refused = run(&["subscribers", "add", "not an address"]);
    assert!(!refused.status.success());

    let file = dir.path().join("list.csv");
    std::fs::write(
        &file,
        "email,name,status\nin1@example.org,In One,confirmed\nbad-row,X,\nin2@example.org,,\n",
    )
    .unwrap();
    let imported = run(&["subscribers", "import", file.to_str().unwrap(), "--confirmed"]);
    assert!(!imported.status.success(), "a bad row makes the exit code non-zero");
    assert!(String::from_utf8_lossy(&imported.stderr).contains("list.csv:3: email:"));
    assert!(String::from_utf8_lossy(&imported.stdout).contains("2 added"));

    let listed = run(&["subscribers", "list", "--status", "confirmed", "--format", "json"]);
    let items: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(items.as_array().unwrap().len(), 2);
    let exported = run(&["subscribers", "export"]);
    let text = String::from_utf8(exported.stdout).unwrap();
    assert!(text.starts_with("\"email\",\"name\",\"frequency\",\"topics\",\"status\""));
    assert_eq!(text.lines().count(), 4, "{text}");
    assert!(
        text.contains("\"cli@example.org\",\"Cli\",\"weekly\",\"wildlife,policy\",\"pending\",\"cli\""),
        "{text}"
    );

    let removed = run(&["subscribers", "remove", "cli@example.org"]);
    assert!(removed.status.success());
    let exported = run(&["subscribers", "export"]);
    assert!(!String::from_utf8_lossy(&exported.stdout).contains("cli@example.org"));
}

#[tokio::test]
async fn admin_accounts_and_tokens_come_from_the_command_line() {
    let (dir, config) = project(&[]);
    let mut create = herald();
    create
        .arg("--config")
        .arg(&config)
        .args(["admin", "create-user", "ops@example.org"])
        .stdin(Stdio::piped());
    let mut child = create.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child.stdin.take().unwrap().write_all(b"short\n").unwrap();
    let refused = child.wait_with_output().unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("at least 10 characters"));

    let mut create = herald();
    create
        .arg("--config")
        .arg(&config)
        .args(["admin", "create-user", "ops@example.org"])
        .stdin(Stdio::piped());
    let mut child = create.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"a sufficiently long secret\n")
        .unwrap();
    assert!(child.wait_with_output().unwrap().status.success());

    let token = herald()
        .arg("--config")
        .arg(&config)
        .args(["admin", "create-token", "ci"])
        .output()
        .unwrap();
    assert!(token.status.success());
    let token = String::from_utf8(token.stdout).unwrap().trim().to_owned();
    assert!(token.starts_with("hrld_") && token.len() > 40, "{token}");

    // The token works against a server on the same database; a wrong one does not.
    let settings = herald::config::Settings::load(&config).unwrap();
    let app = herald::startup::App::start(settings).await.unwrap();
    assert!(app.auth.token_valid(&token).await.unwrap());
    assert!(!app.auth.token_valid("hrld_wrong").await.unwrap());
    let user = herald::store::accounts::find_user(&app.db, "ops@example.org")
        .await
        .unwrap()
        .unwrap();
    assert!(user.password_hash.starts_with("$argon2id$"), "only a hash is stored");
    assert!(matches!(
        app.auth
            .login("OPS@example.org", "a sufficiently long secret", false)
            .await
            .unwrap(),
        herald::auth::LoginOutcome::Success { .. }
    ));
    assert!(matches!(
        app.auth
            .login("ops@example.org", "a sufficiently long secreT", false)
            .await
            .unwrap(),
        herald::auth::LoginOutcome::Refused
    ));
    assert!(matches!(
        app.auth
            .login("nobody@example.org", "a sufficiently long secret", false)
            .await
            .unwrap(),
        herald::auth::LoginOutcome::Refused
    ));
    drop(dir);
}

/// A loopback feed server: `/campaigns.rss` answers one item, anything else 404.
async fn serve_source() -> String {
    let feed = "<?xml version=\"1.0\"?><rss version=\"2.0\"><channel><title>CMS</title>\
        <link>https://cms.example.org/</link><description>d</description>\
        <item><guid>c1</guid><title>Campaign launched</title><link>https://cms.example.org/c1</link>\
        <pubDate>Wed, 16 Sep 2026 09:30:00 +0000</pubDate><description>Join us.</description></item>\
        </channel></rss>";
    let app = axum::Router::new().route("/campaigns.rss", axum::routing::get(move || async move { feed }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    address
}

/// Runs the binary off the async runtime, so the loopback source keeps answering.
async fn run_herald(config: &Path, args: &[&str]) -> std::process::Output {
    let mut cmd = herald();
    cmd.arg("--config").arg(config).args(args);
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test]
async fn sync_imports_the_remote_sources_and_reports_each_one() {
    let source = serve_source().await;
    let (dir, config) = project(&two_posts());
    let base = std::fs::read_to_string(&config).unwrap();
    let good = format!("{source}/campaigns.rss");
    let missing = format!("{source}/missing.rss");
    std::fs::write(
        &config,
        format!("{base}[[sources]]\nurl = \"{good}\"\n[[sources]]\nurl = \"{missing}\"\n"),
    )
    .unwrap();

    let failed = run_herald(&config, &["sync"]).await;
    let stdout = String::from_utf8_lossy(&failed.stdout);
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert!(
        !failed.status.success(),
        "a failed source fails the run: {stdout}{stderr}"
    );
    assert!(
        stdout.contains("2 added, 0 updated, 0 unchanged, 0 unpublished, 0 failed"),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("source {good}: 1 added, 0 updated")),
        "{stdout}"
    );
    assert!(
        stderr.contains(&format!("failed: source {missing}: answered 404")),
        "{stderr}"
    );

    // Without the broken source the run succeeds, and the imported post is published.
    std::fs::write(&config, format!("{base}[[sources]]\nurl = \"{good}\"\n")).unwrap();
    let ok = run_herald(&config, &["sync"]).await;
    let stdout = String::from_utf8_lossy(&ok.stdout);
    assert!(ok.status.success(), "{stdout}{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout.contains(&format!("source {good}: unchanged")), "{stdout}");
    let out = dir.path().join("public");
    let built = run_herald(&config, &["build", "--out", out.to_str().unwrap()]).await;
    assert!(built.status.success(), "{}", String::from_utf8_lossy(&built.stderr));
    let feed = crate::feed_check::read_feed_file(&out.join("feed.atom"));
    let titles: Vec<_> = feed.entries.iter().map(|e| e.title.clone().unwrap().content).collect();
    assert_eq!(titles, ["Campaign launched", "Water", "Otters"]);
}

/// A project whose list holds `n` confirmed subscribers, imported from a CSV file.
/// 30 confirmed weekly readers, mail through `smtp`, `digest` keys in `[digest]`, and one
/// post published after the first sync (so it is news, not the archive).
async fn sending_project(smtp: &crate::smtp::SmtpServer, digest: &str) -> (tempfile::TempDir, PathBuf) {
    let (dir, config) = project_with_subscribers(30);
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{base}[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n[mail.smtp]\nhost = \"127.0.0.1\"\n\
             port = {}\n[digest]\n{digest}",
            smtp.port
        ),
    )
    .unwrap();
    assert!(run_herald(&config, &["sync"]).await.status.success());
    std::fs::write(
        dir.path().join("content/posts/otters.md"),
        post("Otters", "2026-09-14", &["wildlife"], "Body."),
    )
    .unwrap();
    assert!(run_herald(&config, &["sync"]).await.status.success());
    (dir, config)
}

fn project_with_subscribers(n: usize) -> (tempfile::TempDir, PathBuf) {
    let (dir, config) = project(&[]);
    let file = dir.path().join("many.csv");
    let mut csv = String::from("email\n");
    for i in 0..n {
        csv.push_str(&format!("reader{i:05}@example.org\n"));
    }
    std::fs::write(&file, csv).unwrap();
    let imported = herald()
        .arg("--config")
        .arg(&config)
        .args(["subscribers", "import", "--confirmed"])
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        imported.status.success(),
        "{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    (dir, config)
}

#[test]
fn output_into_a_closed_pipe_ends_the_command_quietly() {
    // Far more than a pipe holds, so the command is still writing when the reader goes.
    let (_dir, config) = project_with_subscribers(3000);
    for args in [
        &["subscribers", "list"][..],
        &["subscribers", "list", "--format", "json"],
    ] {
        let mut child = herald()
            .arg("--config")
            .arg(&config)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        stdout.read_line(&mut first).unwrap();
        assert!(!first.is_empty());
        drop(stdout);
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
        assert!(
            stderr.trim().is_empty(),
            "{args:?}: nothing on standard error: {stderr}"
        );
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            assert!(
                output.status.success() || output.status.signal() == Some(13),
                "{args:?}: ended quietly by SIGPIPE, as git does: {:?}",
                output.status
            );
        }
    }
}

#[test]
fn the_subscriber_table_lines_up_under_its_header() {
    let (dir, config) = project_with_subscribers(3);
    let run = |args: &[&str]| herald().arg("--config").arg(&config).args(args).output().unwrap();
    std::fs::write(
        dir.path().join("content/posts/otters.md"),
        post("Otters", "2026-09-14", &["wildlife"], "Body."),
    )
    .unwrap();
    assert!(run(&["sync"]).status.success());
    let added = run(&[
        "subscribers",
        "add",
        "a-much-longer-address-than-the-rest@example.org",
        "--confirmed",
        "--topics",
        "wildlife",
    ]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    let listed = run(&["subscribers", "list"]);
    assert!(listed.status.success(), "{}", String::from_utf8_lossy(&listed.stderr));
    let text = String::from_utf8(listed.stdout).unwrap();
    let mut lines = text.lines();
    let header = lines.next().unwrap();
    let offsets: Vec<usize> = ["id", "email", "status", "frequency", "topics"]
        .iter()
        .map(|h| header.find(h).unwrap_or_else(|| panic!("{h} in {header:?}")))
        .collect();
    let rows: Vec<&str> = lines.collect();
    assert_eq!(rows.len(), 4, "{text}");
    for row in rows {
        for &at in &offsets {
            assert!(
                row[at..].starts_with(|c: char| !c.is_whitespace()) && (at == 0 || row[..at].ends_with(' ')),
                "a cell starts at {at}, under its heading:\n{header}\n{row}"
            );
        }
    }
}

#[test]
fn status_prints_json_and_bad_values_are_usage_errors() {
    let (_dir, config) = project_with_subscribers(2);
    let run = |args: &[&str]| herald().arg("--config").arg(&config).args(args).output().unwrap();
    let status = run(&["status", "--format", "json"]);
    assert!(status.status.success(), "{}", String::from_utf8_lossy(&status.stderr));
    let report: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    for key in ["queue", "outbox", "subscribers", "editions"] {
        assert!(report.get(key).is_some(), "{key} in {report}");
    }
    assert_eq!(report["subscribers"]["confirmed"], 2, "{report}");
    assert_eq!(report["queue"]["pending"], 0, "{report}");
    assert!(report["editions"].as_array().unwrap().is_empty());
    let table = run(&["status"]);
    assert!(table.status.success());
    assert!(String::from_utf8_lossy(&table.stdout).contains("2 confirmed"));

    for args in [
        &["send", "--since", "not a date"][..],
        &["status", "--format", "yaml"],
        &["subscribers", "add", "not an address"],
        &["subscribers", "add", "ok@example.org", "--topics", "!!!"],
        &["subscribers", "remove", "not an address"],
    ] {
        let out = run(args);
        assert_eq!(
            out.status.code(),
            Some(2),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let missing = run(&["subscribers", "remove", "nobody@example.org"]);
    assert_eq!(
        missing.status.code(),
        Some(1),
        "a well-formed address not on the list is a failure"
    );
}

#[test]
fn a_broken_template_override_stops_build_and_serve_naming_the_file() {
    let (dir, config) = project(&two_posts());
    std::fs::create_dir_all(dir.path().join("templates/web")).unwrap();
    std::fs::write(dir.path().join("templates/web/post.html"), "{{ post.title | shout }}").unwrap();
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("[content]\ntemplates_dir = \"templates\"\n");
    std::fs::write(&config, text).unwrap();
    for args in [&["build", "--out", "public"][..], &["serve"]] {
        let out = herald()
            .current_dir(dir.path())
            .arg("--config")
            .arg(&config)
            .args(args)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            stderr.contains("post.html") && stderr.contains("shout"),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn send_says_an_edition_paused_itself_and_send_resume_sends_the_rest() {
    let smtp = crate::smtp::SmtpServer::start().await;
    smtp.set_behaviour(crate::smtp::Behaviour::RefuseAfter(
        0,
        554,
        "5.7.1 account suspended".into(),
    ));
    let (_dir, config) = sending_project(&smtp, "breaker_window = 4\nconcurrency = 2\n").await;

    let sent = run_herald(&config, &["send", "--frequency", "weekly", "--force"]).await;
    let stdout = String::from_utf8_lossy(&sent.stdout);
    assert!(!sent.status.success(), "a paused edition needs someone: {stdout}");
    assert!(
        stdout.contains("edition 1 is paused: circuit breaker: 2 of the last"),
        "{stdout}"
    );
    assert!(stdout.contains("herald send --resume 1"), "{stdout}");
    assert!(smtp.rejected() < 30, "it stopped early: {}", smtp.rejected());

    let status = run_herald(&config, &["status"]).await;
    let text = String::from_utf8_lossy(&status.stdout);
    assert!(text.contains("paused"), "{text}");
    assert!(text.contains("edition #1 is paused: circuit breaker"), "{text}");
    let json = run_herald(&config, &["status", "--format", "json"]).await;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(json["editions"][0]["status"], "paused");
    assert!(
        json["editions"][0]["paused_reason"]
            .as_str()
            .unwrap()
            .contains("5.7.1 account suspended")
    );

    smtp.set_behaviour(crate::smtp::Behaviour::Accept);
    let resumed = run_herald(&config, &["send", "--resume"]).await;
    let stdout = String::from_utf8_lossy(&resumed.stdout);
    assert!(
        resumed.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&resumed.stderr)
    );
    assert!(stdout.contains("edition 1 resumed"), "{stdout}");
    assert_eq!(smtp.count(), 30, "everyone got it once");
    let mut to: Vec<String> = smtp.received().iter().map(|r| r.to[0].clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 30);
}

#[tokio::test]
async fn send_from_cron_sends_the_canary_sample_then_the_rest_once_the_wait_is_over() {
    let smtp = crate::smtp::SmtpServer::start().await;
    let (dir, config) = project_with_subscribers(30);
    let base = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!(
            "{base}[mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n[mail.smtp]\nhost = \"127.0.0.1\"\n\
             port = {}\n[digest]\ncanary_percent = 10\ncanary_minutes = 30\n",
            smtp.port
        ),
    )
    .unwrap();
    assert!(run_herald(&config, &["sync"]).await.status.success());
    std::fs::write(
        dir.path().join("content/posts/otters.md"),
        post("Otters", "2026-09-14", &["wildlife"], "Body."),
    )
    .unwrap();
    assert!(run_herald(&config, &["sync"]).await.status.success());

    let first = run_herald(&config, &["send", "--frequency", "weekly", "--force"]).await;
    let stdout = String::from_utf8_lossy(&first.stdout);
    assert!(
        first.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert!(
        stdout.contains("edition 1: canary sample sent; the rest goes from"),
        "{stdout}"
    );
    assert_eq!(smtp.count(), 3, "10 % of 30 first");
    // Run again from cron before the wait is over: nothing more.
    let early = run_herald(&config, &["send"]).await;
    assert!(early.status.success());
    assert_eq!(smtp.count(), 3);

    // The wait is over (as if 30 minutes had passed; the end is kept in the database).
    let url = format!("sqlite://{}", dir.path().join("herald.db").display());
    let mut conn = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query("update editions set canary_until = '2000-01-01T00:00:00Z'")
        .execute(&mut conn)
        .await
        .unwrap();
    drop(conn);
    let later = run_herald(&config, &["send"]).await;
    let stdout = String::from_utf8_lossy(&later.stdout);
    assert!(
        later.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&later.stderr)
    );
    assert_eq!(smtp.count(), 30, "{stdout}");
    let mut to: Vec<String> = smtp.received().iter().map(|r| r.to[0].clone()).collect();
    to.sort();
    to.dedup();
    assert_eq!(to.len(), 30, "each reader once");
}
