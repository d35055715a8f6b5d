//! Per-client rate limits (the subscribe form, logins), kept in memory per instance.
//! Uses `config`.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::config::Settings;

/// Per-client limits, kept in memory (per instance).
pub struct Limits {
    subscribe: DefaultKeyedRateLimiter<IpAddr>,
    login_by_client: DefaultKeyedRateLimiter<IpAddr>,
    login_by_account: DefaultKeyedRateLimiter<String>,
    login_by_device: DefaultKeyedRateLimiter<String>,
}

impl Limits {
    pub fn new(settings: &Settings) -> Self {
        let per_minute = settings.subscribers.rate_per_minute;
        let logins = NonZeroU32::new(settings.admin.login_attempts_per_minute).unwrap_or(NonZeroU32::MIN);
        Self {
            subscribe: RateLimiter::keyed(Quota::per_minute(per_minute)),
            login_by_client: RateLimiter::keyed(Quota::per_minute(logins)),
            login_by_account: RateLimiter::keyed(Quota::per_minute(logins)),
            login_by_device: RateLimiter::keyed(Quota::per_minute(logins)),
        }
    }

    /// Whether this client may submit the subscribe form now.
    pub fn allow_subscribe(&self, client: IpAddr) -> bool {
        if self.subscribe.len() > 100_000 {
            self.subscribe.retain_recent();
        }
        self.subscribe.check_key(&client).is_ok()
    }
}

impl Limits {
    /// Whether a login attempt from a known device (its device-cookie nonce) may be checked
    /// now. Known devices are limited per cookie, not per address or account.
    pub fn allow_device_login(&self, nonce: &str) -> bool {
        if self.login_by_device.len() > 100_000 {
            self.login_by_device.retain_recent();
        }
        self.login_by_device.check_key(&nonce.to_owned()).is_ok()
    }

    /// Whether a login attempt from this client for this account may be checked now: both
    /// are limited, so neither guessing many passwords for one account nor one password
    /// across many accounts gets far. Only clients without a device cookie count here, so
    /// an attacker who exhausts an account's limit locks out only other unknown clients.
    pub fn allow_login(&self, client: IpAddr, account: &str) -> bool {
        if self.login_by_account.len() > 100_000 {
            self.login_by_account.retain_recent();
            self.login_by_client.retain_recent();
        }
        let by_client = self.login_by_client.check_key(&client).is_ok();
        let by_account = self.login_by_account.check_key(&account.trim().to_lowercase()).is_ok();
        by_client && by_account
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_limited_others_are_not() {
        let mut settings = Settings::default();
        settings.subscribers.rate_per_minute = NonZeroU32::new(2).unwrap();
        let limits = Limits::new(&settings);
        let a: IpAddr = "192.0.2.1".parse().unwrap();
        let b: IpAddr = "192.0.2.2".parse().unwrap();
        assert!(limits.allow_subscribe(a) && limits.allow_subscribe(a));
        assert!(!limits.allow_subscribe(a));
        assert!(limits.allow_subscribe(b));
    }
}
