//! The topics a subscriber may choose: the tags of the posts Herald has, and those that
//! remote sources give their posts. A topic no post has would leave its reader without mail,
//! so it is refused, with the known ones named.

use std::collections::BTreeSet;
use std::fmt;

use super::Subscriptions;
use crate::domain::Tag;
use crate::store;

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
pub fn check(asked: &[String], known: &BTreeSet<String>) -> Result<(), UnknownTopics> {
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

impl Subscriptions {
    /// Every topic a subscriber may choose, by slug.
    pub async fn known_topics(&self) -> anyhow::Result<BTreeSet<String>> {
        let mut known = store::posts::known_topics(&self.db).await?;
        for source in &self.site.settings().sources {
            known.extend(
                source
                    .tags
                    .iter()
                    .filter_map(|t| Tag::parse(t).ok())
                    .map(|t| t.slug().to_owned()),
            );
        }
        Ok(known)
    }

    /// `Err` naming the topics of `asked` that no post has, and those that are known.
    pub async fn check_topics(&self, asked: &[String]) -> anyhow::Result<Result<(), UnknownTopics>> {
        if asked.is_empty() {
            return Ok(Ok(()));
        }
        Ok(check(asked, &self.known_topics().await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_topics_are_named_with_the_known_ones() {
        let known: BTreeSet<String> = ["rivers", "wildlife"].map(String::from).into();
        assert_eq!(check(&["rivers".into()], &known), Ok(()));
        let error = check(&["rivers".into(), "otterz".into()], &known).unwrap_err();
        assert_eq!(
            error.to_string(),
            "unknown topic \"otterz\" (known topics: rivers, wildlife)"
        );
        let none = check(&["a".into(), "b".into()], &BTreeSet::new()).unwrap_err();
        assert_eq!(
            none.to_string(),
            "unknown topics \"a\", \"b\" (no post has a topic yet)"
        );
    }
}
