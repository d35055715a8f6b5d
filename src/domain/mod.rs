//! Plain types with their invariants: posts, slugs, tags. No I/O here.

mod post;
mod slug;
mod tag;

pub use post::{Post, PostDraft};
pub use slug::{Slug, SlugError};
pub use tag::{Tag, TagError};
