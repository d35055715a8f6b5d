//! Who may run Herald: admin accounts (argon2id passwords), browser sessions, API tokens,
//! and the bounds on login work (device cookies, a gate on password checks). The [`Auth`]
//! service holds what logins need; it uses `domain`, `config` and `store`.

use std::num::NonZeroU32;

use anyhow::{Context, bail};
use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Block, Params, Version};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{Duration, Utc};
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use hmac::{Hmac, Mac};
use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};
use tokio::sync::Semaphore;

use crate::config::AdminSettings;
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

/// [`verify_password`] in `memory` (grown to what the hash's parameters need), so that the
/// ~19 MiB an argon2 check fills is allocated once per concurrent check, not once per login:
/// freed and allocated again, it stays with whichever thread's allocator arena it came from,
/// and a few of those add up.
fn verify_password_in(hash: &str, password: &str, memory: &mut Vec<Block>) -> bool {
    let Ok(parsed) = PasswordHash::new(hash) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (&parsed.salt, &parsed.hash) else {
        return false;
    };
    let (Ok(algorithm), Ok(params)) = (Algorithm::try_from(&*parsed.algorithm), Params::try_from(&parsed)) else {
        return false;
    };
    let Ok(version) = parsed.version.map_or(Ok(Version::default()), Version::try_from) else {
        return false;
    };
    let needed = params.block_count();
    if memory.len() < needed {
        memory.resize(needed, Block::default());
    }
    let mut out = vec![0u8; expected.len()];
    Argon2::new(algorithm, version, params)
        .hash_password_into_with_memory(password.as_bytes(), salt, &mut out, &mut memory[..needed])
        .is_ok()
        && constant_time_eq::constant_time_eq(&out, expected.as_bytes())
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
    store::accounts::upsert_user(db, &account(email.as_str()), &hash, Utc::now()).await
}

/// How a login attempt ended.
#[derive(Debug)]
pub enum LoginOutcome {
    /// A session started: its token (for the session cookie) and a fresh device cookie value.
    Success { session: String, device: String },
    /// Wrong email or password.
    Refused,
    /// Too much login work in progress or in the last minute; try again after this many seconds.
    Busy { retry_after: u64 },
}

/// Logins, sessions and API tokens.
pub struct Auth {
    db: Db,
    settings: AdminSettings,
    logins: Logins,
    /// Verified against when a login names no account, so both cost the same.
    dummy_hash: String,
}

impl Auth {
    /// Builds the service; the device-cookie key is read from the database (made on first use).
    pub async fn new(settings: &AdminSettings, db: Db) -> anyhow::Result<Self> {
        Ok(Self {
            logins: Logins::new(settings, &db).await?,
            settings: settings.clone(),
            db,
            dummy_hash: tokio::task::spawn_blocking(|| hash_password("no such account")).await??,
        })
    }

    /// The bounds on login work, and the device cookies.
    pub fn logins(&self) -> &Logins {
        &self.logins
    }

    /// Checks credentials; on success starts a session. `trusted` says the client showed a valid
    /// device cookie for this account ([`Logins::device_trusted`]): its check skips the budget
    /// and the queue that other clients share. An unknown account costs the same work as a
    /// wrong password, so timing tells nothing.
    pub async fn login(&self, email: &str, password: &str, trusted: bool) -> anyhow::Result<LoginOutcome> {
        let permit = match self.logins.admit(trusted).await {
            Ok(permit) => permit,
            Err(retry_after) => {
                tracing::warn!(retry_after, "login refused: too much login work");
                return Ok(LoginOutcome::Busy { retry_after });
            }
        };
        let account = account(email);
        let user = store::accounts::find_user(&self.db, &account).await?;
        let hash = match &user {
            Some(u) => u.password_hash.clone(),
            None => self.dummy_hash.clone(),
        };
        let password = password.to_owned();
        let mut memory = self.logins.take_memory();
        let (ok, memory) = tokio::task::spawn_blocking(move || {
            let ok = verify_password_in(&hash, &password, &mut memory);
            (ok, memory)
        })
        .await?;
        self.logins.give_back(memory);
        drop(permit);
        let Some(user) = user.filter(|_| ok) else {
            return Ok(LoginOutcome::Refused);
        };
        let token = new_token();
        let now = Utc::now();
        let expires = now + Duration::hours(i64::from(self.settings.session_hours));
        store::accounts::create_session(&self.db, &token_hash(&token), user.id, now, expires).await?;
        tracing::info!(admin = user.id, "admin logged in");
        Ok(LoginOutcome::Success {
            session: token,
            device: self.logins.device_cookie(&account),
        })
    }
}

