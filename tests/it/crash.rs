//! Exactly once, even through a crash: a real `herald send` process killed mid-send.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::smtp::SmtpServer;

const SUBSCRIBERS: usize = 2000;
const BATCH: usize = 100;
const WORKERS: usize = 2;
const CONCURRENCY: usize = 8;

fn herald(config: &std::path::Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env_remove("HERALD_CONFIG")
        .env("HERALD_LOG", "warn")
        .arg("--config")
        .arg(config);
    cmd
}

/// Runs a command to completion off the async runtime (the SMTP server lives on it).
async fn output(mut cmd: Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output().unwrap())
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_send_killed_mid_way_and_restarted_reaches_everyone_once_within_the_bound() {
    let smtp = SmtpServer::start().await;
    // The rate limit stretches the send over seconds, so the kill lands in the middle.
    let extra = format!(
        "rate_per_second = 600\n[digest]\nbatch_size = {BATCH}\nworkers = {WORKERS}\n\
             concurrency = {CONCURRENCY}\nlease_seconds = 10\n"
    );
    let (_dir, config, _db) = crate::instances::setup(&smtp, SUBSCRIBERS, &extra).await;

    let mut child = herald(&config)
        .args(["send", "--frequency", "weekly"])
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let started = Instant::now();
    // Half-way through a batch, so the batch in flight is the one re-sent.
    while smtp.count() < SUBSCRIBERS / 4 + BATCH / 2 {
        assert!(started.elapsed() < Duration::from_secs(60), "the send never got going");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the send finished before it could be killed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // SIGKILL: no chance to tidy up.
    child.kill().unwrap();
    child.wait().unwrap();
    let at_kill = smtp.count();
    assert!(at_kill < SUBSCRIBERS, "killed mid-send ({at_kill} delivered)");

    let mut send = herald(&config);
    send.arg("send");
    let restarted = output(send).await;
    assert!(
        restarted.status.success(),
        "{}",
        String::from_utf8_lossy(&restarted.stderr)
    );
    let received = smtp.received();
    let mut per_recipient: HashMap<&str, Vec<&[u8]>> = HashMap::new();
    for r in &received {
        per_recipient.entry(r.to[0].as_str()).or_default().push(&r.data);
    }
    assert_eq!(
        per_recipient.len(),
        SUBSCRIBERS,
        "every subscriber received the edition"
    );
    let duplicates = received.len() - SUBSCRIBERS;
    assert!(
        duplicates <= CONCURRENCY,
        "at most the sends in flight (concurrency) are sent again: {duplicates} duplicates"
    );
    for copies in per_recipient.values().filter(|c| c.len() > 1) {
        let ids: Vec<_> = copies
            .iter()
            .map(|data| {
                mail_parser::MessageParser::default()
                    .parse(data)
                    .unwrap()
                    .message_id()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        assert!(
            ids.windows(2).all(|w| w[0] == w[1]),
            "a re-send carries the same Message-ID: {ids:?}"
        );
    }
    eprintln!("killed at {at_kill} delivered; {duplicates} re-sent after the restart");

    let mut send = herald(&config);
    send.arg("send");
    let again = output(send).await;
    assert!(again.status.success());
    assert!(String::from_utf8_lossy(&again.stdout).contains("nothing to deliver"));
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(smtp.count(), received.len(), "a further send sends nothing");
}
