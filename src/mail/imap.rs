//! The bounce mailbox: fetches the messages not yet seen in one IMAP folder, hands each to a
//! reader, and marks it seen once the reader is done with it. A message is fetched with
//! `BODY.PEEK[]`, so one that Herald stops in the middle of stays unseen and is read again
//! at the next look (readers keep each report once). Uses `config` only.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use async_imap::Client;
use futures_util::StreamExt;
use secrecy::ExposeSecret;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::config::{ImapSettings, SmtpTls};

/// How long connecting, logging in and each command may take.
const TIMEOUT: Duration = Duration::from_secs(60);
/// Messages fetched per command.
const FETCH_BATCH: usize = 50;
/// A message larger than this is marked seen and skipped: a report is a few KiB plus the
/// returned message, and Herald's own messages are far smaller.
const MAX_MESSAGE: usize = 10 * 1024 * 1024;

/// What one look at the mailbox did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Looked {
    /// Messages handed to the reader and marked seen.
    pub read: usize,
    /// Messages too large to read, marked seen and left in the folder.
    pub skipped: usize,
}

/// Reads every unseen message in the configured folder with `read` (the raw RFC 5322 bytes)
/// and marks each seen after `read` returns `Ok`. A message `read` fails on stays unseen
/// and the look stops there, so nothing is skipped because the database was away.
pub async fn read_unseen<F, Fut>(settings: &ImapSettings, read: F) -> anyhow::Result<Looked>
where
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let where_ = format!("{}:{}", settings.host, settings.port());
    let tcp = tokio::time::timeout(TIMEOUT, TcpStream::connect((settings.host.as_str(), settings.port())))
        .await
        .with_context(|| format!("IMAP {where_}: no connection within {TIMEOUT:?}"))?
        .with_context(|| format!("IMAP {where_}: cannot connect"))?;
    tcp.set_nodelay(true)?;
    match settings.tls {
        SmtpTls::None => {
            let mut client = Client::new(tcp);
            greeting(&mut client, &where_).await?;
            session(client, settings, &where_, read).await
        }
        SmtpTls::Tls => {
            let mut client = Client::new(tls(tcp, &settings.host, &where_).await?);
            greeting(&mut client, &where_).await?;
            session(client, settings, &where_, read).await
        }
        SmtpTls::Starttls => {
            let mut client = Client::new(tcp);
            greeting(&mut client, &where_).await?;
            client
                .run_command_and_check_ok("STARTTLS", None)
                .await
                .with_context(|| format!("IMAP {where_}: STARTTLS refused"))?;
            let client = Client::new(tls(client.into_inner(), &settings.host, &where_).await?);
            session(client, settings, &where_, read).await
        }
    }
}

async fn greeting<T>(client: &mut Client<T>, where_: &str) -> anyhow::Result<()>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
{
    tokio::time::timeout(TIMEOUT, client.read_response())
        .await
        .with_context(|| format!("IMAP {where_}: no greeting within {TIMEOUT:?}"))??
        .with_context(|| format!("IMAP {where_}: closed before its greeting"))?;
    Ok(())
}

async fn tls(tcp: TcpStream, host: &str, where_: &str) -> anyhow::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let roots = rustls_roots();
    let config = tokio_rustls::rustls::ClientConfig::builder_with_provider(Arc::new(
        tokio_rustls::rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_owned())
        .with_context(|| format!("IMAP {where_}: {host:?} is not a host name"))?;
    tokio::time::timeout(
        TIMEOUT,
        tokio_rustls::TlsConnector::from(Arc::new(config)).connect(name, tcp),
    )
    .await
    .with_context(|| format!("IMAP {where_}: no TLS handshake within {TIMEOUT:?}"))?
    .with_context(|| format!("IMAP {where_}: TLS handshake failed"))
}

fn rustls_roots() -> tokio_rustls::rustls::RootCertStore {
    tokio_rustls::rustls::RootCertStore {
        roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
    }
}

async fn session<T, F, Fut>(
    client: Client<T>,
    settings: &ImapSettings,
    where_: &str,
    mut read: F,
) -> anyhow::Result<Looked>
where
    T: AsyncRead + AsyncWrite + Unpin + std::fmt::Debug + Send,
    F: FnMut(Vec<u8>) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let login = client.login(&settings.username, settings.password.expose_secret());
    let mut session = tokio::time::timeout(TIMEOUT, login)
        .await
        .with_context(|| format!("IMAP {where_}: no answer to LOGIN within {TIMEOUT:?}"))?
        .map_err(|(e, _)| e)
        .with_context(|| format!("IMAP {where_}: login as {:?} refused", settings.username))?;
    session
        .select(&settings.folder)
        .await
        .with_context(|| format!("IMAP {where_}: cannot open folder {:?}", settings.folder))?;
    let mut uids: Vec<u32> = session
        .uid_search("UNSEEN")
        .await
        .with_context(|| format!("IMAP {where_}: SEARCH UNSEEN failed"))?
        .into_iter()
        .collect();
    uids.sort_unstable();
    let mut looked = Looked::default();
    for batch in uids.chunks(FETCH_BATCH) {
        let set = batch.iter().map(u32::to_string).collect::<Vec<_>>().join(",");
        let mut messages = Vec::new();
        {
            let mut fetches = session
                .uid_fetch(&set, "(UID RFC822.SIZE BODY.PEEK[])")
                .await
                .with_context(|| format!("IMAP {where_}: FETCH failed"))?;
            while let Some(fetch) = fetches.next().await {
                let fetch = fetch.with_context(|| format!("IMAP {where_}: FETCH failed"))?;
                let Some(uid) = fetch.uid else { continue };
                let size = fetch.size.unwrap_or(0) as usize;
                let body = fetch.body().filter(|_| size <= MAX_MESSAGE).map(<[u8]>::to_vec);
                messages.push((uid, body));
            }
        }
        messages.sort_by_key(|(uid, _)| *uid);
        for (uid, body) in messages {
            match body {
                Some(body) => {
                    read(body).await?;
                    looked.read += 1;
                }
                None => {
                    tracing::warn!(uid, folder = %settings.folder, "bounce mailbox: message over 10 MiB skipped");
                    looked.skipped += 1;
                }
            }
            let mut stored = session
                .uid_store(uid.to_string(), "+FLAGS.SILENT (\\Seen)")
                .await
                .with_context(|| format!("IMAP {where_}: cannot mark message {uid} seen"))?;
            while let Some(answer) = stored.next().await {
                answer.with_context(|| format!("IMAP {where_}: cannot mark message {uid} seen"))?;
            }
        }
    }
    session.logout().await.ok();
    Ok(looked)
}
