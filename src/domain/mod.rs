//! Plain types with their invariants: posts, slugs, tags. No I/O here.

mod email;
mod post;
mod slug;
mod subscriber;
mod tag;

pub use email::{EmailAddress, EmailError};
pub use post::{Post, PostDraft};
pub use slug::{Slug, SlugError};
pub use subscriber::{
    Choices, Frequency, NameError, Subscriber, SubscriberSource, SubscriberStatus, UnknownValue, parse_name,
    parse_topics,
};
pub use tag::{Tag, TagError};
