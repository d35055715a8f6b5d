//! A subscriber's history and the evidence of their consent: what happened to them, when,
//! and who or what did it (the form, their own link, an import file, an API token, an admin),
//! as the store keeps it for a subject access request. Uses `domain` only.

use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::word::word_enum;
use super::{BounceSource, SubscriberEvent, SubscriberSource, SubscriberStatus};

/// What happened to a subscriber, as their history names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// Asked to join on the form; a confirmation link was mailed.
    Requested,
    /// Followed a confirmation link while pending.
    Confirmed,
    /// Followed a confirmation link after having left: back on the list.
    Resubscribed,
    Unsubscribed,
    Bounced,
    Complained,
    /// An admin put a bounced or complained address back.
    Reactivated,
    /// An admin set the status.
    StatusChanged,
    /// The reader changed their choices on the preferences page.
    PreferencesChanged,
    /// An admin changed their choices.
    Edited,
    /// An admin added them (console, API, command line).
    Added,
    /// A row of an imported file added or changed them.
    Imported,
}

word_enum!(EventKind, "event kind", Requested => "requested", Confirmed => "confirmed",
    Resubscribed => "resubscribed", Unsubscribed => "unsubscribed", Bounced => "bounced",
    Complained => "complained", Reactivated => "reactivated", StatusChanged => "status_changed",
    PreferencesChanged => "preferences_changed", Edited => "edited", Added => "added", Imported => "imported");

impl EventKind {
    /// How a history names a move of status from `from` to `to` that `event` made.
    pub fn of_move(event: SubscriberEvent, from: SubscriberStatus, to: SubscriberStatus) -> Self {
        match event {
            SubscriberEvent::Requested => EventKind::Requested,
            SubscriberEvent::Confirmed if from == SubscriberStatus::Unsubscribed => EventKind::Resubscribed,
            SubscriberEvent::Confirmed => EventKind::Confirmed,
            SubscriberEvent::Unsubscribed => EventKind::Unsubscribed,
            SubscriberEvent::Bounced => EventKind::Bounced,
            SubscriberEvent::Complained => EventKind::Complained,
            SubscriberEvent::AdminSet { .. } if from.suppressed() && !to.suppressed() => EventKind::Reactivated,
            SubscriberEvent::AdminSet { .. } => EventKind::StatusChanged,
            SubscriberEvent::Imported { .. } => EventKind::Imported,
        }
    }
}

/// Where a change came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventSource {
    /// The public subscribe form.
    Form,
    /// The reader's own link: confirmation, preferences, unsubscribe (one-click too).
    Link,
    Import,
    Api,
    Console,
    Cli,
    /// The SMTP server refused a message while Herald sent it.
    Smtp,
    Ses,
    Postmark,
    Mailgun,
    Sendgrid,
    Imap,
    Ingest,
}

word_enum!(EventSource, "event source", Form => "form", Link => "link", Import => "import", Api => "api",
    Console => "console", Cli => "cli", Smtp => "smtp", Ses => "ses", Postmark => "postmark",
    Mailgun => "mailgun", Sendgrid => "sendgrid", Imap => "imap", Ingest => "ingest");

impl From<BounceSource> for EventSource {
    fn from(source: BounceSource) -> Self {
        match source {
            BounceSource::Smtp => EventSource::Smtp,
            BounceSource::Ses => EventSource::Ses,
            BounceSource::Postmark => EventSource::Postmark,
            BounceSource::Mailgun => EventSource::Mailgun,
            BounceSource::Sendgrid => EventSource::Sendgrid,
            BounceSource::Imap => EventSource::Imap,
            BounceSource::Ingest => EventSource::Ingest,
            BounceSource::Console => EventSource::Console,
            BounceSource::Api => EventSource::Api,
        }
    }
}

impl From<SubscriberSource> for EventSource {
    fn from(source: SubscriberSource) -> Self {
        match source {
            SubscriberSource::Form => EventSource::Form,
            SubscriberSource::Import => EventSource::Import,
            SubscriberSource::Cli => EventSource::Cli,
            SubscriberSource::Api => EventSource::Api,
            SubscriberSource::Console => EventSource::Console,
        }
    }
}

/// Who or what makes a change: the source, and which one of it (the import file's name, the
/// API token's name, the admin's address).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Actor {
    pub source: EventSource,
    pub by: Option<String>,
}

impl Actor {
    pub fn new(source: EventSource, by: Option<String>) -> Self {
        let by = by
            .map(|b| b.trim().chars().take(200).collect::<String>())
            .filter(|b| !b.is_empty());
        Self { source, by }
    }

