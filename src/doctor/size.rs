//! The digest against Gmail's clip: Gmail shows the first 102 KB of a message's HTML and
//! hides the rest behind "[Message clipped] View entire message" — with the unsubscribe link
//! and the postal address, which sit at the end.

use std::sync::Arc;

use anyhow::Context;
use chrono::Utc;

use super::{Check, Finding};
use crate::config::{DigestContent, Settings};
use crate::digest::Digests;
use crate::digest::render::{EditionContent, HtmlPartSize};
use crate::domain::Frequency;
use crate::store::{self, Db};

/// Where Gmail clips: 102 KB of HTML.
pub const GMAIL_CLIP: usize = 102 * 1024;
/// From here on a digest is close enough to the clip to say so.
const NEAR: usize = GMAIL_CLIP / 10 * 9;

/// A digest measured as it would be sent.
#[derive(Debug, Clone)]
pub struct Measured {
    /// Which edition: "the next weekly edition", "edition #12", ...
    pub edition: String,
    pub posts: usize,
    pub size: HtmlPartSize,
}

/// The size finding.
pub async fn check(settings: &Settings, db: &Db, digests: &Digests) -> Finding {
    match measure(db, digests).await {
        Ok(Some(measured)) => judge(settings, &measured),
        Ok(None) => Finding::ok(
            Check::DigestSize,
            "no public posts yet, so no digest to measure; run again once there are some",
        ),
        Err(e) => Finding::problem(
            Check::DigestSize,
            format!("the digest could not be rendered: {e:#}"),
            "Fix what the error names (a template in [content] templates_dir?), then run again.",
        ),
    }
}

/// Renders the digest most readers get next — the next daily, weekly or monthly edition with the
/// most posts; without news, the last edition; without editions, the latest three posts —
/// and measures its HTML part for a reader with links of the real length.
pub async fn measure(db: &Db, digests: &Digests) -> anyhow::Result<Option<Measured>> {
    let renderer = digests.renderer();
    let mut next: Option<(Frequency, Vec<i64>)> = None;
    for frequency in [Frequency::Weekly, Frequency::Daily, Frequency::Monthly] {
        let plan = digests.plan(frequency, None).await?;
        if plan.post_ids.len() > next.as_ref().map_or(0, |(_, ids)| ids.len()) {
            next = Some((frequency, plan.post_ids));
        }
    }
    let (edition, content) = if let Some((frequency, ids)) = next {
        (
            format!("the next {frequency} edition"),
            Arc::new(EditionContent::preview(renderer, frequency, &ids).await?),
        )
    } else if let Some(last) = store::editions::list(db, 1).await?.into_iter().next() {
        (
            format!("the last edition (#{})", last.id),
            digests.edition_content(last.id).await?,
        )
    } else {
        let ids: Vec<i64> = store::posts::list_public(db, Utc::now(), None, 3, 0)
            .await?
            .iter()
            .map(|p| p.id)
            .collect();
        if ids.is_empty() {
            return Ok(None);
        }
        (
            format!("a weekly edition of the latest {} posts", ids.len()),
            Arc::new(EditionContent::preview(renderer, Frequency::Weekly, &ids).await?),
        )
    };
    let Some(variant) = content.variant(renderer, &[]).context("Failed to render the digest")? else {
        return Ok(None);
    };
    // Links as long as a reader's: the same address with a token of the same length.
    let link = |path: &str| {
        renderer
            .settings()
            .url_for(&format!("{path}/{}", store::subscribers::new_token()))
    };
    Ok(Some(Measured {
        edition,
        posts: variant.posts,
        size: variant.html_part_size(&link("preferences"), &link("unsubscribe")),
    }))
}

fn kb(bytes: usize) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

/// The finding for a measured digest: the encoded size counts, as that is what travels.
pub fn judge(settings: &Settings, m: &Measured) -> Finding {
    let summary = format!(
        "{} ({} post{}): HTML part {} as sent ({} decoded); Gmail clips above {}",
        m.edition,
        m.posts,
        if m.posts == 1 { "" } else { "s" },
        kb(m.size.encoded),
        kb(m.size.decoded),
        kb(GMAIL_CLIP)
    );
    let full = settings.digest.content == DigestContent::Full;
    let fix = format!(
        "Gmail shows only the first {} and hides the rest, the unsubscribe link and postal address included. Carry \
         less per edition: fewer or shorter posts, or daily rather than weekly digests{}.",
        kb(GMAIL_CLIP),
        if full {
            ", or [digest] content = \"teaser\" (summaries with a link instead of whole posts)"
        } else {
            ""
        }
    );
    if m.size.encoded > GMAIL_CLIP {
        Finding::problem(Check::DigestSize, summary, fix)
    } else if m.size.encoded > NEAR {
        Finding::warning(Check::DigestSize, format!("{summary} — close to it"), fix)
    } else {
        Finding::ok(Check::DigestSize, summary)
    }
}
