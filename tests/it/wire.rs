//! Herald's own SMTP client (`herald::mail::wire`) against real servers: the in-process
//! test server with and without PIPELINING, and Postfix's `smtp-sink`: what arrives is
//! what was sent (lines starting with a dot included), commands go in one write where
//! the server offers pipelining, and every reply class is read the way the queue needs.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use herald::mail::SendError;
use herald::mail::wire::Connection;
use lettre::address::Envelope;

use crate::smtp::{Behaviour, SmtpServer};

const TIMEOUT: Duration = Duration::from_secs(5);

fn envelope(to: &str) -> Envelope {
    Envelope::new(Some("news@herald.test".parse().unwrap()), vec![to.parse().unwrap()]).unwrap()
}

/// A message whose body has the lines SMTP must escape: a lone dot and leading dots.
fn message(n: usize) -> Vec<u8> {
    format!(
        "From: news@herald.test\r\nSubject: Number {n}\r\n\r\n.leading dot\r\n..two dots\r\n.\r\nmiddle\r\n.\r\nend {n}\r\n"
    )
    .into_bytes()
}

async fn open(port: u16) -> Connection {
    Connection::open("127.0.0.1", port, "herald.test", None, TIMEOUT)
        .await
        .unwrap()
}

#[tokio::test]
async fn messages_arrive_as_sent_with_the_commands_pipelined() {
    let server = SmtpServer::start().await;
    let mut connection = open(server.port).await;
    assert!(connection.pipelining(), "the server offers PIPELINING");
    for n in 0..3 {
        connection
            .send(&envelope(&format!("r{n}@example.org")), &message(n))
            .await
            .unwrap();
    }
    let received = server.received();
    assert_eq!(received.len(), 3);
    for (n, r) in received.iter().enumerate() {
        assert_eq!(r.data, message(n), "message {n} arrives byte for byte");
        assert_eq!(r.to, [format!("r{n}@example.org")]);
        assert_eq!(r.from, "news@herald.test");
    }
    assert_eq!(server.connections(), 1, "one session for every message");
    assert!(
        server.most_commands_at_once() >= 2,
        "MAIL, RCPT and DATA go in one write"
    );
    connection.quit().await;
}

#[tokio::test]
async fn without_pipelining_each_command_waits_for_its_reply() {
    let server = SmtpServer::start().await;
    server.without_pipelining();
    let mut connection = open(server.port).await;
    assert!(!connection.pipelining());
    for n in 0..2 {
        connection.send(&envelope("a@example.org"), &message(n)).await.unwrap();
    }
    assert_eq!(server.count(), 2);
    assert_eq!(server.most_commands_at_once(), 0);
}

/// Each reply class, in both modes: what the queue is told, and whether the session goes on.
#[tokio::test]
async fn refusals_are_classified_and_the_session_survives_all_but_421() {
    for pipelining in [true, false] {
        let server = SmtpServer::start().await;
        if !pipelining {
            server.without_pipelining();
        }
        let mut connection = open(server.port).await;
        server.set_behaviour(Behaviour::RejectRcptMatching(vec![
            ("gone".into(), 550, "5.1.1 no such user".into()),
            ("policy".into(), 550, "5.7.1 message refused".into()),
            ("busy".into(), 451, "4.3.0 try again later".into()),
        ]));
        let outcome = connection.send(&envelope("gone@example.org"), &message(0)).await;
        assert_eq!(
            outcome,
            Err(SendError::Permanent {
                reply: "550 5.1.1 no such user".into(),
                bad_mailbox: true
            }),
            "pipelining {pipelining}"
        );
        let outcome = connection.send(&envelope("policy@example.org"), &message(1)).await;
        assert!(
            matches!(&outcome, Err(SendError::Permanent { bad_mailbox: false, reply }) if reply.contains("5.7.1")),
            "{outcome:?}"
        );
        let outcome = connection.send(&envelope("busy@example.org"), &message(2)).await;
        assert_eq!(outcome, Err(SendError::Transient("451 4.3.0 try again later".into())));
        assert!(!connection.is_broken(), "a refused transaction is reset, not fatal");
        connection.send(&envelope("ok@example.org"), &message(3)).await.unwrap();
        assert_eq!(server.count(), 1, "only the accepted message arrived");
        assert_eq!(server.received()[0].data, message(3));

        server.set_behaviour(Behaviour::RejectAllRcpt(421, "4.3.2 closing".into()));
        let outcome = connection.send(&envelope("ok@example.org"), &message(4)).await;
        assert_eq!(outcome, Err(SendError::Transient("421 4.3.2 closing".into())));
        assert!(connection.is_broken(), "a 421 ends the session");
        assert_eq!(server.connections(), 1);
    }
}