/// How long a login waits for a password check to be free before it is told to come back.
const LOGIN_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Bounds on login work. An argon2 check takes about 19 MiB and tens of milliseconds of a
/// core, so unbounded logins from many addresses exhaust memory (measured: 120 at once took
/// the server from 45 MB to 3 GB). At most two checks run at a time (one on a single core),
/// each in working memory kept for the next; clients without a device cookie share one of
/// them, a budget per minute across all addresses, and a wait of at most [`LOGIN_WAIT`], and
/// are answered 503 + Retry-After beyond that.
///
/// Device cookies (OWASP's "Slow Down Online Guessing Attacks with Device Cookies"): a
/// successful login gets a cookie naming the account, signed with a key kept in the database.
/// A client that shows a valid one for the account it logs in to is a known device: the
/// per-address and per-account limits and the shared budget and queue do not apply to it
/// (its own attempts are limited per cookie instead), so an attacker's failures, however
/// many and from wherever, do not lock the real admin out.
pub struct Logins {
    checks: Semaphore,
    /// Argon2 working memory, one per check that has run at once.
    memory: std::sync::Mutex<Vec<Vec<Block>>>,
    untrusted: Semaphore,
    budget: DefaultDirectRateLimiter,
    device_key: [u8; 32],
}

impl Logins {
    /// Builds the gate; the device-cookie key is read from the database (made on first use).
    pub async fn new(settings: &AdminSettings, db: &Db) -> anyhow::Result<Self> {
        // Two at most whatever the cores: two checks bound the memory to ~40 MiB and
        // still verify dozens of logins a second, far more than admins ever need.
        let checks = std::thread::available_parallelism().map_or(1, |n| n.get()).min(2);
        let per_minute = NonZeroU32::new(settings.login_budget_per_minute).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(per_minute.get() / 10).unwrap_or(NonZeroU32::MIN);
        Ok(Self {
            checks: Semaphore::new(checks),
            memory: std::sync::Mutex::new(Vec::new()),
            untrusted: Semaphore::new(1),
            budget: RateLimiter::direct(Quota::per_minute(per_minute).allow_burst(burst)),
            device_key: device_key(db).await?,
        })
    }

    /// Waits for a password check to be free; `Err(seconds)` to come back after instead.
    async fn admit(&self, trusted: bool) -> Result<Vec<tokio::sync::SemaphorePermit<'_>>, u64> {
        let mut permits = Vec::with_capacity(2);
        if !trusted {
            if let Err(not_until) = self.budget.check() {
                let wait =
                    not_until.wait_time_from(governor::clock::Clock::now(&governor::clock::DefaultClock::default()));
                return Err(wait.as_secs() + 1);
            }
            // Queued here, not on `checks`: a known device then waits for at most the checks
            // already running, never behind a crowd.
            match tokio::time::timeout(LOGIN_WAIT, self.untrusted.acquire()).await {
                Ok(Ok(p)) => permits.push(p),
                _ => return Err(LOGIN_WAIT.as_secs()),
            }
        }
        match tokio::time::timeout(LOGIN_WAIT, self.checks.acquire()).await {
            Ok(Ok(p)) => permits.push(p),
            _ => return Err(LOGIN_WAIT.as_secs()),
        }
        Ok(permits)
    }

    fn take_memory(&self) -> Vec<Block> {
        self.memory.lock().ok().and_then(|mut m| m.pop()).unwrap_or_default()
    }

    fn give_back(&self, memory: Vec<Block>) {
        if let Ok(mut m) = self.memory.lock() {
            m.push(memory);
        }
    }

    /// The device cookie's value for an account: `nonce.signature`.
    pub fn device_cookie(&self, account: &str) -> String {
        let nonce = URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>());
        let mac = URL_SAFE_NO_PAD.encode(self.sign(account, &nonce));
        format!("{nonce}.{mac}")
    }

    /// If `cookie` is a device cookie this server issued for `email`'s account, its nonce
    /// (the key for the per-device limit).
    pub fn device_trusted<'c>(&self, cookie: &'c str, email: &str) -> Option<&'c str> {
        let (nonce, mac) = cookie.split_once('.')?;
        let mac = URL_SAFE_NO_PAD.decode(mac).ok()?;
        constant_time_eq::constant_time_eq(&mac, &self.sign(&account(email), nonce)).then_some(nonce)
    }

    fn sign(&self, account: &str, nonce: &str) -> [u8; 32] {
        let message = format!("herald-device\0{account}\0{nonce}");
        hmac_sha256(&self.device_key, message.as_bytes())
    }
}

