//! The public site as mail providers meet it: one-click unsubscribe answering a real POST at
//! `base_url`, and `base_url` itself on HTTPS.

use std::net::IpAddr;
use std::time::Duration;

use super::{Check, Finding};
use crate::config::Settings;
use crate::store;

/// How long the public site has to answer the one-click POST.
const TIMEOUT: Duration = Duration::from_secs(10);

/// Whether `host` is this machine (where plain HTTP is fine for trying Herald out).
fn is_local(url: &url::Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => {
            d.eq_ignore_ascii_case("localhost") || d.to_ascii_lowercase().ends_with(".localhost")
        }
        Some(url::Host::Ipv4(ip)) => IpAddr::V4(ip).is_loopback(),
        Some(url::Host::Ipv6(ip)) => IpAddr::V6(ip).is_loopback(),
        None => false,
    }
}

/// `[site] base_url` on HTTPS: links in mail, and RFC 8058's one-click URL, need it.
pub fn check_base_url(settings: &Settings) -> Finding {
    let url = &settings.site.base_url;
    match url.scheme() {
        "https" => Finding::ok(Check::BaseUrl, format!("{url} is served over HTTPS")),
        _ if is_local(url) => Finding::ok(
            Check::BaseUrl,
            format!("{url} is plain HTTP on this machine: fine for trying Herald out, not for readers"),
        ),
        scheme => {
            let mut https = url.clone();
            let _ = https.set_scheme("https");
            Finding::problem(
                Check::BaseUrl,
                format!(
                    "{url} uses {scheme}: one-click unsubscribe needs HTTPS (RFC 8058 §3.1), and links in mail can be read and changed on the way"
                ),
                format!(
                    "Serve the site over HTTPS (a reverse proxy with a certificate) and set [site] base_url = \"{https}\"."
                ),
            )
        }
    }
}

/// RFC 8058 one-click unsubscribe, tried on the public site: a POST of
/// `List-Unsubscribe=One-Click` to the unsubscribe address of a token made now (random, 256
/// bits: nobody's), which Herald answers 404 as for any unknown link. A mail provider's POST
/// takes the same road — DNS, proxy, Herald — to a real reader's token.
pub async fn check_one_click(settings: &Settings) -> Finding {
    let url = settings.url_for(&format!("unsubscribe/{}", store::subscribers::new_token()));
    // What findings show: the path without the made-up token.
    let shown = settings.url_for("unsubscribe/…");
    let client = match reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(TIMEOUT)
        .user_agent(concat!("herald-doctor/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(c) => c,
        Err(e) => {
            return Finding::problem(
                Check::OneClick,
                format!("no HTTP client: {e}"),
                "Run again; if it persists, report it.",
            );
        }
    };
    let answer = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await;
    let response = match answer {
        Ok(r) => r,
        Err(e) => {
            // The error's causes down to the socket's ("Connection refused"), without the URL
            // and its made-up token.
            let e = e.without_url();
            let mut why = e.to_string();
            let mut cause = std::error::Error::source(&e);
            while let Some(c) = cause {
                why.push_str(&format!(": {c}"));
                cause = c.source();
            }
            return Finding::problem(
                Check::OneClick,
                format!("POST {shown} got no answer: {why}"),
                format!(
                    "Mail providers POST to {} when a reader clicks Unsubscribe: start `herald serve` and make that \
                     address reachable from the internet (DNS, firewall, reverse proxy), then run again.",
                    settings.site.base_url
                ),
            );
        }
    };
    let status = response.status();
    if status.is_success() || status == reqwest::StatusCode::NOT_FOUND {
        return Finding::ok(
            Check::OneClick,
            format!("POST {shown} answers {status} for an unknown link, as Herald does (a reader's link answers 200)"),
        );
    }
    if status.is_redirection() {
        let to = response
            .headers()
            .get(reqwest::header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("nowhere");
        return Finding::problem(
            Check::OneClick,
            format!(
                "POST {shown} answers {status}, a redirect to {to}: mail providers do not follow it, so the reader stays subscribed"
            ),
            "Set [site] base_url to the address the site is really served at (scheme and host as the redirect \
             says), so mail carries links that answer directly.",
        );
    }
    let fix = if status == reqwest::StatusCode::METHOD_NOT_ALLOWED {
        "Something in front of Herald refuses POST: let POST requests to /unsubscribe/ through to Herald (reverse \
         proxy, CDN or firewall rules; no login or cookie may be required)."
    } else if status.is_server_error() {
        "The request failed on its way or in Herald: check the reverse proxy's upstream and Herald's log for the \
         error, then run again."
    } else {
        "Something in front of Herald refuses the request: let POST requests to /unsubscribe/ through to Herald, \
         without login, cookies or bot challenges (mail providers cannot answer them)."
    };
    Finding::problem(
        Check::OneClick,
        format!("POST {shown} answers {status}: mail providers' one-click unsubscribe fails"),
        fix,
    )
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    #[test]
    fn https_is_required_except_on_this_machine() {
        let level = |url: &str| {
            let mut settings = Settings::default();
            settings.site.base_url = url::Url::parse(url).unwrap();
            check_base_url(&settings)
        };
        assert_eq!(level("https://news.example.org/").level, Level::Ok);
        for local in [
            "http://localhost:8080/",
            "http://127.0.0.1:3000/",
            "http://[::1]/",
            "http://app.localhost/",
        ] {
            assert_eq!(level(local).level, Level::Ok, "{local}");
        }
        let plain = level("http://news.example.org/blog/");
        assert_eq!(plain.level, Level::Problem);
        assert!(
            plain
                .fix
                .unwrap()
                .contains("base_url = \"https://news.example.org/blog/\""),
            "the exact setting"
        );
    }
}
