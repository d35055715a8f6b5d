//! Subscribers: who they are, how often they want mail, what they chose, and their status on
//! the list. Uses `domain` only.

use chrono::{DateTime, Utc};

use super::word::word_enum;
use super::{EmailAddress, Tag};

/// Where a subscriber is in their life on the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberStatus {
    /// Asked to join, has not confirmed yet: gets nothing but the confirmation mail.
    Pending,
    Confirmed,
    Unsubscribed,
    /// The address bounced permanently: suppressed.
    Bounced,
    /// The subscriber reported mail as spam: suppressed.
    Complained,
}

/// How often a subscriber gets digests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Frequency {
    /// One mail per newly published post.
    Immediate,
    Daily,
    Weekly,
    /// Once a month, for readers who want a round-up.
    Monthly,
}

/// How a subscriber reached the list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriberSource {
    Form,
    Import,
    Cli,
    Api,
    /// Added by an admin in the console.
    Console,
}

word_enum!(SubscriberStatus, "status", Pending => "pending", Confirmed => "confirmed",
    Unsubscribed => "unsubscribed", Bounced => "bounced", Complained => "complained");
word_enum!(Frequency, "frequency", Immediate => "immediate", Daily => "daily", Weekly => "weekly",
    Monthly => "monthly");
word_enum!(SubscriberSource, "source", Form => "form", Import => "import", Cli => "cli", Api => "api",
    Console => "console");

impl Frequency {
    /// Words for the frequency in a sentence ("with every new post").
    pub fn sentence(self) -> &'static str {
        match self {
            Frequency::Immediate => "with every new post",
            Frequency::Daily => "once a day, when there is news",
            Frequency::Weekly => "once a week, when there is news",
            Frequency::Monthly => "once a month, when there is news",
        }
    }
}

/// A person on the list.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Subscriber {
    pub id: i64,
    pub email: EmailAddress,
    pub name: Option<String>,
    pub status: SubscriberStatus,
    pub frequency: Frequency,
    /// Tag slugs; empty means every post.
    pub topics: Vec<String>,
    pub source: SubscriberSource,
    #[serde(skip)]
    pub manage_token: String,
    pub consent_at: Option<DateTime<Utc>>,
    pub confirmed_at: Option<DateTime<Utc>>,
    pub unsubscribed_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// What a subscription request asks for: carried by the confirmation link it is mailed
/// with, and applied only when that link is followed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choices {
    pub name: Option<String>,
    pub frequency: Frequency,
    /// Tag slugs; empty means every post.
    pub topics: Vec<String>,
}

impl Choices {
    /// A subscriber's current choices (for a confirmation an admin asks for).
    pub fn of(subscriber: &Subscriber) -> Self {
        Self {
            name: subscriber.name.clone(),
            frequency: subscriber.frequency,
            topics: subscriber.topics.clone(),
        }
    }
}

/// Why a display name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    #[error("the name is longer than {max} characters")]
    TooLong { max: usize },
    #[error("the name cannot contain line breaks or control characters")]
    ControlCharacter,
}

/// A subscriber's optional display name: one line, no control characters (it ends up in
/// mail headers), at most 100 characters. Blank means none.
pub fn parse_name(input: &str) -> Result<Option<String>, NameError> {
    const MAX: usize = 100;
    if input.chars().any(char::is_control) {
        return Err(NameError::ControlCharacter);
    }
    let name = input.split_whitespace().collect::<Vec<_>>().join(" ");
    if name.chars().count() > MAX {
        return Err(NameError::TooLong { max: MAX });
    }
    Ok((!name.is_empty()).then_some(name))
}

/// Topics as tag slugs, deduplicated, from free text (`"Wildlife, water quality"`).
pub fn parse_topics<'a>(items: impl IntoIterator<Item = &'a str>) -> Result<Vec<String>, super::TagError> {
    let mut out: Vec<String> = Vec::new();
    for item in items {
        if item.trim().is_empty() {
            continue;
        }
        let slug = Tag::parse(item)?.slug().to_owned();
        if !out.contains(&slug) {
            out.push(slug);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_and_unknown_words_list_the_choices() {
        for f in Frequency::ALL {
            assert_eq!(f.as_str().parse::<Frequency>().unwrap(), *f);
        }
        assert_eq!(" Weekly ".parse::<Frequency>().unwrap(), Frequency::Weekly);
        assert_eq!("MONTHLY".parse::<Frequency>().unwrap(), Frequency::Monthly);
        let err = "yearly".parse::<Frequency>().unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"yearly\" is not a frequency; use one of: immediate daily weekly monthly"
        );
        assert!("gone".parse::<SubscriberStatus>().is_err());
    }

    #[test]
    fn names_are_one_clean_line() {
        assert_eq!(parse_name("  Ana   Smith ").unwrap().as_deref(), Some("Ana Smith"));
        assert_eq!(parse_name("   ").unwrap(), None);
        assert_eq!(
            parse_name("Ana\r\nBcc: x@evil.example"),
            Err(NameError::ControlCharacter)
        );
        assert!(matches!(parse_name(&"x".repeat(101)), Err(NameError::TooLong { .. })));
    }

    #[test]
    fn topics_become_unique_slugs() {
        assert_eq!(
            parse_topics(["Wildlife", " water quality", "wildlife", ""]).unwrap(),
            ["wildlife", "water-quality"]
        );
        assert!(parse_topics(["%%"]).is_err());
    }
}
