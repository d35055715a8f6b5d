//! A login flood from many addresses against a real `herald serve`: memory stays bounded
//! and the real admin, on a device that logged in before, still gets in.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use crate::server::serve_binary;

const ADMIN: &str = "ops@example.org";
const PASSWORD: &str = "the right passphrase";
const ATTACKERS: usize = 120;

/// The process's resident anonymous memory (its heap and stacks: what a flood could make it
/// allocate) in kB, from /proc. The pages of the binary itself are left out: a debug build's
/// grow with every dependency and say nothing about the flood.
fn rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("RssAnon:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The `name=value` pair of a cookie the response sets.
fn set_cookie(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or_default().to_owned())
        .find(|pair| pair.starts_with(&format!("{name}=")))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_login_flood_from_many_addresses_stays_under_100_mb_and_the_known_admin_still_gets_in() {
    let served = serve_binary("trust_forwarded_for = true", "", None).await;
    let created = served
        .cli(&["admin", "create-user", ADMIN], &format!("{PASSWORD}\n"))
        .await;
    assert!(created.status.success(), "{}", String::from_utf8_lossy(&created.stderr));
    let client = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let login = |from: String, email: &'static str, password: &'static str, cookie: Option<String>| {
        let mut request = client
            .post(served.url("/admin/login"))
            .header("x-forwarded-for", from)
            .form(&[("email", email), ("password", password)]);
        if let Some(cookie) = cookie {
            request = request.header("cookie", cookie);
        }
        request.send()
    };

    // The admin logged in from this browser before: it holds a device cookie.
    let first = login("192.0.2.1".into(), ADMIN, PASSWORD, None).await.unwrap();
    assert_eq!(first.status(), 303);
    let device = set_cookie(&first, "herald_device").expect("a device cookie at login");

    let pid = served.pid();
    let before = rss_kb(pid).unwrap();
    eprintln!("resident memory before the flood: {} MB", before / 1000);
    let peak = Arc::new(AtomicU64::new(before));
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (peak, stop) = (peak.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                if let Some(kb) = rss_kb(pid) {
                    peak.fetch_max(kb, Ordering::SeqCst);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        })
    };

    // 120 addresses at once, each guessing once: a quarter at the admin's account, the rest
    // at accounts that do not exist (which cost the same check).
    let attack: Vec<_> = (0..ATTACKERS)
        .map(|i| {
            let email: &'static str = if i % 4 == 0 {
                ADMIN
            } else {
                Box::leak(format!("guess{i}@example.org").into_boxed_str())
            };
            let attempt = login(format!("10.{}.{}.1", i / 200, i % 200), email, "password123", None);
            tokio::spawn(attempt)
        })
        .collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = login("192.0.2.77".into(), ADMIN, PASSWORD, Some(device.clone()))
        .await
        .unwrap();
    assert_eq!(during.status(), 303, "the known admin gets in during the flood");

    let mut statuses = Vec::new();
    for attempt in attack {
        let response = attempt.await.unwrap().expect("every attacker gets an answer");
        if response.status() == 503 {
            assert!(response.headers().contains_key("retry-after"), "503 says when to retry");
        }
        statuses.push(response.status().as_u16());
    }
    stop.store(true, Ordering::SeqCst);
    sampler.join().unwrap();
    assert!(
        statuses.iter().all(|s| matches!(s, 401 | 429 | 503)),
        "only refusals: {statuses:?}"
    );
    assert!(
        statuses.contains(&503),
        "the shared budget turned some away: {statuses:?}"
    );

    let after = login("192.0.2.78".into(), ADMIN, PASSWORD, Some(device)).await.unwrap();
    assert_eq!(after.status(), 303, "the known admin gets in after the flood");
    // An unknown browser shares the account's limit with the attackers (for a minute).
    let unknown = login("192.0.2.79".into(), ADMIN, PASSWORD, None).await.unwrap();
    assert_eq!(unknown.status(), 429);

    let peak_mb = peak.load(Ordering::SeqCst) / 1000;
    eprintln!("peak resident memory during the flood: {peak_mb} MB");
    assert!(peak_mb < 100, "peak resident memory {peak_mb} MB");
}
