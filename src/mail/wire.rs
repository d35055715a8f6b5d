//! Herald's own SMTP client for plain connections (a relay on this machine or the private
//! network): one message per transaction on a kept-open connection, the envelope commands
//! and DATA sent in one write where the server offers PIPELINING (RFC 2920), and the DATA
//! stream dot-stuffed a run at a time (memchr) rather than byte by byte. lettre still
//! builds and signs the messages, and carries connections that need TLS.

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use lettre::address::Envelope;
use memchr::memmem;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufStream};
use tokio::net::TcpStream;

use super::mailer::SendError;

/// A reply: its code and its text lines joined by spaces.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub code: u16,
    pub text: String,
}

impl Reply {
    fn ok(&self) -> bool {
        (200..300).contains(&self.code)
    }

    fn error(&self) -> SendError {
        SendError::from_reply(self.code, &self.text)
    }
}

/// An open SMTP session, between transactions.
pub struct Connection {
    stream: BufStream<TcpStream>,
    pipelining: bool,
    /// RFC 6531: addresses may be sent in UTF-8.
    smtputf8: bool,
    /// RFC 6152: the data may hold 8-bit bytes.
    eight_bit: bool,
    timeout: Duration,
    line: String,
    /// The DATA stream being written, kept between messages for its capacity.
    data: Vec<u8>,
    /// Set when the session can no longer be trusted (an I/O error, a timeout, a 421).
    broken: bool,
}

fn transient(what: &str, e: impl std::fmt::Display) -> SendError {
    SendError::Transient(format!("{what}: {e}"))
}

/// Writes `message` as the DATA stream: every line starting with `.` gets one more
/// (RFC 5321 §4.5.2), then the end-of-data line.
pub fn dot_stuffed(message: &[u8], out: &mut Vec<u8>) {
    out.reserve(message.len() + 64);
    if message.first() == Some(&b'.') {
        out.push(b'.');
    }
    let mut from = 0;
    for at in memmem::find_iter(message, b"\n.") {
        out.extend_from_slice(&message[from..=at]);
        out.push(b'.');
        from = at + 1;
    }
    out.extend_from_slice(&message[from..]);
    if !message.is_empty() && !message.ends_with(b"\r\n") {
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b".\r\n");
}

impl Connection {
    /// Connects, reads the greeting, says EHLO as `hello` and, with a username, logs in
    /// (AUTH PLAIN, or LOGIN where only that is offered).
    pub async fn open(
        host: &str,
        port: u16,
        hello: &str,
        credentials: Option<(&str, &str)>,
        timeout: Duration,
    ) -> Result<Self, SendError> {
        let where_ = format!("{host}:{port}");
        let tcp = tokio::time::timeout(timeout, TcpStream::connect((host, port)))
            .await
            .map_err(|e| transient(&format!("timed out connecting to {where_}"), e))?
            .map_err(|e| transient(&format!("cannot connect to {where_}"), e))?;
        tcp.set_nodelay(true)
            .map_err(|e| transient(&format!("cannot configure the socket to {where_}"), e))?;
        let mut c = Self {
            stream: BufStream::new(tcp),
            pipelining: false,
            smtputf8: false,
            eight_bit: false,
            timeout,
            line: String::new(),
            data: Vec::new(),
            broken: false,
        };
        let greeting = c.reply().await?;
        if greeting.code != 220 {
            return Err(greeting.error());
        }
        c.command(&format!("EHLO {hello}\r\n")).await?;
        let ehlo = c.reply_lines().await?;
        if !(200..300).contains(&ehlo.0) {
            return Err(SendError::from_reply(ehlo.0, &ehlo.1.join(" ")));
        }
        let keywords: Vec<String> = ehlo.1.iter().skip(1).map(|l| l.trim().to_ascii_uppercase()).collect();
        c.pipelining = keywords.iter().any(|k| k == "PIPELINING");
        c.smtputf8 = keywords.iter().any(|k| k == "SMTPUTF8");
        c.eight_bit = keywords.iter().any(|k| k == "8BITMIME");
        if let Some((user, password)) = credentials {
            let mechanisms: Vec<&str> = keywords
                .iter()
                .filter_map(|k| k.strip_prefix("AUTH").filter(|r| r.starts_with([' ', '='])))
                .flat_map(|r| r[1..].split_whitespace())
                .collect();
            if mechanisms.contains(&"PLAIN") || !mechanisms.contains(&"LOGIN") {
                let token = STANDARD.encode(format!("\0{user}\0{password}"));
                c.command(&format!("AUTH PLAIN {token}\r\n")).await?;
            } else {
                c.command("AUTH LOGIN\r\n").await?;
                for answer in [user, password] {
                    let prompt = c.reply().await?;
                    if prompt.code != 334 {
                        return Err(prompt.error());
                    }
                    c.command(&format!("{}\r\n", STANDARD.encode(answer))).await?;
                }
            }
            let done = c.reply().await?;
            if done.code != 235 {
                return Err(done.error());
            }
        }
        Ok(c)
    }

