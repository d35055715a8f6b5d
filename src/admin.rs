//! Who may run Herald: admin accounts (argon2id passwords), browser sessions, API tokens.

use anyhow::{Context, bail};
use argon2::Argon2;
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use chrono::{Duration, Utc};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::app::App;
use crate::domain::EmailAddress;
use crate::store::{self, Db, subscribers::new_token, subscribers::token_hash};

/// Shortest password accepted.
pub const MIN_PASSWORD: usize = 10;

/// An argon2id hash (PHC string) of a password, with a fresh salt.
pub fn hash_password(password: &str) -> anyhow::Result<String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

/// Whether `password` matches a stored PHC hash.
pub fn verify_password(hash: &str, password: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|parsed| Argon2::default().verify_password(password.as_bytes(), &parsed).is_ok())
}

fn account(email: &str) -> String {
    email.trim().to_lowercase()
}

/// Creates an admin, or sets a new password for an existing one.
pub async fn create_user(db: &Db, email: &str, password: &str) -> anyhow::Result<()> {
    let email = EmailAddress::parse(email).with_context(|| format!("{email:?} is not an email address"))?;
    if password.chars().count() < MIN_PASSWORD {
        bail!("the password needs at least {MIN_PASSWORD} characters");
    }
    let password = password.to_owned();
    // Argon2 is deliberately slow: keep it off the async threads.
    let hash = tokio::task::spawn_blocking(move || hash_password(&password)).await??;
    store::admin::upsert_user(db, &account(email.as_str()), &hash, Utc::now()).await
}

/// Checks credentials; on success starts a session and returns its token (for the cookie).
/// An unknown account costs the same work as a wrong password, so timing tells nothing.
pub async fn login(app: &App, email: &str, password: &str) -> anyhow::Result<Option<String>> {
    let user = store::admin::find_user(&app.db, &account(email)).await?;
    let hash = match &user {
        Some(u) => u.password_hash.clone(),
        None => app.dummy_hash.clone(),
    };
    let password = password.to_owned();
    let ok = tokio::task::spawn_blocking(move || verify_password(&hash, &password)).await?;
    let Some(user) = user.filter(|_| ok) else {
        return Ok(None);
    };
    let token = new_token();
    let now = Utc::now();
    let expires = now + Duration::hours(i64::from(app.settings.admin.session_hours));
    store::admin::create_session(&app.db, &token_hash(&token), user.id, now, expires).await?;
    tracing::info!(admin = user.id, "admin logged in");
    Ok(Some(token))
}

/// The admin a session token belongs to, while it lasts.
pub async fn session(app: &App, token: &str) -> anyhow::Result<Option<String>> {
    if token.len() > 100 {
        return Ok(None);
    }
    store::admin::session_user(&app.db, &token_hash(token), Utc::now()).await
}

pub async fn logout(app: &App, token: &str) -> anyhow::Result<()> {
    store::admin::delete_session(&app.db, &token_hash(token)).await
}

/// A new API token; only its hash is kept, so this is the one time it can be shown.
pub async fn create_token(db: &Db, name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() {
        bail!("an API token needs a name");
    }
    let token = format!("hrld_{}", new_token());
    store::admin::create_token(db, name, &token_hash(&token), Utc::now()).await?;
    Ok(token)
}

/// Whether a bearer token is valid: one made by `herald admin create-token`, or the
/// `[admin] api_token` from config (compared in constant time).
pub async fn token_valid(app: &App, given: &str) -> anyhow::Result<bool> {
    let configured = app.settings.admin.api_token.expose_secret();
    if !configured.is_empty()
        && constant_time_eq::constant_time_eq(
            &Sha256::digest(given.as_bytes()),
            &Sha256::digest(configured.as_bytes()),
        )
    {
        return Ok(true);
    }
    if given.len() > 100 {
        return Ok(false);
    }
    store::admin::use_token(&app.db, &token_hash(given), Utc::now()).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_hashed_with_argon2id_and_verify() {
        let hash = hash_password("correct horse battery").unwrap();
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password(&hash, "correct horse battery"));
        assert!(!verify_password(&hash, "correct horse batterY"));
        assert!(!verify_password("not a hash", "anything"));
        assert_ne!(hash, hash_password("correct horse battery").unwrap(), "salted");
    }
}