/// The key that signs device cookies, shared by every instance on the database.
async fn device_key(db: &Db) -> anyhow::Result<[u8; 32]> {
    const KEY: &str = "admin_device_key";
    let stored = match store::meta_get(db, KEY).await? {
        Some(key) => Some(key),
        None => {
            let fresh = hex::encode(rand::random::<[u8; 32]>());
            match store::meta_set_once(db, KEY, &fresh).await {
                Ok(_) => store::meta_get(db, KEY).await?,
                Err(e) => {
                    // A database that cannot be written (read-only) still serves pages;
                    // device cookies then last as long as this process.
                    tracing::warn!(
                        error = format!("{e:#}"),
                        "cannot store the device-cookie key; using one for this process only"
                    );
                    Some(fresh)
                }
            }
        }
    };
    let bytes = stored
        .as_deref()
        .and_then(|h| hex::decode(h).ok())
        .and_then(|b| <[u8; 32]>::try_from(b).ok())
        .context("The stored device-cookie key (site_meta admin_device_key) is not 32 bytes of hex")?;
    Ok(bytes)
}

/// HMAC-SHA-256 (RFC 2104).
fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes a key of any length");
    mac.update(message);
    mac.finalize().into_bytes().into()
}

impl Auth {
    /// The admin a session token belongs to, while it lasts.
    pub async fn session(&self, token: &str) -> anyhow::Result<Option<String>> {
        if token.len() > 100 {
            return Ok(None);
        }
        store::accounts::session_user(&self.db, &token_hash(token), Utc::now()).await
    }

    pub async fn logout(&self, token: &str) -> anyhow::Result<()> {
        store::accounts::delete_session(&self.db, &token_hash(token)).await
    }

    /// Whether a bearer token is valid: one made by `herald admin create-token`, or the
    /// `[admin] api_token` from config (compared in constant time).
    pub async fn token_valid(&self, given: &str) -> anyhow::Result<bool> {
        Ok(self.token_name(given).await?.is_some())
    }

    /// The name of a valid bearer token (`[admin] api_token` for the one in config), for the
    /// history of what it changes; `None` if the token is not valid.
    pub async fn token_name(&self, given: &str) -> anyhow::Result<Option<String>> {
        let configured = self.settings.api_token.expose_secret();
        if !configured.is_empty()
            && constant_time_eq::constant_time_eq(
                &Sha256::digest(given.as_bytes()),
                &Sha256::digest(configured.as_bytes()),
            )
        {
            return Ok(Some("[admin] api_token".to_owned()));
        }
        if given.len() > 100 {
            return Ok(None);
        }
        store::accounts::token_name(&self.db, &token_hash(given), Utc::now()).await
    }
}

/// A new API token; only its hash is kept, so this is the one time it can be shown.
pub async fn create_token(db: &Db, name: &str) -> anyhow::Result<String> {
    let name = name.trim();
    if name.is_empty() {
        bail!("an API token needs a name");
    }
    let token = format!("hrld_{}", new_token());
    store::accounts::create_token(db, name, &token_hash(&token), Utc::now()).await?;
    Ok(token)
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
        let mut memory = Vec::new();
        assert!(verify_password_in(&hash, "correct horse battery", &mut memory));
        assert!(!verify_password_in(&hash, "correct horse batterY", &mut memory));
        assert!(!verify_password_in("not a hash", "anything", &mut memory));
        assert_eq!(memory.len(), 19 * 1024, "reused: 19 MiB of 1 KiB blocks");
    }

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        let mac = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}
