//! The `Mailer` trait every transport implements, why a send failed (`SendError`), and the
//! transport that writes `.eml` files. Uses nothing else in Herald.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use anyhow::Context;
use lettre::address::Envelope;

/// Why a message was not sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Try again later: SMTP 4xx, a dropped connection, a timeout.
    #[error("temporary failure: {0}")]
    Transient(String),
    /// The server refused for good (SMTP 5xx). `bad_mailbox` is true when the address itself
    /// is at fault (RFC 3463 enhanced status 5.1.x, or a bare 550), so it should be suppressed;
    /// false for policy or content refusals (5.7.x), which are the sender's problem.
    #[error("permanent failure: {reply}")]
    Permanent { reply: String, bad_mailbox: bool },
}

impl SendError {
    /// Classifies an SMTP reply's text (`"550 5.1.1 no such user"`).
    pub fn from_reply(code: u16, text: &str) -> Self {
        let reply = format!("{code} {text}").trim().to_owned();
        if (400..500).contains(&code) {
            return SendError::Transient(reply);
        }
        let enhanced = text.split_whitespace().next().filter(|w| {
            let parts: Vec<_> = w.split('.').collect();
            parts.len() == 3
                && parts
                    .iter()
                    .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_digit()))
        });
        let bad_mailbox = match enhanced {
            Some(code) => code.starts_with("5.1.") || code == "5.2.1",
            None => matches!(code, 550 | 551 | 553),
        };
        SendError::Permanent { reply, bad_mailbox }
    }
}

/// Something that delivers one finished message to one envelope.
pub trait Mailer: Send + Sync {
    fn send<'a>(
        &'a self,
        envelope: &'a Envelope,
        message: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;
}

/// Writes each message as `<message-id>.eml` into a folder: the default, so a fresh checkout
/// runs with no mail server and every message can be opened in a mail client.
pub struct FileMailer {
    dir: PathBuf,
}

impl FileMailer {
    pub fn new(dir: PathBuf) -> anyhow::Result<Self> {
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("Failed to create the outbox folder {}", dir.display()))?;
        Ok(Self { dir })
    }

    fn file_name(message: &[u8]) -> String {
        // Name the file after the Message-ID so a re-send overwrites rather than duplicates.
        let text = String::from_utf8_lossy(&message[..message.len().min(8192)]);
        let id = text
            .lines()
            .take_while(|l| !l.is_empty())
            .find_map(|l| {
                let (name, value) = l.split_once(':')?;
                name.eq_ignore_ascii_case("message-id").then(|| value.trim().to_owned())
            })
            .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let safe: String = id
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '@') {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        format!("{}.eml", safe.trim_matches('_'))
    }
}

impl Mailer for FileMailer {
    fn send<'a>(
        &'a self,
        _envelope: &'a Envelope,
        message: &'a [u8],
    ) -> Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>> {
        Box::pin(async move {
            let path = self.dir.join(Self::file_name(message));
            // Written under a temporary name and renamed, so a reader of the folder never
            // sees half a message; on any failure (a full disk) the half is removed.
            let partial = path.with_extension("eml.partial");
            let write = async {
                tokio::fs::write(&partial, message).await?;
                tokio::fs::rename(&partial, &path).await
            };
            if let Err(e) = write.await {
                let _ = tokio::fs::remove_file(&partial).await;
                return Err(SendError::Transient(format!("cannot write {}: {e}", path.display())));
            }
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replies_are_classified_by_code_and_enhanced_status() {
        assert!(matches!(
            SendError::from_reply(421, "4.3.2 try later"),
            SendError::Transient(_)
        ));
        assert!(matches!(SendError::from_reply(451, "later"), SendError::Transient(_)));
        assert!(matches!(
            SendError::from_reply(550, "5.1.1 no such user"),
            SendError::Permanent { bad_mailbox: true, .. }
        ));
        assert!(matches!(
            SendError::from_reply(550, "5.7.1 message refused as spam"),
            SendError::Permanent { bad_mailbox: false, .. }
        ));
        assert!(matches!(
            SendError::from_reply(550, "mailbox unavailable"),
            SendError::Permanent { bad_mailbox: true, .. }
        ));
        assert!(matches!(
            SendError::from_reply(554, "transaction failed"),
            SendError::Permanent { bad_mailbox: false, .. }
        ));
    }

    #[test]
    fn outbox_files_are_named_after_the_message_id() {
        let name = FileMailer::file_name(b"From: a@b.c\r\nMessage-ID: <abc.1@news.example.org>\r\n\r\nBody");
        assert_eq!(name, "abc.1@news.example.org.eml");
        let evil = FileMailer::file_name(b"Message-ID: <../../etc/passwd>\r\n\r\n");
        assert!(!evil.contains('/'), "{evil}");
    }
}
