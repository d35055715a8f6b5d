//! Plain types with their invariants: posts, slugs, tags, subscribers, the states of what
//! the store keeps (and how each is stored as text). No I/O here.
//! Uses nothing else in Herald.

mod bounce;
pub mod click;
mod colour;
mod email;
mod history;
mod lifecycle;
mod post;
mod slug;
mod states;
mod subscriber;
mod tag;
mod word;

pub use bounce::{BounceEvent, DIAGNOSTIC_MAX_CHARS, OwnMessage, clean_diagnostic, return_path_check};
pub use colour::{Colour, ColourError};
pub use email::{EmailAddress, EmailError};
pub use history::{Actor, ConsentEvidence, ConsentText, EventKind, EventSource, HistoryEvent, truncate_ip};
pub use lifecycle::{SubscriberEvent, Transition};
pub use post::{Post, PostDraft, PostSource};
pub use slug::{Slug, SlugError};
pub use states::{
    BounceKind, BounceSource, DeliveryStatus, EditionStatus, OutboxStatus, PauseCause, PollOutcome, PostState,
    RequestStatus,
};
pub use subscriber::{
    Choices, Frequency, NameError, Subscriber, SubscriberSource, SubscriberStatus, parse_name, parse_topics,
};
pub use tag::{Tag, TagError, UnknownTopics, check_topics};
pub use word::UnknownValue;
