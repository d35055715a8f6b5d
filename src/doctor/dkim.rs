//! The public half of the DKIM key Herald signs with (`[mail.dkim]`), as DNS should publish
//! it, and whether a published key is that one.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use rsa::pkcs1::{DecodeRsaPrivateKey, DecodeRsaPublicKey};
use rsa::pkcs8::{DecodePublicKey, EncodePublicKey};
use rsa::traits::PublicKeyParts;
use rsa::{RsaPrivateKey, RsaPublicKey};

use crate::config::Settings;

/// The public key of the configured signing key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PublicKey {
    Rsa(RsaPublicKey),
    Ed25519([u8; 32]),
}

impl PublicKey {
    /// The `k=` tag's value for this key.
    pub fn kind(&self) -> &'static str {
        match self {
            PublicKey::Rsa(_) => "rsa",
            PublicKey::Ed25519(_) => "ed25519",
        }
    }

    /// The `p=` value: base64 of the SubjectPublicKeyInfo for RSA (what `openssl rsa -pubout`
    /// prints), of the bare 32 bytes for Ed25519 (RFC 8463 §4.2).
    pub fn p(&self) -> String {
        match self {
            PublicKey::Rsa(key) => key
                .to_public_key_der()
                .map(|der| STANDARD.encode(der.as_bytes()))
                .unwrap_or_default(),
            PublicKey::Ed25519(bytes) => STANDARD.encode(bytes),
        }
    }

    /// The TXT record to publish at `<selector>._domainkey.<domain>`.
    pub fn record(&self) -> String {
        format!("v=DKIM1; k={}; p={}", self.kind(), self.p())
    }

    /// RSA modulus length in bits; `None` for Ed25519.
    pub fn rsa_bits(&self) -> Option<usize> {
        match self {
            PublicKey::Rsa(key) => Some(key.size() * 8),
            PublicKey::Ed25519(_) => None,
        }
    }

    /// Whether the decoded `p=` of a record is this key. RSA keys are accepted as a
    /// SubjectPublicKeyInfo or, as RFC 6376 §3.6.1 literally says, a bare RSAPublicKey.
    pub fn matches(&self, published: &[u8]) -> bool {
        match self {
            PublicKey::Rsa(key) => RsaPublicKey::from_public_key_der(published)
                .or_else(|_| RsaPublicKey::from_pkcs1_der(published))
                .is_ok_and(|p| &p == key),
            PublicKey::Ed25519(bytes) => published == bytes,
        }
    }
}

/// The configured key's public half: `Ok(None)` when signing is off (`selector` empty), an
/// error naming the file when it cannot be read as Herald reads it.
pub fn configured(settings: &Settings) -> Result<Option<PublicKey>, String> {
    let dkim = &settings.mail.dkim;
    if dkim.selector.trim().is_empty() {
        return Ok(None);
    }
    let path = settings.resolve(&dkim.private_key_path);
    let text = std::fs::read_to_string(&path)
        .map_err(|e| format!("mail.dkim.private_key_path: cannot read {}: {e}", path.display()))?;
    if text.contains("BEGIN RSA PRIVATE KEY") {
        let key = RsaPrivateKey::from_pkcs1_pem(&text).map_err(|e| {
            format!(
                "mail.dkim.private_key_path: {} is not a usable RSA key: {e}",
                path.display()
            )
        })?;
        Ok(Some(PublicKey::Rsa(key.to_public_key())))
    } else if text.contains("BEGIN") {
        Err(format!(
            "mail.dkim.private_key_path: {} is not a PKCS#1 RSA key; convert it with `openssl rsa -traditional`",
            path.display()
        ))
    } else {
        let bytes: [u8; 32] = STANDARD
            .decode(text.trim())
            .ok()
            .and_then(|b| b.try_into().ok())
            .ok_or_else(|| {
                format!(
                    "mail.dkim.private_key_path: {} is neither a PKCS#1 RSA key nor a base64 Ed25519 key",
                    path.display()
                )
            })?;
        let public = ed25519_dalek::SigningKey::from_bytes(&bytes).verifying_key().to_bytes();
        Ok(Some(PublicKey::Ed25519(public)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> Settings {
        let mut settings = Settings::default();
        settings.mail.dkim.selector = "herald".into();
        settings.mail.dkim.domain = "example.org".into();
        settings.mail.dkim.private_key_path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkim-test-key.pem");
        settings
    }

    #[test]
    fn the_rsa_record_carries_what_openssl_prints_for_the_public_key() {
        let key = configured(&fixture()).unwrap().unwrap();
        // `openssl rsa -in tests/fixtures/dkim-test-key.pem -pubout`, without the armour.
        let openssl = include_str!("../../tests/fixtures/dkim-test-key.pub")
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect::<String>();
        assert_eq!(key.p(), openssl);
        assert_eq!(key.record(), format!("v=DKIM1; k=rsa; p={openssl}"));
        assert!(key.matches(&STANDARD.decode(&openssl).unwrap()));
        assert_eq!(key.rsa_bits(), Some(2048));
    }

    #[test]
    fn an_ed25519_key_publishes_its_32_bytes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ed.key");
        std::fs::write(&path, STANDARD.encode([7u8; 32])).unwrap();
        let mut settings = fixture();
        settings.mail.dkim.private_key_path = path;
        let key = configured(&settings).unwrap().unwrap();
        let expected = ed25519_dalek::SigningKey::from_bytes(&[7u8; 32])
            .verifying_key()
            .to_bytes();
        assert_eq!(key, PublicKey::Ed25519(expected));
        assert!(key.record().starts_with("v=DKIM1; k=ed25519; p="));
        assert!(key.matches(&expected) && !key.matches(&[0u8; 32]));
    }

    #[test]
    fn signing_off_and_unreadable_keys_are_told_apart() {
        assert_eq!(configured(&Settings::default()), Ok(None));
        let mut settings = fixture();
        settings.mail.dkim.private_key_path = "/nonexistent/key.pem".into();
        let err = configured(&settings).unwrap_err();
        assert!(err.contains("cannot read /nonexistent/key.pem"), "{err}");
    }
}
