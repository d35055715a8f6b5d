//! What Herald keeps of a bounce, a complaint or a reactivation, and how it reads the
//! Message-ID of its own mail back. Uses `domain` only.

use chrono::{DateTime, Utc};

use super::{BounceKind, BounceSource};

/// The longest diagnostic kept (a provider's or an SMTP server's text, or an admin's reason).
pub const DIAGNOSTIC_MAX_CHARS: usize = 1000;

/// One recorded event about an address.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct BounceEvent {
    pub id: i64,
    /// The subscriber it was matched to, if any (kept as `null` if they are deleted).
    pub subscriber_id: Option<i64>,
    /// The address, lowercased, as the report gave it.
    pub address: String,
    pub kind: BounceKind,
    /// The provider's or server's text; for a reactivation, the admin's reason.
    pub diagnostic: Option<String>,
    pub source: BounceSource,
    /// The edition whose message bounced, when the report names Herald's Message-ID.
    pub edition_id: Option<i64>,
    /// The provider's id of the event.
    pub external_id: Option<String>,
    pub occurred_at: DateTime<Utc>,
    pub recorded_at: DateTime<Utc>,
}

/// A diagnostic as kept: one trimmed text of at most [`DIAGNOSTIC_MAX_CHARS`] characters,
/// control characters (line breaks of a multi-line SMTP reply) as spaces; blank is none.
pub fn clean_diagnostic(text: &str) -> Option<String> {
    let text: String = text
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ");
    let text: String = text.chars().take(DIAGNOSTIC_MAX_CHARS).collect();
    (!text.is_empty()).then_some(text)
}

/// What Herald's own Message-ID says a message was: `<edition.E.S@domain>` is edition E to
/// subscriber S (a digest), `<confirm.S.x@domain>` a confirmation link to subscriber S,
/// `<test.E.x@domain>` a test send of edition E (to an admin, not a subscriber).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OwnMessage {
    pub edition_id: Option<i64>,
    pub subscriber_id: Option<i64>,
}

/// The check a digest's return path carries after its key (`edition.E.S.CHECK`): derived
/// from the subscriber's secret manage token, so only the server that sent the message can
/// write a return path that names this subscriber. A forged report to
/// `bounces+edition.1.2.x@...` cannot suppress subscriber 2 without it.
pub fn return_path_check(manage_token: &str, message_key: &str) -> String {
    use sha2::{Digest, Sha256};
    let digest = Sha256::digest(format!("return-path\0{manage_token}\0{message_key}"));
    hex::encode(&digest[..8])
}

impl OwnMessage {
    /// Reads a Message-ID (with or without its angle brackets); `None` if it is not one of
    /// the forms Herald writes.
    pub fn parse(message_id: &str) -> Option<Self> {
        let id = message_id.trim();
        let id = id.strip_prefix('<').unwrap_or(id);
        let id = id.strip_suffix('>').unwrap_or(id);
        let (local, _domain) = id.rsplit_once('@')?;
        Self::from_key(local)
    }

    /// Reads the key of one of Herald's messages (a Message-ID's local part, as a return
    /// path's token carries it: `edition.E.S`, `confirm.S.x`, `test.E.x`).
    pub fn from_key(local: &str) -> Option<Self> {
        let mut parts = local.split('.');
        let kind = parts.next()?;
        let first: i64 = parts.next()?.parse().ok()?;
        let second = parts.next()?;
        if parts.next().is_some() {
            return None;
        }
        match kind {
            "edition" => Some(Self {
                edition_id: Some(first),
                subscriber_id: Some(second.parse().ok()?),
            }),
            "confirm" => Some(Self {
                edition_id: None,
                subscriber_id: Some(first),
            }),
            "test" => Some(Self {
                edition_id: Some(first),
                subscriber_id: None,
            }),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn own_message_ids_name_their_edition_and_subscriber() {
        assert_eq!(
            OwnMessage::parse("<edition.12.345@news.example>"),
            Some(OwnMessage {
                edition_id: Some(12),
                subscriber_id: Some(345)
            })
        );
        assert_eq!(
            OwnMessage::parse("edition.1.2@x"),
            Some(OwnMessage {
                edition_id: Some(1),
                subscriber_id: Some(2)
            })
        );
        assert_eq!(
            OwnMessage::parse("<confirm.7.0a1b2c@news.example>").and_then(|m| m.subscriber_id),
            Some(7)
        );
        assert_eq!(
            OwnMessage::parse("<test.3.ffee@news.example>"),
            Some(OwnMessage {
                edition_id: Some(3),
                subscriber_id: None
            })
        );
        for other in [
            "",
            "<0100018c@email.amazonses.com>",
            "<edition.x.1@a>",
            "<edition.1.2.3@a>",
            "edition.1.2",
        ] {
            assert_eq!(OwnMessage::parse(other), None, "{other:?}");
        }
    }

    proptest::proptest! {
        /// Every Message-ID Herald writes for a digest reads back as its edition and
        /// subscriber; any other text reads as nothing or as some message, never panics.
        #[test]
        fn digest_message_ids_read_back(edition in 0i64..i64::MAX, subscriber in 0i64..i64::MAX, any in ".*") {
            let own = OwnMessage::parse(&format!("<edition.{edition}.{subscriber}@news.example>"));
            proptest::prop_assert_eq!(own, Some(OwnMessage { edition_id: Some(edition), subscriber_id: Some(subscriber) }));
            let _ = OwnMessage::parse(&any);
        }
    }

    #[test]
    fn diagnostics_are_one_bounded_line() {
        assert_eq!(
            clean_diagnostic("550 5.1.1 <a@b>:\r\n  user unknown ").as_deref(),
            Some("550 5.1.1 <a@b>: user unknown")
        );
        assert_eq!(clean_diagnostic(" \n "), None);
        assert_eq!(clean_diagnostic(&"é".repeat(2000)).unwrap().chars().count(), 1000);
    }
}