    pub fn is_broken(&self) -> bool {
        self.broken
    }

    pub fn pipelining(&self) -> bool {
        self.pipelining
    }

    async fn command(&mut self, text: &str) -> Result<(), SendError> {
        self.write(text.as_bytes()).await?;
        self.flush().await
    }

    async fn write(&mut self, bytes: &[u8]) -> Result<(), SendError> {
        let result = tokio::time::timeout(self.timeout, self.stream.write_all(bytes)).await;
        match result {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.fail("the connection to the relay failed", e)),
            Err(e) => Err(self.fail("the relay did not take the data in time", e)),
        }
    }

    async fn flush(&mut self) -> Result<(), SendError> {
        match tokio::time::timeout(self.timeout, self.stream.flush()).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(self.fail("the connection to the relay failed", e)),
            Err(e) => Err(self.fail("the relay did not take the data in time", e)),
        }
    }

    fn fail(&mut self, what: &str, e: impl std::fmt::Display) -> SendError {
        self.broken = true;
        transient(what, e)
    }

    /// One reply, however many lines: its code and its text lines.
    async fn reply_lines(&mut self) -> Result<(u16, Vec<String>), SendError> {
        let mut lines = Vec::new();
        loop {
            self.line.clear();
            let read = tokio::time::timeout(self.timeout, self.stream.read_line(&mut self.line)).await;
            match read {
                Ok(Ok(0)) => return Err(self.fail("the relay closed the connection", "end of stream")),
                Ok(Ok(_)) => {}
                Ok(Err(e)) => return Err(self.fail("the connection to the relay failed", e)),
                Err(e) => return Err(self.fail("the relay did not answer in time", e)),
            }
            let line = self.line.trim_end_matches(['\r', '\n']);
            let code = line
                .get(..3)
                .filter(|c| c.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|c| c.parse::<u16>().ok());
            let Some(code) = code else {
                let shown: String = line.chars().take(80).collect();
                return Err(self.fail("the relay's reply is not SMTP", format!("{shown:?}")));
            };
            lines.push(line.get(4..).unwrap_or("").to_owned());
            if line.as_bytes().get(3) != Some(&b'-') {
                if code == 421 {
                    // The server is closing the session: nothing more can go on it.
                    self.broken = true;
                }
                return Ok((code, lines));
            }
        }
    }

    async fn reply(&mut self) -> Result<Reply, SendError> {
        let (code, lines) = self.reply_lines().await?;
        Ok(Reply {
            code,
            text: lines.join(" ").trim().to_owned(),
        })
    }

    /// Sends one message to the envelope's one recipient (Herald's messages each have
    /// their own): accepted (250 after the data) or why not. A refused transaction is reset,
    /// so the session stays usable.
    pub async fn send(&mut self, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        if envelope.to().len() != 1 {
            // With several, one refused among those accepted would leave DATA half right.
            return Err(SendError::Permanent {
                reply: format!("a message goes to one recipient, not {}", envelope.to().len()),
                bad_mailbox: false,
            });
        }
        let from = match envelope.from() {
            Some(a) => self.address(a)?,
            None => String::new(),
        };
        let recipients: Vec<String> = envelope
            .to()
            .iter()
            .map(|a| self.address(a))
            .collect::<Result<_, _>>()?;
        let mut parameters = String::new();
        if self.smtputf8 && (!from.is_ascii() || recipients.iter().any(|r| !r.is_ascii())) {
            parameters.push_str(" SMTPUTF8");
        }
        if !message.is_ascii() {
            if !self.eight_bit {
                return Err(SendError::Permanent {
                    reply: "the relay does not take 8-bit data (no 8BITMIME)".into(),
                    bad_mailbox: false,
                });
            }
            parameters.push_str(" BODY=8BITMIME");
        }
        let mut commands = format!("MAIL FROM:<{from}>{parameters}\r\n");
        let recipients = &recipients;
        let mut refused = None;
        if self.pipelining {
            for to in recipients {
                commands.push_str(&format!("RCPT TO:<{to}>\r\n"));
            }
            commands.push_str("DATA\r\n");
            self.command(&commands).await?;
            // One reply per command, in order; a 421 ends the session at once.
            for _ in 0..recipients.len() + 1 {
                let reply = self.reply().await?;
                if reply.code == 421 {
                    return Err(reply.error());
                }
                if !reply.ok() && refused.is_none() {
                    refused = Some(reply);
                }
            }
            let data = self.reply().await?;
            if data.code == 421 {
                return Err(data.error());
            }
            if data.code == 354 && refused.is_some() {
                // The server took DATA although the envelope failed: end an empty message.
                self.command(".\r\n").await?;
                self.reply().await?;
            } else if data.code != 354 && refused.is_none() {
                refused = Some(data);
            }
        } else {
            self.command(&commands).await?;
            let mail = self.reply().await?;
            if !mail.ok() {
                refused = Some(mail);
            }
            for to in recipients {
                if refused.is_some() {
                    break;
                }
                self.command(&format!("RCPT TO:<{to}>\r\n")).await?;
                let rcpt = self.reply().await?;
                if !rcpt.ok() {
                    refused = Some(rcpt);
                }
            }
            if refused.is_none() {
                self.command("DATA\r\n").await?;
                let data = self.reply().await?;
                if data.code != 354 {
                    refused = Some(data);
                }
            }
        }
        if let Some(reply) = refused {
            self.reset().await;
            return Err(reply.error());
        }
        let mut data = std::mem::take(&mut self.data);
        data.clear();
        dot_stuffed(message, &mut data);
        let written = self.write(&data).await;
        self.data = data;
        written?;
        self.flush().await?;
        let done = self.reply().await?;
        if done.ok() { Ok(()) } else { Err(done.error()) }
    }

    /// An address as the envelope can carry it: as it is where it is ASCII or the relay
    /// takes UTF-8, else with its domain in ASCII (IDNA); a local part in UTF-8 cannot go
    /// through a relay without SMTPUTF8.
    fn address(&self, address: &lettre::Address) -> Result<String, SendError> {
        let text = address.to_string();
        if text.is_ascii() || self.smtputf8 {
            return Ok(text);
        }
        let refuse = |why: &str| SendError::Permanent {
            reply: format!("{text}: {why}"),
            bad_mailbox: false,
        };
        if !address.user().is_ascii() {
            return Err(refuse("the relay does not take UTF-8 addresses (no SMTPUTF8)"));
        }
        let domain = idna::domain_to_ascii(address.domain()).map_err(|_| refuse("the domain has no ASCII form"))?;
        Ok(format!("{}@{domain}", address.user()))
    }

    /// Abandons the transaction; a session that cannot is marked broken.
    async fn reset(&mut self) {
        if self.broken {
            return;
        }
        let reset = async {
            self.command("RSET\r\n").await?;
            self.reply().await
        };
        if !matches!(reset.await, Ok(r) if r.ok()) {
            self.broken = true;
        }
    }

    /// Ends the session politely.
    pub async fn quit(mut self) {
        if !self.broken && self.command("QUIT\r\n").await.is_ok() {
            let _ = self.reply().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn unstuff(data: &[u8]) -> Vec<u8> {
        let body = data.strip_suffix(b".\r\n").expect("the end-of-data line");
        let mut out = Vec::new();
        for line in body.split_inclusive(|b| *b == b'\n') {
            out.extend_from_slice(line.strip_prefix(b".").unwrap_or(line));
        }
        out
    }

    #[test]
    fn lines_starting_with_a_dot_get_another() {
        let mut out = Vec::new();
        dot_stuffed(b".first\r\nplain\r\n.\r\n..two\r\nend.\r\n", &mut out);
        assert_eq!(out, b"..first\r\nplain\r\n..\r\n...two\r\nend.\r\n.\r\n");
        let mut out = Vec::new();
        dot_stuffed(b"no line end", &mut out);
        assert_eq!(out, b"no line end\r\n.\r\n");
    }

    proptest! {
        #[test]
        fn the_stream_unstuffs_to_the_message(lines in proptest::collection::vec("[.a-z ]{0,6}", 0..20)) {
            let message: Vec<u8> = lines.iter().flat_map(|l| format!("{l}\r\n").into_bytes()).collect();
            let mut out = Vec::new();
            dot_stuffed(&message, &mut out);
            // The data never holds a line that is a lone dot before its end.
            let body = &out[..out.len() - 3];
            prop_assert!(!body.starts_with(b".\r\n") && memmem::find(body, b"\r\n.\r\n").is_none());
            prop_assert_eq!(unstuff(&out), message);
        }
    }
}
