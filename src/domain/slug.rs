//! Slugs: the URL-safe names of posts and tags, transliterated from any script. Uses nothing
//! else in Herald.

use std::fmt;

use sha2::{Digest, Sha256};

/// A URL path segment naming a post: lowercase ASCII letters, digits and single hyphens.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize)]
#[serde(transparent)]
pub struct Slug(String);

/// Why a string is not a slug.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SlugError {
    #[error("a slug cannot be empty")]
    Empty,
    #[error("a slug is at most {max} characters long (this one has {len})")]
    TooLong { len: usize, max: usize },
    #[error("a slug may hold only lowercase letters a-z, digits and single hyphens, not {0:?}")]
    InvalidCharacter(char),
    #[error("a slug cannot start or end with a hyphen, or hold two in a row")]
    BadHyphen,
}

impl Slug {
    pub const MAX_LEN: usize = 120;

    /// Accepts a slug exactly as written; nothing is rewritten.
    pub fn parse(s: &str) -> Result<Self, SlugError> {
        if s.is_empty() {
            return Err(SlugError::Empty);
        }
        if s.len() > Self::MAX_LEN {
            return Err(SlugError::TooLong {
                len: s.len(),
                max: Self::MAX_LEN,
            });
        }
        if let Some(c) = s
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            return Err(SlugError::InvalidCharacter(c));
        }
        if s.starts_with('-') || s.ends_with('-') || s.contains("--") {
            return Err(SlugError::BadHyphen);
        }
        Ok(Self(s.to_owned()))
    }

    /// Makes a slug out of free text ("Otters Return!" -> "otters-return"), or `None`
    /// when the text holds nothing to name it by (blank, or ASCII punctuation only).
    ///
    /// Text in other scripts is transliterated first ("Über uns" -> "uber-uns",
    /// "Привет мир" -> "privet-mir"). Text that still yields no letter or digit, such as
    /// symbols with no ASCII spelling, gets a stable hashed slug: `x-` and the first ten
    /// hex digits of the SHA-256 of the trimmed text.
    pub fn slugify(text: &str) -> Option<Self> {
        let ascii = deunicode::deunicode_with_tofu_cow(text, " ");
        let mut out = String::with_capacity(ascii.len());
        for c in ascii.chars().map(|c| c.to_ascii_lowercase()) {
            if c.is_ascii_alphanumeric() {
                out.push(c);
            } else if !out.is_empty() && !out.ends_with('-') {
                out.push('-');
            }
        }
        let trimmed = out.trim_end_matches('-');
        let cut: String = trimmed.chars().take(Self::MAX_LEN).collect();
        if let Ok(slug) = Self::parse(cut.trim_end_matches('-')) {
            return Some(slug);
        }
        let text = text.trim();
        let written = text
            .chars()
            .any(|c| !c.is_ascii() && !c.is_whitespace() && !c.is_control());
        written.then(|| Self::hashed(text))
    }

    /// `x-` and the first ten hex digits of the SHA-256 of `text`.
    fn hashed(text: &str) -> Self {
        let digest = Sha256::digest(text.as_bytes());
        Self(format!("x-{}", &hex::encode(digest)[..10]))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Slug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for Slug {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_slugs() {
        for s in ["a", "otters-return", "2026-annual-report", "x1-y2"] {
            assert_eq!(Slug::parse(s).unwrap().as_str(), s);
        }
    }

    #[test]
    fn refuses_what_would_break_a_url() {
        assert_eq!(Slug::parse(""), Err(SlugError::Empty));
        assert_eq!(Slug::parse("Otters"), Err(SlugError::InvalidCharacter('O')));
        assert_eq!(Slug::parse("a/b"), Err(SlugError::InvalidCharacter('/')));
        assert_eq!(Slug::parse("../etc"), Err(SlugError::InvalidCharacter('.')));
        assert_eq!(Slug::parse("-a"), Err(SlugError::BadHyphen));
        assert_eq!(Slug::parse("a--b"), Err(SlugError::BadHyphen));
        assert!(matches!(
            Slug::parse(&"a".repeat(121)),
            Err(SlugError::TooLong { len: 121, .. })
        ));
    }

    #[test]
    fn slugify_turns_titles_into_slugs() {
        assert_eq!(
            Slug::slugify("Otters Return to the Upper Wey!").unwrap().as_str(),
            "otters-return-to-the-upper-wey"
        );
        assert_eq!(Slug::slugify("  Water -- Quality  ").unwrap().as_str(), "water-quality");
        assert_eq!(Slug::slugify("!!!"), None);
        assert_eq!(Slug::slugify(" \u{3000} "), None);
    }

    #[test]
    fn slugify_transliterates_other_scripts() {
        assert_eq!(Slug::slugify("Über uns").unwrap().as_str(), "uber-uns");
        assert_eq!(Slug::slugify("Straße").unwrap().as_str(), "strasse");
        assert_eq!(Slug::slugify("Привет, мир").unwrap().as_str(), "privet-mir");
        assert_eq!(Slug::slugify("北京").unwrap().as_str(), "bei-jing");
        // Emoji have names, and those are used.
        assert_eq!(Slug::slugify("🎉").unwrap().as_str(), "tada");
        assert_eq!(Slug::slugify("Café 🦦").unwrap().as_str(), "cafe-otter");
    }

    #[test]
    fn slugify_hashes_text_with_no_ascii_spelling() {
        // Symbols that transliterate to punctuation, or to nothing at all.
        let slug = Slug::slugify("‼").unwrap();
        assert_eq!(slug.as_str(), "x-ed9e96d2bd");
        assert_eq!(Slug::slugify(" ‼ "), Some(slug));
        let hieroglyph = Slug::slugify("\u{13000}").unwrap();
        assert!(hieroglyph.as_str().starts_with("x-") && hieroglyph.as_str().len() == 12);
        assert_ne!(hieroglyph, Slug::slugify("\u{13001}").unwrap());
        assert_eq!(Slug::parse(hieroglyph.as_str()), Ok(hieroglyph));
    }

    proptest! {
        #[test]
        fn slugify_output_always_parses(text in "\\PC{0,200}") {
            if let Some(slug) = Slug::slugify(&text) {
                prop_assert_eq!(Slug::parse(slug.as_str()), Ok(slug.clone()));
            }
        }

        #[test]
        fn slugify_leaves_valid_slugs_unchanged(slug in "[a-z0-9]{1,10}(-[a-z0-9]{1,10}){0,8}") {
            prop_assert_eq!(Slug::slugify(&slug).map(|s| s.0), Some(slug));
        }

        #[test]
        fn parse_never_accepts_path_characters(text in "\\PC{1,50}") {
            if let Ok(slug) = Slug::parse(&text) {
                prop_assert!(!slug.as_str().contains(['/', '.', '?', '#', '%']));
            }
        }
    }
}
