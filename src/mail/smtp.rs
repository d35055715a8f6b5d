//! SMTP connections kept open and reused, a bounded number at a time. Plain connections
//! use Herald's own client ([`super::wire`]: pipelined commands, fast dot-stuffing); TLS
//! and STARTTLS connections use lettre's.
//!
//! lettre's pooled transport leaves Nagle's algorithm on, so each message's final `.` line
//! waits for the relay's delayed ACK: about 40 ms per message on one connection. Here each
//! connection's socket has TCP_NODELAY set before lettre takes it over, and the number of
//! connections open at once is bounded by a semaphore (lettre's pool bounds only idle ones).

use std::future::Future;
use std::pin::Pin;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use lettre::address::Envelope;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, TlsParameters};
use lettre::transport::smtp::extension::ClientId;
use secrecy::ExposeSecret;
use tokio::sync::Semaphore;

use super::mailer::{Mailer, SendError};
use super::wire;
use crate::config::{Settings, SmtpSettings, SmtpTls};

/// A bounded set of reusable SMTP connections to one relay.
pub struct SmtpPool {
    settings: SmtpSettings,
    hello: ClientId,
    idle: Mutex<Vec<Connection>>,
    permits: Semaphore,
}

/// An open session: Herald's own on plain TCP, lettre's over TLS.
enum Connection {
    Wire(wire::Connection),
    Lettre(Box<AsyncSmtpConnection>),
}

impl SmtpPool {
    pub fn new(settings: &SmtpSettings) -> Self {
        Self {
            hello: ClientId::default(),
            idle: Mutex::new(Vec::new()),
            permits: Semaphore::new(settings.pool_size.get() as usize),
            settings: settings.clone(),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.settings.timeout_seconds.max(1))
    }

    async fn connect(&self) -> Result<Connection, SendError> {
        let s = &self.settings;
        if s.tls == SmtpTls::None {
            let password = s.password.expose_secret();
            let credentials = (!s.username.is_empty()).then_some((s.username.as_str(), password));
            let hello = self.hello.to_string();
            return wire::Connection::open(&s.host, s.port, &hello, credentials, self.timeout())
                .await
                .map(Connection::Wire);
        }
        let transient =
            |what: &str, e: &dyn std::fmt::Display| SendError::Transient(format!("{what} {}:{}: {e}", s.host, s.port));
        let tls = || TlsParameters::new(s.host.clone()).map_err(|e| transient("TLS setup for", &e));
        let mut connection = match s.tls {
            SmtpTls::Tls => AsyncSmtpConnection::connect_tokio1(
                (s.host.as_str(), s.port),
                Some(self.timeout()),
                &self.hello,
                Some(tls()?),
                None,
            )
            .await
            .map_err(|e| transient("cannot connect to", &e))?,
            SmtpTls::None | SmtpTls::Starttls => {
                let stream = tokio::time::timeout(
                    self.timeout(),
                    tokio::net::TcpStream::connect((s.host.as_str(), s.port)),
                )
                .await
                .map_err(|e| transient("timed out connecting to", &e))?
                .map_err(|e| transient("cannot connect to", &e))?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| transient("cannot configure the socket to", &e))?;
                let mut c = tokio::time::timeout(
                    self.timeout(),
                    AsyncSmtpConnection::connect_with_transport(Box::new(stream), &self.hello),
                )
                .await
                .map_err(|e| transient("no greeting from", &e))?
                .map_err(|e| classify(&e))?;
                if s.tls == SmtpTls::Starttls {
                    c.starttls(tls()?, &self.hello).await.map_err(|e| classify(&e))?;
                }
                c
            }
        };
        if !s.username.is_empty() {
            let credentials = Credentials::new(s.username.clone(), s.password.expose_secret().to_owned());
            connection
                .auth(&[Mechanism::Plain, Mechanism::Login], &credentials)
                .await
                .map_err(|e| classify(&e))?;
        }
        Ok(Connection::Lettre(Box::new(connection)))
    }

    /// Sends one message on an idle connection (or a new one), then keeps the connection if
    /// it is still healthy.
    pub async fn send(&self, envelope: &Envelope, message: &[u8]) -> Result<(), SendError> {
        let _permit = self
            .permits
            .acquire()
            .await
            .map_err(|_| SendError::Transient("the mailer is shutting down".into()))?;
        let reused = self.idle.lock().ok().and_then(|mut idle| idle.pop());
        let mut connection = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        match &mut connection {
            Connection::Wire(c) => {
                // Each step has its own timeout; a session that failed is dropped.
                let outcome = c.send(envelope, message).await;
                if !c.is_broken() {
                    self.keep(connection);
                }
                outcome
            }
            Connection::Lettre(c) => {
                let outcome = tokio::time::timeout(self.timeout() * 4, c.send(envelope, message)).await;
                match outcome {
                    Ok(Ok(_)) => {
                        self.keep(connection);
                        Ok(())
                    }
                    // A refused message leaves lettre's connection marked broken: it is
                    // dropped, and the next message opens a fresh one.
                    Ok(Err(e)) => Err(classify(&e)),
                    Err(_) => Err(SendError::Transient("the relay did not answer in time".into())),
                }
            }
        }
    }

    fn keep(&self, connection: Connection) {
        if let Ok(mut idle) = self.idle.lock() {
            idle.push(connection);
        }
    }

    /// Closes idle connections politely.
    pub async fn close(&self) {
        let idle: Vec<_> = self
            .idle
            .lock()
            .map(|mut i| std::mem::take(&mut *i))
            .unwrap_or_default();
        for c in idle {
            match c {
                Connection::Wire(c) => c.quit().await,
                Connection::Lettre(mut c) => {
                    let _ = c.quit().await;
                }
            }
        }
    }
}

/// SMTP through a bounded pool of kept-open connections .
pub struct SmtpMailer {
    pool: SmtpPool,
}

impl SmtpMailer {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let smtp = &settings.mail.smtp;
        if smtp.tls != SmtpTls::None {
            TlsParameters::new(smtp.host.clone())
                .with_context(|| format!("mail.smtp.host {:?} cannot be used for TLS", smtp.host))?;
        }
        Ok(Self {
            pool: SmtpPool::new(smtp),
        })
    }
}

/// Turns lettre's error into a retry decision, reading the reply code and enhanced status.
pub fn classify(error: &lettre::transport::smtp::Error) -> SendError {
    match error.status() {
        Some(code) if error.is_permanent() || error.is_transient() => {
            let code = u16::from(code);
            let text = error.to_string();
            // lettre formats replies as "permanent error (550): 5.1.1 no such user".
            let detail = text.split_once("): ").map_or(text.as_str(), |(_, d)| d);
            SendError::from_reply(code, detail)
        }
        _ => SendError::Transient(error.to_string()),
    }
}

impl Mailer for SmtpMailer {
    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(self.pool.send(envelope, message))
    }
}
