//! Tracked links (`/r/{token}`): the token's parts and the signature that ties a reader to
//! an edition. No I/O.
//!
//! A token is the random token of one of the edition's links (`edition_links`), and, unless
//! clicks are anonymous, `.{subscriber id}.{signature}`. The reader's part is the same for
//! every link of one message, so it is computed once per message (one HMAC-SHA-256), not
//! once per link; the signature covers the edition and the subscriber, so it cannot be moved
//! to another edition's link nor name another reader. Nothing in the token is a URL: where
//! a click leads is only ever looked up.

use base64::Engine;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Characters of a link's random token: 72 bits in base64url.
pub const LINK_TOKEN_LEN: usize = 12;
/// Characters of a reader's signature: 64 bits in base64url.
const SIGNATURE_LEN: usize = 11;

/// The parts of a `/r/{token}` token, as read; the link and the signature are still to check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClickToken<'a> {
    /// The link's random token.
    pub link: &'a str,
    /// The subscriber id and the signature, when the message named its reader.
    pub reader: Option<(i64, &'a str)>,
}

fn base64url(s: &str) -> bool {
    s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl<'a> ClickToken<'a> {
    /// Reads a token; `None` when it is not of the shape Herald writes.
    pub fn parse(token: &'a str) -> Option<Self> {
        let mut parts = token.split('.');
        let link = parts.next()?;
        if link.len() != LINK_TOKEN_LEN || !base64url(link) {
            return None;
        }
        let reader = match (parts.next(), parts.next(), parts.next()) {
            (None, _, _) => None,
            (Some(id), Some(signature), None) => {
                if id.starts_with('+') {
                    return None;
                }
                let id: i64 = id.parse().ok().filter(|id: &i64| *id > 0)?;
                if signature.len() != SIGNATURE_LEN || !base64url(signature) {
                    return None;
                }
                Some((id, signature))
            }
            _ => return None,
        };
        Some(Self { link, reader })
    }
}

/// A fresh random token for one of an edition's links.
pub fn new_link_token() -> String {
    let bytes: [u8; 9] = rand::random();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn signature(key: &[u8], edition_id: i64, subscriber_id: i64) -> [u8; 8] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(format!("click\0{edition_id}\0{subscriber_id}").as_bytes());
    let digest = mac.finalize().into_bytes();
    let mut out = [0; 8];
    out.copy_from_slice(&digest[..8]);
    out
}

/// What follows a link's token in the message of `subscriber_id`: `.{id}.{signature}`.
pub fn reader_suffix(key: &[u8], edition_id: i64, subscriber_id: i64) -> String {
    let signature = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(signature(key, edition_id, subscriber_id));
    format!(".{subscriber_id}.{signature}")
}

/// Whether `signature` is the one Herald wrote for this reader in this edition.
pub fn reader_signed(key: &[u8], edition_id: i64, subscriber_id: i64, signature: &str) -> bool {
    let expected =
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self::signature(key, edition_id, subscriber_id));
    constant_time_eq::constant_time_eq(expected.as_bytes(), signature.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signed_reader_reads_back_and_only_for_its_edition_and_reader() {
        let key = b"0123456789abcdef0123456789abcdef";
        let link = new_link_token();
        assert_eq!(link.len(), LINK_TOKEN_LEN);
        let token = format!("{link}{}", reader_suffix(key, 7, 42));
        let parsed = ClickToken::parse(&token).unwrap();
        assert_eq!(parsed.link, link);
        let (id, signature) = parsed.reader.unwrap();
        assert_eq!(id, 42);
        assert!(reader_signed(key, 7, 42, signature));
        assert!(!reader_signed(key, 8, 42, signature), "another edition");
        assert!(!reader_signed(key, 7, 43, signature), "another reader");
        assert!(!reader_signed(b"another key", 7, 42, signature), "another installation");
    }

    #[test]
    fn tokens_of_another_shape_are_refused() {
        let link = new_link_token();
        assert_eq!(ClickToken::parse(&link).unwrap().reader, None);
        for bad in [
            String::new(),
            "short".into(),
            format!("{link}x"),
            format!("{link}."),
            format!("{link}.1"),
            format!("{link}.1.short"),
            format!("{link}.0.AAAAAAAAAAA"),
            format!("{link}.-1.AAAAAAAAAAA"),
            format!("{link}.+1.AAAAAAAAAAA"),
            format!("{link}.1.AAAAAAAAAAA.x"),
            format!("{}/..", &link[..10]),
            "https://evil.example/".into(),
        ] {
            assert_eq!(ClickToken::parse(&bad), None, "{bad}");
        }
    }
}
