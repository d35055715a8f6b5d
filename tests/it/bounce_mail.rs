//! Bounces that arrive as mail: a real Dovecot serving the bounce mailbox over IMAP, read by
//! `herald serve`'s poller; delivery status notifications and abuse reports as Postfix, Exim
//! and feedback loops write them (tests/fixtures/reports); the VERP return path on real
//! digests; and `herald bounces ingest` on standard input, as an MTA's pipe runs it.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures_util::StreamExt;
use herald::digest::Trigger;
use herald::domain::{BounceKind, BounceSource, Frequency, SubscriberStatus};

use crate::cli::herald;
use crate::common::{TestApp, add_subscriber, post, spawn_app_with};
use crate::smtp::SmtpServer;

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/fixtures/reports")
            .join(name),
    )
    .unwrap()
}

/// Dovecot on a loopback port, with one user (`bounces`, password `secret`) whose mail is
/// kept in a temporary folder; stopped when dropped.
struct Dovecot {
    port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Drop for Dovecot {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dovecot {
    /// None, and a note, where Dovecot is not installed (CI installs it).
    async fn start() -> Option<Dovecot> {
        if Command::new("dovecot").arg("--version").output().is_err() {
            eprintln!("skipped: Dovecot is not installed (apt-get install dovecot-imapd)");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for sub in ["run", "state", "home"] {
            std::fs::create_dir_all(root.join(sub)).unwrap();
        }
        // Dovecot refuses to keep mail as root: as root, the mail belongs to nobody.
        // SAFETY: geteuid has no preconditions.
        let (uid, gid) = if unsafe { libc::geteuid() } == 0 {
            (65534, 65534)
        } else {
            // SAFETY: as above.
            unsafe { (libc::geteuid(), libc::getegid()) }
        };
        let home = root.join("home");
        std::os::unix::fs::chown(&home, Some(uid), Some(gid)).unwrap();
        // The base folder must be reachable by the user the mail belongs to.
        std::fs::set_permissions(root, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
        std::fs::write(root.join("users"), "bounces:{PLAIN}secret\n").unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let r = root.display();
        std::fs::write(
            root.join("dovecot.conf"),
            format!(
                "protocols = imap\nlisten = 127.0.0.1\nbase_dir = {r}/run\nstate_dir = {r}/state\n\
                 log_path = {r}/dovecot.log\nssl = no\ndisable_plaintext_auth = no\nauth_mechanisms = plain login\n\
                 mail_location = maildir:{r}/home/%u/Maildir\n\
                 passdb {{\n  driver = passwd-file\n  args = scheme=PLAIN username_format=%u {r}/users\n}}\n\
                 userdb {{\n  driver = static\n  args = uid={uid} gid={gid} home={r}/home/%u\n}}\n\
                 service imap-login {{\n  inet_listener imap {{\n    address = 127.0.0.1\n    port = {port}\n  }}\n\
                 inet_listener imaps {{\n    port = 0\n  }}\n}}\n\
                 service stats {{\n  inet_listener http {{\n    port = 0\n  }}\n}}\n"
            ),
        )
        .unwrap();
        let child = Command::new("dovecot")
            .args(["-F", "-c"])
            .arg(root.join("dovecot.conf"))
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("Dovecot is needed for these tests (apt-get install dovecot-imapd)");
        let dovecot = Dovecot { port, child, dir };
        for _ in 0..200 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(dovecot);
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        panic!(
            "Dovecot did not start: {:?}",
            std::fs::read_to_string(dovecot.dir.path().join("dovecot.log"))
        );
    }

    fn config(&self, poll_seconds: u64) -> String {
        format!(
            "[bounces.imap]\nhost = \"127.0.0.1\"\nport = {}\ntls = \"none\"\nusername = \"bounces\"\n\
             password = \"secret\"\npoll_seconds = {poll_seconds}\n",
            self.port
        )
    }

    async fn session(&self) -> async_imap::Session<tokio::net::TcpStream> {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", self.port)).await.unwrap();
        let mut client = async_imap::Client::new(tcp);
        client.read_response().await.unwrap().unwrap();
        let mut session = client.login("bounces", "secret").await.map_err(|(e, _)| e).unwrap();
        session.select("INBOX").await.unwrap();
        session
    }

    /// Delivers messages into the mailbox, as the MTA would.
    async fn deliver(&self, messages: &[Vec<u8>]) {
        let mut session = self.session().await;
        for message in messages {
            session.append("INBOX", None, None, message).await.unwrap();
        }
        session.logout().await.unwrap();
    }

    async fn unseen(&self) -> usize {
        let mut session = self.session().await;
        let unseen = session.uid_search("UNSEEN").await.unwrap().len();
        session.logout().await.unwrap();
        unseen
    }

    async fn all(&self) -> usize {
        let mut session = self.session().await;
        let all = session.uid_search("ALL").await.unwrap().len();
        session.logout().await.unwrap();
        all
    }

    /// Marks every message unseen again, as if nobody had read them.
    async fn forget_seen(&self) {
        let mut session = self.session().await;
        let answers: Vec<_> = session
            .uid_store("1:*", "-FLAGS (\\Seen)")
            .await
            .unwrap()
            .collect()
            .await;
        assert!(answers.iter().all(Result::is_ok));
        session.logout().await.unwrap();
    }
}

async fn status(app: &TestApp, id: i64) -> SubscriberStatus {
    herald::store::subscribers::find(&app.app.db, id)
        .await
        .unwrap()
        .unwrap()
        .status
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..300 {
        if done().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting until {what}");
}

#[tokio::test]
async fn the_bounce_mailbox_is_read_by_the_server_and_each_report_counts_once() {
    let Some(dovecot) = Dovecot::start().await else { return };
    let app = spawn_app_with(&dovecot.config(1)).await;
    let confirmed = |email: &'static str| {
        let app = &app;
        async move { add_subscriber(app, email, SubscriberStatus::Confirmed, Frequency::Weekly, &[]).await }
    };
    let gone = confirmed("gone@example.net").await;
    let full = confirmed("full@example.net").await;
    let blocked = confirmed("blocked@example.com").await;
    let reader = confirmed("reader@example.com").await;
    let slow = confirmed("slow@example.org").await;
    let nobody = confirmed("nobody@example.net").await;

    dovecot
        .deliver(&[
            fixture("postfix-unknown-user.eml"),
            fixture("postfix-two-recipients.eml"),
            fixture("postfix-delayed.eml"),
            fixture("exim-dsn.eml"),
            fixture("arf-abuse.eml"),
            b"From: someone@example.com\r\nTo: bounces@example.org\r\nSubject: Thanks!\r\n\r\nLovely newsletter.\r\n"
                .to_vec(),
        ])
        .await;
    wait_until("every message is read", || async { dovecot.unseen().await == 0 }).await;

    assert_eq!(status(&app, gone.id).await, SubscriberStatus::Bounced, "Postfix: 5.1.1");
    assert_eq!(
        status(&app, nobody.id).await,
        SubscriberStatus::Bounced,
        "Exim: 550 User unknown"
    );
    assert_eq!(
        status(&app, reader.id).await,
        SubscriberStatus::Complained,
        "ARF abuse report"
    );
    for (who, id) in [
        ("mailbox full", full.id),
        ("policy refusal", blocked.id),
        ("delay warning", slow.id),
    ] {
        assert_eq!(
            status(&app, id).await,
            SubscriberStatus::Confirmed,
            "{who}: still on the list"
        );
    }
    let events = |id| app.app.bounces.events(id, 10);
    let kinds =
        |events: Vec<herald::domain::BounceEvent>| events.iter().map(|e| (e.kind, e.source)).collect::<Vec<_>>();
    assert_eq!(
        kinds(events(gone.id).await.unwrap()),
        [(BounceKind::Hard, BounceSource::Imap)]
    );
    assert_eq!(
        kinds(events(full.id).await.unwrap()),
        [(BounceKind::Soft, BounceSource::Imap)]
    );
    assert_eq!(
        kinds(events(blocked.id).await.unwrap()),
        [(BounceKind::Soft, BounceSource::Imap)]
    );
    assert_eq!(
        kinds(events(reader.id).await.unwrap()),
        [(BounceKind::Complaint, BounceSource::Imap)]
    );
    assert!(
        events(slow.id).await.unwrap().is_empty(),
        "a delay warning is not a bounce"
    );
    let diagnostic = events(gone.id).await.unwrap()[0].diagnostic.clone().unwrap();
    assert!(
        diagnostic.contains("User unknown in virtual mailbox table"),
        "{diagnostic}"
    );
    assert_eq!(dovecot.all().await, 6, "messages are marked seen, not deleted");

    // Read again (another instance, or the flags lost): nothing is counted twice.
    dovecot.forget_seen().await;
    wait_until("every message is read again", || async { dovecot.unseen().await == 0 }).await;
    assert_eq!(events(full.id).await.unwrap().len(), 1, "one soft bounce, not two");
    assert_eq!(events(gone.id).await.unwrap().len(), 1);
}

#[tokio::test]
async fn herald_bounces_poll_reads_the_mailbox_once_and_a_wrong_password_is_named() {
    let Some(dovecot) = Dovecot::start().await else { return };
    let (dir, config) = crate::cli::project(&[]);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&dovecot.config(3600));
    std::fs::write(&config, &text).unwrap();
    let run = |args: &[&str]| herald().arg("--config").arg(&config).args(args).output().unwrap();
    let added = run(&["subscribers", "add", "gone@example.net", "--confirmed"]);
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stderr));
    dovecot.deliver(&[fixture("postfix-unknown-user.eml")]).await;

    let polled = run(&["bounces", "poll"]);
    assert!(polled.status.success(), "{}", String::from_utf8_lossy(&polled.stderr));
    let out = String::from_utf8_lossy(&polled.stdout);
    assert!(out.contains("1 kept"), "{out}");
    let listed = run(&["subscribers", "list", "--status", "bounced"]);
    assert!(String::from_utf8_lossy(&listed.stdout).contains("gone@example.net"));

    std::fs::write(&config, text.replace("password = \"secret\"", "password = \"wrong\"")).unwrap();
    let refused = run(&["bounces", "poll"]);
    assert!(!refused.status.success());
    let err = String::from_utf8_lossy(&refused.stderr);
    assert!(err.contains("login as \"bounces\" refused"), "{err}");
    assert!(!err.contains("wrong"), "the password is not printed: {err}");
    drop(dir);
}

/// `herald bounces ingest` with `message` on standard input.
fn ingest(config: &PathBuf, message: &[u8]) -> std::process::Output {
    let mut child = herald()
        .arg("--config")
        .arg(config)
        .args(["bounces", "ingest"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(message).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn herald_bounces_ingest_reads_one_report_from_a_pipe_with_exit_codes_an_mta_understands() {
    let (_dir, config) = crate::cli::project(&[]);
    let run = |args: &[&str]| herald().arg("--config").arg(&config).args(args).output().unwrap();
    for email in ["old@example.net", "full@example.net"] {
        assert!(run(&["subscribers", "add", email, "--confirmed"]).status.success());
    }
    let first = ingest(&config, &fixture("exim-text.eml"));
    assert!(first.status.success(), "{}", String::from_utf8_lossy(&first.stderr));
    assert!(String::from_utf8_lossy(&first.stdout).contains("2 kept"), "{:?}", first);
    let again = ingest(&config, &fixture("exim-text.eml"));
    assert!(
        String::from_utf8_lossy(&again.stdout).contains("0 kept, 2 already kept"),
        "{:?}",
        again
    );
    let bounced = String::from_utf8_lossy(&run(&["subscribers", "list", "--status", "bounced"]).stdout).into_owned();
    assert!(
        bounced.contains("old@example.net") && !bounced.contains("full@example.net"),
        "{bounced}"
    );

    // Not a report: EX_DATAERR, and the reason.
    let refused = ingest(&config, b"From: a@example.org\r\nSubject: Hello\r\n\r\nHi.\r\n");
    assert_eq!(refused.status.code(), Some(65));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("not a bounce or complaint report"));

    // The database away: EX_TEMPFAIL, so the MTA keeps the report and tries again.
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}[database]\nurl = \"postgres://nobody@127.0.0.1:1/none\"\n"),
    )
    .unwrap();
    let later = ingest(&config, &fixture("exim-text.eml"));
    assert_eq!(
        later.status.code(),
        Some(75),
        "{}",
        String::from_utf8_lossy(&later.stderr)
    );
}

