//! Security headers on every response. The Content-Security-Policy is strict: nothing loads
//! from elsewhere but images, no inline style or script runs unless the templates hold it
//! (allowed by its SHA-256 hash), forms post only to this site, and no page can be framed.
//! The Referrer-Policy keeps token URLs (`/confirm/…`, `/preferences/…`, `/unsubscribe/…`)
//! from leaking to other sites. (`no-referrer` would do that too, but browsers then send
//! `Origin: null` with form posts, which the same-origin check must refuse.)

use std::sync::Arc;

use axum::extract::State;
use axum::http::{HeaderName, HeaderValue, header};
use axum::response::Response;

use crate::site::InlineHashes;

/// For the web view of a digest and its preview in the console: the email's own HTML, whose
/// CSS is inlined into `style` attributes (as mail clients need) and runs no script.
pub const EMAIL_VIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";
/// The same, framed by the console's edition page (same origin only).
pub const EMAIL_PREVIEW_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; img-src * data:; base-uri 'none'; form-action 'none'; frame-ancestors 'self'";

/// The headers every response carries unless its handler set its own.
#[derive(Clone)]
pub struct SecurityHeaders(Arc<Vec<(HeaderName, HeaderValue)>>);

impl SecurityHeaders {
    pub fn new(inline: &InlineHashes) -> Self {
        let csp = content_security_policy(inline);
        let value = HeaderValue::from_str(&csp).unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'"));
        Self(Arc::new(vec![
            (header::CONTENT_SECURITY_POLICY, value),
            // For browsers that predate CSP's frame-ancestors.
            (header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY")),
            (header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff")),
            (header::REFERRER_POLICY, HeaderValue::from_static("same-origin")),
        ]))
    }
}

/// The policy for Herald's own pages.
pub fn content_security_policy(inline: &InlineHashes) -> String {
    let sources = |hashes: &[String]| {
        if hashes.is_empty() {
            "'none'".to_owned()
        } else {
            hashes.join(" ")
        }
    };
    format!(
        "default-src 'none'; script-src {}; style-src {}; img-src * data:; connect-src 'self'; \
         frame-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'",
        sources(&inline.scripts),
        sources(&inline.styles)
    )
}

/// Adds the security headers a response does not already have.
pub async fn add(State(headers): State<SecurityHeaders>, mut response: Response) -> Response {
    let out = response.headers_mut();
    for (name, value) in headers.0.iter() {
        if !out.contains_key(name) {
            out.insert(name.clone(), value.clone());
        }
    }
    response
}