    /// The public form.
    pub fn form() -> Self {
        Self::new(EventSource::Form, None)
    }

    /// The reader's own link.
    pub fn link() -> Self {
        Self::new(EventSource::Link, None)
    }

    /// The command line.
    pub fn cli() -> Self {
        Self::new(EventSource::Cli, None)
    }

    /// An import of the file called `file`, if it has a name.
    pub fn import(file: Option<String>) -> Self {
        Self::new(EventSource::Import, file)
    }

    /// The API, called with the token named `token`.
    pub fn api(token: Option<String>) -> Self {
        Self::new(EventSource::Api, token)
    }

    /// The console, used by the admin `email`.
    pub fn console(email: &str) -> Self {
        Self::new(EventSource::Console, Some(email.to_owned()))
    }
}

/// One line of a subscriber's history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct HistoryEvent {
    /// An [`EventKind`] word, or for a bounce report `hard_bounce`, `soft_bounce` or
    /// `complaint_report`.
    pub kind: String,
    pub at: DateTime<Utc>,
    /// An [`EventSource`] word (for a bounce report, its reporter).
    pub source: String,
    /// Which one of the source: the file, the API token, the admin.
    pub by: Option<String>,
    /// What changed (`frequency weekly → daily`), the bounce's diagnostic, an admin's reason.
    pub detail: Option<String>,
    /// The version of the consent wording the form showed ([`ConsentText`]).
    pub wording_version: Option<String>,
    /// The address the request came from, truncated ([`truncate_ip`]).
    pub ip: Option<String>,
}

/// The wording a subscribe form showed, and its version: the first 12 hex digits of the
/// SHA-256 of the text, so the same words always have the same version.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ConsentText {
    pub version: String,
    pub text: String,
}

impl ConsentText {
    /// The wording as plain text (whitespace collapsed), with its version.
    pub fn new(text: &str) -> Self {
        use sha2::Digest;
        let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
        let version = hex::encode(&sha2::Sha256::digest(text.as_bytes())[..6]);
        Self { version, text }
    }
}

/// How a subscriber's consent was given, as far as Herald knows it: for a subject access
/// request, or to show a regulator.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ConsentEvidence {
    /// When they asked (the form), or were added or imported.
    pub given_at: Option<DateTime<Utc>>,
    /// How: `form`, `import`, `api`, `console` or `cli`.
    pub source: String,
    /// The import file, API token or admin.
    pub by: Option<String>,
    /// The consent wording the form showed them, if they used the form.
    pub wording: Option<ConsentText>,
    /// When they followed the confirmation link (or were added as confirmed).
    pub confirmed_at: Option<DateTime<Utc>>,
    /// The address the confirmation came from, truncated.
    pub confirmed_from: Option<String>,
}

/// An address cut to its network, as the UK ICO suggests for analytics: IPv4 to its /24
/// (`203.0.113.77` → `203.0.113.0`), IPv6 to its /48. An IPv4 address mapped into IPv6 is
/// cut as IPv4.
pub fn truncate_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            IpAddr::from([a, b, c, 0])
        }
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => truncate_ip(IpAddr::V4(v4)),
            None => {
                let s = v6.segments();
                IpAddr::from([s[0], s[1], s[2], 0, 0, 0, 0, 0])
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_are_cut_to_their_network() {
        for (given, kept) in [
            ("203.0.113.77", "203.0.113.0"),
            ("10.1.2.3", "10.1.2.0"),
            ("2001:db8:85a3:8d3:1319:8a2e:370:7348", "2001:db8:85a3::"),
            ("::ffff:198.51.100.9", "198.51.100.0"),
            ("::1", "::"),
        ] {
            assert_eq!(truncate_ip(given.parse().unwrap()).to_string(), kept, "{given}");
        }
    }

    #[test]
    fn the_same_wording_has_the_same_version() {
        let a = ConsentText::new("We will send one email\n  to confirm.");
        let b = ConsentText::new("We will send one email to confirm.");
        assert_eq!(a, b);
        assert_eq!(a.version.len(), 12);
        assert_ne!(ConsentText::new("Other words.").version, a.version);
    }

    #[test]
    fn words_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(k.as_str().parse::<EventKind>().unwrap(), *k);
        }
        for s in EventSource::ALL {
            assert_eq!(s.as_str().parse::<EventSource>().unwrap(), *s);
        }
    }
}