#[tokio::test]
async fn a_verp_return_path_names_the_delivery_even_when_the_report_names_another_address() {
    let smtp = SmtpServer::start().await;
    let app = spawn_app_with(&format!(
        "[mail]\ntransport = \"smtp\"\nfrom = \"Riverside News <news@example.org>\"\n\
         return_path = \"bounces+{{token}}@example.org\"\n[mail.smtp]\nhost = \"127.0.0.1\"\nport = {}\n",
        smtp.port
    ))
    .await;
    app.write_post("archive.md", &post("Archive", "2026-01-10", &[], "Old news."));
    app.sync().await;
    let reader = add_subscriber(
        &app,
        "alias@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    app.write_post(
        "otters.md",
        &post("Otters return", "2026-09-14", &[], "Otters are back."),
    );
    app.sync().await;
    let editions = app
        .app
        .digests
        .compose(Frequency::Weekly, Trigger::Manual, None)
        .await
        .unwrap();
    let edition = editions[0].id;
    let received = smtp.wait_for(1, Duration::from_secs(10)).await;
    let key = format!("edition.{edition}.{}", reader.id);
    let check = herald::domain::return_path_check(&reader.manage_token, &key);
    let verp = format!("bounces+{key}.{check}@example.org");
    assert_eq!(
        received[0].from, verp,
        "the envelope sender carries the delivery's key and its check"
    );

    // Anyone can write to the bounce mailbox: a report whose return path names a
    // subscriber with a wrong check, and nothing else of theirs, changes nothing.
    let forged = |to: &str, recipient: &str| {
        format!(
            "From: MAILER-DAEMON@mx.elsewhere.example\r\nTo: {to}\r\nSubject: Undelivered Mail Returned to Sender\r\n\
             Message-Id: <dsn.{recipient}@mx.elsewhere.example>\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: text/plain\r\n\r\nCould not deliver.\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.elsewhere.example\r\n\r\n\
             Final-Recipient: rfc822; {recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\
             Diagnostic-Code: smtp; 550 5.1.1 no such user\r\n\r\n--b--\r\n"
        )
    };
    let guess = format!("bounces+{key}.0000000000000000@example.org");
    let done = herald::bounces::reports::ingest(
        &app.app.bounces,
        &app.app.composer,
        forged(&guess, "old-mailbox@elsewhere.example").as_bytes(),
        BounceSource::Imap,
    )
    .await
    .unwrap();
    assert_eq!(done.kept, 1, "kept, for nobody");
    assert_eq!(status(&app, reader.id).await, SubscriberStatus::Confirmed);

    // The alias forwarded to an address that no longer exists; the report names only that
    // one and quotes nothing of the message.
    let dsn = forged(&verp, "old-mailbox@elsewhere.example.net");
    let done = herald::bounces::reports::ingest(
        &app.app.bounces,
        &app.app.composer,
        dsn.as_bytes(),
        BounceSource::Ingest,
    )
    .await
    .unwrap();
    assert_eq!(done.kept, 1);
    assert_eq!(status(&app, reader.id).await, SubscriberStatus::Bounced);
    let events = app.app.bounces.events(reader.id, 10).await.unwrap();
    assert_eq!(events[0].edition_id, Some(edition));
    let diagnostic = events[0].diagnostic.clone().unwrap();
    assert!(
        diagnostic.starts_with("reported for old-mailbox@elsewhere.example.net: 5.1.1"),
        "{diagnostic}"
    );

    // A redacted complaint about that same message finds the reader through its Message-ID.
    let other = add_subscriber(
        &app,
        "quiet@example.org",
        SubscriberStatus::Confirmed,
        Frequency::Weekly,
        &[],
    )
    .await;
    let arf = String::from_utf8(fixture("arf-redacted.eml")).unwrap().replace(
        "edition.2.6@news.example.org",
        &format!("edition.{edition}.{}@example.org", other.id),
    );
    let done =
        herald::bounces::reports::ingest(&app.app.bounces, &app.app.composer, arf.as_bytes(), BounceSource::Imap)
            .await
            .unwrap();
    assert_eq!((done.kept, done.unaddressed), (1, 0));
    assert_eq!(status(&app, other.id).await, SubscriberStatus::Complained);
}
