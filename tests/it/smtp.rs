//! A real in-process SMTP server for integration tests.
//!
//! The protocol is handled by the sans-IO `mailin` state machine; this module only moves CRLF-terminated lines
//! between a tokio socket and a `mailin::Session`, and records what was accepted.

use std::net::{IpAddr, Ipv4Addr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin::{Action, Handler, Response, SessionBuilder};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::{JoinHandle, JoinSet};

/// A message the server fully accepted (answered 250 after DATA).
#[derive(Clone, Debug)]
pub struct Received {
    /// Envelope sender (MAIL FROM), without angle brackets.
    pub from: String,
    /// Accepted envelope recipients (RCPT TO), without angle brackets.
    pub to: Vec<String>,
    /// The message as transmitted: headers and body, CRLF line endings, dot-stuffing removed.
    pub data: Vec<u8>,
}

/// What the server answers; set at any time, takes effect for following commands.
#[derive(Clone, Debug, Default)]
pub enum Behaviour {
    /// Accept every recipient and message.
    #[default]
    Accept,
    /// Every RCPT TO answered with this code+text, e.g. `(421, "4.3.2 try later")` or `(550, "5.1.1 no such user")`.
    /// A 421 also closes the connection, as SMTP requires.
    RejectAllRcpt(u16, String),
    /// RCPT TO for addresses containing a substring gets code+text; others accepted.
    RejectRcptMatching(Vec<(String, u16, String)>),
    /// Accept the first n messages (over all sessions), then answer every RCPT TO with code+text: a relay
    /// that starts refusing everything half-way through a send.
    RefuseAfter(usize, u16, String),
    /// Accept up to n messages in this session, then drop the TCP connection abruptly without replying when the
    /// client starts the next one (MAIL FROM); simulates a crash mid-session.
    DropAfter(usize),
}

#[derive(Default)]
struct Shared {
    behaviour: Mutex<Behaviour>,
    received: Mutex<Vec<Received>>,
    connections: AtomicUsize,
    rejected: AtomicUsize,
    /// EHLO offers PIPELINING (RFC 2920), as Postfix does; on unless turned off.
    no_pipelining: AtomicBool,
    /// The largest number of commands that arrived in one read: more than one means the
    /// client pipelined.
    most_lines_per_read: AtomicUsize,
}

impl Shared {
    fn behaviour(&self) -> Behaviour {
        self.behaviour.lock().unwrap().clone()
    }
}

/// An SMTP server on 127.0.0.1 (random port), running until dropped.
pub struct SmtpServer {
    /// The port the server listens on.
    pub port: u16,
    shared: Arc<Shared>,
    task: JoinHandle<()>,
}

impl SmtpServer {
    /// Binds 127.0.0.1:0 and spawns the accept loop, one task per connection.
    pub async fn start() -> SmtpServer {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let shared = Arc::new(Shared::default());
        let state = Arc::clone(&shared);
        let task = tokio::spawn(async move {
            // Owned by the accept loop: aborting the loop drops the set, which aborts every connection task.
            let mut conns = JoinSet::new();
            while let Ok((stream, peer)) = listener.accept().await {
                state.connections.fetch_add(1, Ordering::SeqCst);
                while conns.try_join_next().is_some() {}
                conns.spawn(serve(stream, peer.ip(), Arc::clone(&state)));
            }
        });
        SmtpServer { port, shared, task }
    }

    /// Stops offering PIPELINING to sessions that start from now on.
    pub fn without_pipelining(&self) {
        self.shared.no_pipelining.store(true, Ordering::SeqCst);
    }

    /// The most commands a client sent before reading a reply (outside DATA).
    pub fn most_commands_at_once(&self) -> usize {
        self.shared.most_lines_per_read.load(Ordering::SeqCst)
    }

    /// Changes how the server answers from the next command on (also on open connections).
    pub fn set_behaviour(&self, b: Behaviour) {
        *self.shared.behaviour.lock().unwrap() = b;
    }

    /// Messages fully accepted so far (250 after DATA), in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared.received.lock().unwrap().clone()
    }

    /// Number of messages fully accepted so far.
    pub fn count(&self) -> usize {
        self.shared.received.lock().unwrap().len()
    }

    /// Polls until at least `n` messages arrived or `timeout` passes; returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = tokio::time::Instant::now() + timeout;
        while self.count() < n && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        self.received()
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> usize {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// RCPT TO commands rejected so far (by `RejectAllRcpt` / `RejectRcptMatching`).
    pub fn rejected(&self) -> usize {
        self.shared.rejected.load(Ordering::SeqCst)
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Per-connection `mailin` handler: decides on recipients and collects message data.
struct ConnHandler {
    shared: Arc<Shared>,
    /// Messages accepted on this connection.
    accepted: usize,
    /// Message being received (between DATA and the final dot).
    current: Option<Received>,
    /// Set when the connection must be dropped without a reply.
    hang_up: Arc<AtomicBool>,
}

impl Handler for ConnHandler {
    fn mail(&mut self, _ip: IpAddr, _domain: &str, _from: &str) -> Response {
        if let Behaviour::DropAfter(n) = self.shared.behaviour()
            && self.accepted >= n
        {
            self.hang_up.store(true, Ordering::SeqCst);
        }
        mailin::response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        let reject = match self.shared.behaviour() {
            Behaviour::RejectAllRcpt(code, text) => Some((code, text)),
            Behaviour::RejectRcptMatching(rules) => rules.into_iter().find(|r| to.contains(&r.0)).map(|r| (r.1, r.2)),
            Behaviour::RefuseAfter(n, code, text) => {
                (self.shared.received.lock().unwrap().len() >= n).then_some((code, text))
            }
            Behaviour::Accept | Behaviour::DropAfter(_) => None,
        };
        match reject {
            Some((code, text)) => {
                self.shared.rejected.fetch_add(1, Ordering::SeqCst);
                Response::custom(code, text)
            }
            None => mailin::response::OK,
        }
    }

    fn data_start(&mut self, _domain: &str, from: &str, _is8bit: bool, to: &[String]) -> Response {
        let (from, to, data) = (from.to_owned(), to.to_vec(), Vec::new());
        self.current = Some(Received { from, to, data });
        mailin::response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        if let Some(msg) = self.current.as_mut() {
            msg.data.extend_from_slice(buf);
        }
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        if let Some(msg) = self.current.take() {
            self.shared.received.lock().unwrap().push(msg);
            self.accepted += 1;
        }
        mailin::response::OK
    }
}

/// Runs one SMTP session: greeting, then line in / response out until QUIT, close or EOF.
async fn serve(stream: TcpStream, peer: IpAddr, shared: Arc<Shared>) {
    let hang_up = Arc::new(AtomicBool::new(false));
    let pipelining = !shared.no_pipelining.load(Ordering::SeqCst);
    let counts = Arc::clone(&shared);
    let handler = ConnHandler {
        shared,
        accepted: 0,
        current: None,
        hang_up: Arc::clone(&hang_up),
    };
    let mut session = SessionBuilder::new("herald-test-smtp").build(peer, handler);
    let mut stream = BufReader::new(stream);
    let mut line = Vec::with_capacity(1024);
    let mut response = session.greeting();
    loop {
        // Close follows QUIT or a 421; UpgradeTls cannot happen as STARTTLS is never offered.
        let keep_open = matches!(response.action, Action::Reply | Action::NoReply);
        let mut out = response.buffer().unwrap_or_default(); // empty for NoReply
        const EXTENSIONS: &[u8] = b"250-server offers extensions:\r\n";
        if pipelining && out.starts_with(EXTENSIONS) {
            out.splice(
                EXTENSIONS.len()..EXTENSIONS.len(),
                b"250-PIPELINING\r\n".iter().copied(),
            );
        }
        if stream.get_mut().write_all(&out).await.is_err() || !keep_open {
            return;
        }
        line.clear();
        // Commands already waiting when this one is read were sent without waiting for a
        // reply (outside DATA, where lines come in bulk anyway).
        if matches!(response.action, Action::Reply) {
            let waiting = stream.buffer().iter().filter(|b| **b == b'\n').count();
            counts.most_lines_per_read.fetch_max(waiting, Ordering::SeqCst);
        }
        if !matches!(stream.read_until(b'\n', &mut line).await, Ok(1..)) {
            return; // EOF or I/O error
        }
        response = session.process(&line);
        if hang_up.load(Ordering::SeqCst) {
            return; // dropping the stream closes the socket without any reply
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lettre::transport::smtp::Error;
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};

    type Mailer = AsyncSmtpTransport<Tokio1Executor>;

    fn transport(server: &SmtpServer) -> Mailer {
        Mailer::builder_dangerous("127.0.0.1").port(server.port).build()
    }

    async fn send(mailer: &Mailer, to: &str, body: &str) -> Result<(), Error> {
        let builder = Message::builder().from("Herald <news@herald.test>".parse().unwrap());
        let msg = builder
            .to(to.parse().unwrap())
            .subject("Digest")
            .body(body.to_owned())
            .unwrap();
        mailer.send(msg).await.map(drop)
    }

    /// lettre returns pooled connections from a spawned task; let it run so the next send reuses the connection.
    async fn settle() {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    fn text(msg: &Received) -> String {
        String::from_utf8_lossy(&msg.data).into_owned()
    }

    #[tokio::test]
    async fn two_messages_over_one_connection() {
        let server = SmtpServer::start().await;
        let mailer = transport(&server);
        send(&mailer, "alice@example.com", "first issue body").await.unwrap();
        settle().await;
        send(&mailer, "bob@example.com", "second issue body\r\n.leading dot")
            .await
            .unwrap();

        let got = server.wait_for(2, Duration::from_secs(5)).await;
        assert_eq!(got.len(), 2);
        assert_eq!(server.connections(), 1, "pooled transport should reuse the connection");
        assert_eq!(got[0].from, "news@herald.test");
        assert_eq!(got[0].to, ["alice@example.com"]);
        assert!(text(&got[0]).contains("first issue body"));
        assert_eq!(got[1].to, ["bob@example.com"]);
        assert!(text(&got[1]).contains("Subject: Digest"));
        assert!(
            text(&got[1]).contains("second issue body\r\n.leading dot"),
            "dot-stuffing not undone"
        );
    }

    #[tokio::test]
    async fn reject_all_rcpt_421_is_transient() {
        let server = SmtpServer::start().await;
        server.set_behaviour(Behaviour::RejectAllRcpt(421, "4.3.2 try later".into()));
        let err = send(&transport(&server), "alice@example.com", "hello")
            .await
            .unwrap_err();
        assert!(err.is_transient(), "expected transient error, got {err:?}");
        assert_eq!(server.rejected(), 1);
        assert_eq!(server.count(), 0);
    }

    #[tokio::test]
    async fn reject_matching_550_is_permanent_others_accepted() {
        let server = SmtpServer::start().await;
        let rule = ("bad".to_owned(), 550, "5.1.1 no such user".to_owned());
        server.set_behaviour(Behaviour::RejectRcptMatching(vec![rule]));
        let mailer = transport(&server);
        let err = send(&mailer, "bad@example.com", "hello").await.unwrap_err();
        assert!(err.is_permanent(), "expected permanent error, got {err:?}");
        send(&mailer, "good@example.com", "hello good").await.unwrap();

        let got = server.wait_for(1, Duration::from_secs(5)).await;
        assert_eq!(server.rejected(), 1);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].to, ["good@example.com"]);
    }

    #[tokio::test]
    async fn drop_after_one_then_recover_on_new_connection() {
        let server = SmtpServer::start().await;
        server.set_behaviour(Behaviour::DropAfter(1));
        let mailer = transport(&server);
        send(&mailer, "alice@example.com", "one").await.unwrap();
        settle().await;
        let err = send(&mailer, "bob@example.com", "two").await.unwrap_err();
        assert!(!err.is_permanent(), "a dropped connection is not a rejection: {err:?}");
        assert_eq!(server.connections(), 1, "must fail on the reused connection");
        assert_eq!(server.count(), 1);

        server.set_behaviour(Behaviour::Accept);
        send(&mailer, "bob@example.com", "two again").await.unwrap();
        let got = server.wait_for(2, Duration::from_secs(5)).await;
        assert_eq!(server.connections(), 2);
        assert_eq!(got.len(), 2);
        assert!(text(&got[1]).contains("two again"));
    }
}
