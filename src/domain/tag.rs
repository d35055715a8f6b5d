//! Tags (topics): the name an author wrote and its slug. Uses `domain` only.

use std::collections::BTreeSet;
use std::fmt;

use super::Slug;

/// A topic a post belongs to. Its `slug` names it in URLs and in subscribers'
/// topic choices; its `name` is how the author first wrote it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
pub struct Tag {
    slug: String,
    name: String,
}

/// Why a string is not a tag.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TagError {
    #[error("a tag needs at least one letter or digit, {0:?} has none")]
    Empty(String),
    #[error("a tag is at most {max} characters long")]
    TooLong { max: usize },
}

impl Tag {
    pub const MAX_LEN: usize = 64;

    /// Parses a tag as an author writes it ("Water quality", "Über uns") into its slug
    /// ("water-quality", "uber-uns"; see [`Slug::slugify`]) and display name.
    pub fn parse(s: &str) -> Result<Self, TagError> {
        let name = s.trim();
        if name.chars().count() > Self::MAX_LEN {
            return Err(TagError::TooLong { max: Self::MAX_LEN });
        }
        let slug = Slug::slugify(name).ok_or_else(|| TagError::Empty(s.to_owned()))?;
        Ok(Self {
            slug: slug.as_str().to_owned(),
            name: name.to_owned(),
        })
    }

    /// Rebuilds a tag read back from the store.
    pub fn from_parts(slug: String, name: String) -> Self {
        Self { slug, name }
    }

    pub fn slug(&self) -> &str {
        &self.slug
    }

    pub fn name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for Tag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

/// Topics asked for that no post has.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownTopics {
    pub unknown: Vec<String>,
    pub known: Vec<String>,
}

impl fmt::Display for UnknownTopics {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let quoted = |items: &[String]| items.iter().map(|t| format!("{t:?}")).collect::<Vec<_>>().join(", ");
        let noun = if self.unknown.len() == 1 { "topic" } else { "topics" };
        write!(f, "unknown {noun} {}", quoted(&self.unknown))?;
        if self.known.is_empty() {
            write!(f, " (no post has a topic yet)")
        } else {
            write!(f, " (known topics: {})", self.known.join(", "))
        }
    }
}

impl std::error::Error for UnknownTopics {}

/// The topics of `asked` (slugs) that are not in `known`, if any.
pub fn check_topics(asked: &[String], known: &BTreeSet<String>) -> Result<(), UnknownTopics> {
    let unknown: Vec<String> = asked.iter().filter(|t| !known.contains(*t)).cloned().collect();
    if unknown.is_empty() {
        Ok(())
    } else {
        Err(UnknownTopics {
            unknown,
            known: known.iter().cloned().collect(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tags_are_compared_by_their_slug_form() {
        let tag = Tag::parse(" Water Quality ").unwrap();
        assert_eq!(tag.slug(), "water-quality");
        assert_eq!(tag.name(), "Water Quality");
        assert_eq!(Tag::parse("water-quality").unwrap().slug(), "water-quality");
    }

    #[test]
    fn tags_in_any_script_have_a_slug() {
        let tag = Tag::parse("Über uns").unwrap();
        assert_eq!((tag.slug(), tag.name()), ("uber-uns", "Über uns"));
        assert_eq!(Tag::parse("Охрана природы").unwrap().slug(), "okhrana-prirody");
        assert_eq!(Tag::parse("🦦").unwrap().slug(), "otter");
        assert_eq!(Tag::parse("‼").unwrap().slug(), "x-ed9e96d2bd");
    }

    #[test]
    fn refuses_empty_and_overlong_tags() {
        assert!(matches!(Tag::parse("  "), Err(TagError::Empty(_))));
        assert!(matches!(Tag::parse("%%"), Err(TagError::Empty(_))));
        assert!(matches!(Tag::parse(&"x".repeat(65)), Err(TagError::TooLong { .. })));
    }

    proptest! {
        #[test]
        fn every_parsed_tag_has_a_valid_slug(text in "\\PC{0,64}") {
            if let Ok(tag) = Tag::parse(&text) {
                prop_assert!(Slug::parse(tag.slug()).is_ok());
            }
        }
    }

    #[test]
    fn unknown_topics_are_named_with_the_known_ones() {
        let known: BTreeSet<String> = ["rivers", "wildlife"].map(String::from).into();
        assert_eq!(check_topics(&["rivers".into()], &known), Ok(()));
        let error = check_topics(&["rivers".into(), "otterz".into()], &known).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown topic \"otterz\" (known topics: rivers, wildlife)"
        );
        let none = check_topics(&["a".into(), "b".into()], &BTreeSet::new()).unwrap_err();
        assert_eq!(
            none.to_string(),
            "unknown topics \"a\", \"b\" (no post has a topic yet)"
        );
    }
}
