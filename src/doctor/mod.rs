//! Preflight: what decides whether mail reaches inboxes, checked before the first send
//! (`herald doctor`, `/admin/doctor`). The DKIM key in DNS against the one Herald signs with,
//! SPF and DMARC for the From domain (`records`, asked through `dns`), the digest's size
//! against Gmail's clip (`size`), one-click unsubscribe and HTTPS on the public site (`site`).
//! Each check ends in a [`Finding`]: never an error, so one failure hides no other.
//! Uses `config`, `store` and `digest`.

pub mod dkim;
pub mod dns;
mod finding;
pub mod records;
pub mod site;
pub mod size;

pub use finding::{Check, Finding, Level, Report};

use crate::config::Settings;
use crate::digest::Digests;
use crate::store::Db;

/// Runs every check; DNS lookups, the rendering and the HTTP request go at once.
pub async fn examine(settings: &Settings, db: &Db, digests: &Digests) -> Report {
    let dns = dns::Dns::new(settings.doctor.nameserver);
    let from_domain = settings.mail.from.email.domain().to_owned();
    let (dkim, spf, dmarc, size, one_click) = tokio::join!(
        records::check_dkim(&dns, settings),
        records::check_spf(&dns, &from_domain, settings),
        records::check_dmarc(&dns, &from_domain),
        size::check(settings, db, digests),
        site::check_one_click(settings),
    );
    Report::new(vec![dkim, spf, dmarc, size, one_click, site::check_base_url(settings)])
}