#[tokio::test]
async fn a_connection_dropped_mid_session_is_a_temporary_failure() {
    let server = SmtpServer::start().await;
    server.set_behaviour(Behaviour::DropAfter(1));
    let mut connection = open(server.port).await;
    connection.send(&envelope("a@example.org"), &message(0)).await.unwrap();
    let outcome = connection.send(&envelope("b@example.org"), &message(1)).await;
    assert!(matches!(outcome, Err(SendError::Transient(_))), "{outcome:?}");
    assert!(connection.is_broken());
    assert_eq!(server.count(), 1);
}

struct Sink {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Postfix's `smtp-sink` on a free port, dumping each message into a folder; `None` (with
/// a note) where Postfix is not installed (CI installs it).
fn smtp_sink(extra: &[&str]) -> Option<Sink> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let dir = tempfile::tempdir().unwrap();
    let mut command = Command::new("smtp-sink");
    command
        .args(["-u", "root", "-d"])
        .arg(format!("{}/%M%S.", dir.path().display()))
        .args(extra)
        .arg(format!("127.0.0.1:{port}"))
        .arg("100")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let child = match command.spawn() {
        Ok(child) => child,
        Err(e) => {
            eprintln!("skipped: smtp-sink is not installed (apt-get install postfix): {e}");
            return None;
        }
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Some(Sink { child, port, dir });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("smtp-sink did not start");
}

/// The messages smtp-sink wrote, each without the lines it adds on top (up to `Received`).
fn dumped(sink: &Sink) -> Vec<Vec<u8>> {
    let mut files: Vec<_> = std::fs::read_dir(sink.dir.path())
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|data| {
            let start = memchr::memmem::find(&data, b"From: news@herald.test").expect("the message's own headers");
            data[start..].to_vec()
        })
        .collect()
}

#[tokio::test]
async fn postfix_smtp_sink_receives_pipelined_messages_intact() {
    let Some(sink) = smtp_sink(&[]) else { return };
    let mut connection = open(sink.port).await;
    assert!(connection.pipelining(), "smtp-sink offers PIPELINING");
    for n in 0..20 {
        connection
            .send(&envelope("reader@example.org"), &message(n))
            .await
            .unwrap();
    }
    connection.quit().await;
    let mut got = Vec::new();
    for _ in 0..100 {
        got = dumped(&sink);
        if got.len() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(got.len(), 20);
    // smtp-sink writes LF line ends, and an empty line after each message.
    let mut expected: Vec<Vec<u8>> = (0..20)
        .map(|n| {
            String::from_utf8(message(n))
                .unwrap()
                .replace("\r\n", "\n")
                .into_bytes()
        })
        .collect();
    expected.sort();
    let mut got: Vec<Vec<u8>> = got
        .into_iter()
        .map(|m| {
            let text = String::from_utf8(m).unwrap().replace("\r\n", "\n");
            text.strip_suffix('\n').unwrap_or(&text).as_bytes().to_vec()
        })
        .collect();
    got.sort();
    for (got, expected) in got.iter().zip(&expected) {
        assert_eq!(
            String::from_utf8_lossy(got),
            String::from_utf8_lossy(expected),
            "each message arrives as it was written"
        );
    }
}

#[tokio::test]
async fn postfix_refusals_are_classified() {
    let Some(hard) = smtp_sink(&["-f", "RCPT"]) else { return };
    let mut connection = open(hard.port).await;
    let outcome = connection.send(&envelope("reader@example.org"), &message(0)).await;
    assert!(matches!(outcome, Err(SendError::Permanent { .. })), "{outcome:?}");
    assert!(!connection.is_broken());

    let Some(soft) = smtp_sink(&["-r", "RCPT"]) else { return };
    let mut connection = open(soft.port).await;
    let outcome = connection.send(&envelope("reader@example.org"), &message(0)).await;
    assert!(matches!(outcome, Err(SendError::Transient(_))), "{outcome:?}");
    assert!(!connection.is_broken(), "a 4xx leaves the session usable");
}

#[tokio::test]
async fn an_international_domain_goes_out_in_ascii_to_a_relay_without_smtputf8() {
    let server = SmtpServer::start().await;
    let mut connection = open(server.port).await;
    let to: lettre::Address = "ana@bücher.example".parse().unwrap();
    let envelope = Envelope::new(Some("news@herald.test".parse().unwrap()), vec![to]).unwrap();
    connection.send(&envelope, &message(0)).await.unwrap();
    assert_eq!(server.received()[0].to, ["ana@xn--bcher-kva.example"]);

    let to: lettre::Address = "anaïs@example.org".parse().unwrap();
    let envelope = Envelope::new(Some("news@herald.test".parse().unwrap()), vec![to]).unwrap();
    let outcome = connection.send(&envelope, &message(1)).await;
    assert!(
        matches!(&outcome, Err(SendError::Permanent { bad_mailbox: false, reply }) if reply.contains("SMTPUTF8")),
        "{outcome:?}"
    );
    assert!(!connection.is_broken());
    assert_eq!(server.count(), 1);
}
