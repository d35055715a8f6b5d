//! The states of what Herald keeps in its queues and records: each a closed set of words,
//! stored as that word in a text column that the database checks against the same set.

use chrono::{DateTime, Utc};

use super::word::word_enum;

/// Where one message of an edition, to one subscriber, stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeliveryStatus {
    /// Waiting for its time (`next_attempt_at`) to come.
    Pending,
    /// Claimed by a worker until its lease (`next_attempt_at`) runs out.
    Sending,
    Sent,
    /// Given up on.
    Failed,
    /// Nothing to send this subscriber (their topics match none of the posts).
    Skipped,
}

/// Where an edition stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EditionStatus {
    /// Some of its deliveries are not final yet.
    Sending,
    /// Going to its canary sample first: the rest waits for the sample's verdict.
    Canary,
    /// Stopped until an admin resumes or cancels it (see [`PauseCause`]); its deliveries not
    /// yet sent wait, and no worker claims them.
    Paused,
    /// Every delivery is final.
    Sent,
    /// An admin stopped it for good: what was not sent then never is.
    Cancelled,
}

/// Why an edition paused itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PauseCause {
    /// The circuit breaker: too many permanent failures among the last sends.
    Breaker,
    /// The canary sample bounced or drew complaints above the thresholds.
    Canary,
}

/// Where a message in the outbox (transactional mail) stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutboxStatus {
    Pending,
    /// Claimed by a worker until its lease runs out.
    Sending,
    Sent,
    Failed,
}

/// What the last poll of a remote source found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PollOutcome {
    /// New or changed items were imported.
    Changed,
    /// Not modified, or nothing new in the feed.
    Unchanged,
    Failed,
}

/// Where a subscription request from the form stands (it is deleted once acted on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RequestStatus {
    Pending,
    /// Claimed by a worker until its lease runs out.
    Sending,
}

/// What a report about an address says happened (or what an admin did about it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceKind {
    /// A permanent failure: the mailbox does not exist or refuses mail for good.
    Hard,
    /// A temporary failure (mailbox full, greylisting): counted, and enough of them within
    /// the configured window count as a hard bounce.
    Soft,
    /// The reader reported a message as spam (a feedback loop).
    Complaint,
    /// An admin put a suppressed address back on the list, with a reason.
    Reactivated,
}

/// Who reported a bounce event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BounceSource {
    /// The SMTP server refused a message while Herald sent it (a 5xx reply).
    Smtp,
    /// Amazon SES, through an SNS notification.
    Ses,
    Postmark,
    Mailgun,
    Sendgrid,
    /// A delivery status notification read from a mailbox over IMAP.
    Imap,
    /// A delivery status notification handed to Herald (piped or posted).
    Ingest,
    /// An admin in the console.
    Console,
    /// An admin through the JSON API.
    Api,
}

/// Where a post stands for readers, from what is stored about it (whether it is a draft,
/// whether its source is gone, its date). Worked out, never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PostState {
    /// Public: not a draft, its date has come.
    Published,
    /// Not a draft, dated in the future.
    Scheduled,
    Draft,
    /// Its source (file or feed item) is gone; it comes back if the source returns.
    Unpublished,
}

impl PostState {
    /// The state of a post that is a draft or not, removed or not, dated `published_at`, at `now`.
    pub fn of(draft: bool, removed: bool, published_at: DateTime<Utc>, now: DateTime<Utc>) -> Self {
        if removed {
            PostState::Unpublished
        } else if draft {
            PostState::Draft
        } else if published_at > now {
            PostState::Scheduled
        } else {
            PostState::Published
        }
    }
}

word_enum!(DeliveryStatus, "delivery status", Pending => "pending", Sending => "sending", Sent => "sent",
    Failed => "failed", Skipped => "skipped");
word_enum!(EditionStatus, "edition status", Sending => "sending", Canary => "canary", Paused => "paused",
    Sent => "sent", Cancelled => "cancelled");
word_enum!(PauseCause, "pause cause", Breaker => "breaker", Canary => "canary");
word_enum!(OutboxStatus, "outbox status", Pending => "pending", Sending => "sending", Sent => "sent",
    Failed => "failed");
word_enum!(PollOutcome, "poll outcome", Changed => "changed", Unchanged => "unchanged", Failed => "failed");
word_enum!(RequestStatus, "request status", Pending => "pending", Sending => "sending");
word_enum!(BounceKind, "bounce kind", Hard => "hard", Soft => "soft", Complaint => "complaint",
    Reactivated => "reactivated");
word_enum!(BounceSource, "bounce source", Smtp => "smtp", Ses => "ses", Postmark => "postmark",
    Mailgun => "mailgun", Sendgrid => "sendgrid", Imap => "imap", Ingest => "ingest", Console => "console",
    Api => "api");
word_enum!(PostState, "post state", Published => "published", Scheduled => "scheduled", Draft => "draft",
    Unpublished => "unpublished");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip_through_text_and_serde() {
        fn check<T>(all: &[T])
        where
            T: Copy + PartialEq + std::fmt::Debug + std::str::FromStr + std::fmt::Display + serde::Serialize,
            <T as std::str::FromStr>::Err: std::fmt::Debug,
        {
            for value in all {
                let word = value.to_string();
                assert_eq!(word.parse::<T>().unwrap(), *value);
                assert_eq!(serde_json::to_value(value).unwrap(), serde_json::Value::String(word));
            }
        }
        check(DeliveryStatus::ALL);
        check(EditionStatus::ALL);
        check(PauseCause::ALL);
        check(OutboxStatus::ALL);
        check(PollOutcome::ALL);
        check(RequestStatus::ALL);
        check(PostState::ALL);
        check(BounceKind::ALL);
        check(BounceSource::ALL);
        assert_eq!(
            "ok".parse::<PollOutcome>().unwrap_err().to_string(),
            "\"ok\" is not a poll outcome; use one of: changed unchanged failed"
        );
    }

    #[test]
    fn a_post_state_follows_removal_then_draft_then_date() {
        let now = Utc::now();
        let later = now + chrono::Duration::days(1);
        assert_eq!(PostState::of(false, false, now, now), PostState::Published);
        assert_eq!(PostState::of(false, false, later, now), PostState::Scheduled);
        assert_eq!(PostState::of(true, false, later, now), PostState::Draft);
        assert_eq!(PostState::of(true, true, now, now), PostState::Unpublished);
    }
}
