//! The suppression list's hashes: how an erased address is kept, so that it is known again
//! without being kept. Uses `store` and `domain`.

use anyhow::Context;

use crate::domain::EmailAddress;
use crate::store::{self, Db};

/// The key of the suppression list's hashes: 32 random bytes made on first use and kept in
/// the database (`site_meta`), so every instance, a restored backup and `herald` commands
/// hash alike, and a hash means nothing to anyone without the database.
pub async fn suppression_key(db: &Db) -> anyhow::Result<[u8; 32]> {
    const KEY: &str = "suppression_key";
    if store::meta_get(db, KEY).await?.is_none() {
        store::meta_set_once(db, KEY, &hex::encode(rand::random::<[u8; 32]>())).await?;
    }
    store::meta_get(db, KEY)
        .await?
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .context("The stored suppression key (site_meta suppression_key) is not 32 bytes of hex")
}

/// How an address is kept on the suppression list: the HMAC-SHA-256 of its normalised form
/// ([`EmailAddress::key`]) under [`suppression_key`], in hex. A plain hash of an address can
/// be reversed by hashing a list of known addresses; a keyed one only with the key.
pub fn address_hash(key: &[u8; 32], email: &EmailAddress) -> String {
    use hmac::{Hmac, Mac};
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(email.key().as_bytes());
    hex::encode(mac.finalize().into_bytes())
}
