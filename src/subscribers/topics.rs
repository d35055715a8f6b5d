//! The topics a subscriber may choose: the tags of the posts Herald has, and those that
//! remote sources give their posts. A topic no post has would leave its reader without mail,
//! so it is refused, with the known ones named.

use std::collections::BTreeSet;

use super::Subscriptions;
use crate::domain::{Tag, UnknownTopics, check_topics};
use crate::store;

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
        Ok(check_topics(asked, &self.known_topics().await?))
    }
}
