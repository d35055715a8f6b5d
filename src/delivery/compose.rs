use anyhow::Context;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::config::Settings;

/// A text part as 8bit when its lines allow it (RFC 6152: every relay worth the name takes
/// it), which costs nothing per message; quoted-printable otherwise.
fn body(text: String) -> Body {
    Body::new_with_encoding(text, ContentTransferEncoding::EightBit)
        .unwrap_or_else(|bytes| Body::new(String::from_utf8(bytes).unwrap_or_default()))
}

/// One message to one person, before it is put together.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub to: Mailbox,
    pub subject: String,
    /// HTML with its CSS already inlined ([`Composer::inline_css`]).
    pub html: String,
    pub text: String,
    /// The local part of the Message-ID; the domain is the sender's.
    pub message_key: String,
    /// Extra headers, e.g. `List-Unsubscribe`.
    pub headers: Vec<(&'static str, String)>,
}

/// Puts messages together: From/Reply-To from config, a Message-ID on the sender's domain,
/// multipart/alternative with the text part first (RFC 2046 §5.1.4: last is preferred).
pub struct Composer {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    domain: String,
}

impl Composer {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let from: Mailbox = settings.mail.from.parse().context("mail.from is not a mailbox")?;
        let reply_to = match settings.mail.reply_to.trim() {
            "" => None,
            r => Some(r.parse().context("mail.reply_to is not a mailbox")?),
        };
        let domain = from.email.domain().to_owned();
        Ok(Self { from, reply_to, domain })
    }

    /// `<key@sender-domain>`: stable for a key, so a re-sent message is recognisable.
    pub fn message_id(&self, key: &str) -> String {
        format!("<{key}@{}>", self.domain)
    }

    /// `List-Id` (RFC 2919): the list's name and an identifier on the sender's domain.
    pub fn list_id(&self, title: &str) -> String {
        let name: String = title
            .chars()
            .filter(|c| !c.is_control() && *c != '"' && *c != '<' && *c != '>')
            .collect();
        format!("\"{name}\" <news.{}>", self.domain)
    }

    pub fn from(&self) -> &Mailbox {
        &self.from
    }

    /// Moves `<style>` rules onto the elements (for clients that strip `<style>`), keeping
    /// the block for clients that honour media queries (dark mode, narrow screens).
    /// Remote stylesheets are never fetched.
    pub fn inline_css(html: &str) -> anyhow::Result<String> {
        css_inline::CSSInliner::options()
            .load_remote_stylesheets(false)
            .keep_style_tags(true)
            .build()
            .inline(html)
            .context("Failed to inline the email's CSS")
    }

    /// The envelope and the RFC 5322 bytes of a message.
    pub fn build(&self, out: Outgoing) -> anyhow::Result<(Envelope, Vec<u8>)> {
        let html = out.html;
        let mut builder = Message::builder()
            .from(self.from.clone())
            .to(out.to)
            .subject(out.subject)
            .message_id(Some(self.message_id(&out.message_key)))
            .date_now();
        if let Some(reply_to) = &self.reply_to {
            builder = builder.reply_to(reply_to.clone());
        }
        for (name, value) in out.headers {
            builder = builder.raw_header(HeaderValue::new(HeaderName::new_from_ascii_str(name), value));
        }
        let parts = MultiPart::alternative()
            .singlepart(
                SinglePart::builder()
                    .header(ContentType::TEXT_PLAIN)
                    .body(body(out.text)),
            )
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(body(html)));
        let message = builder.multipart(parts).context("Failed to build a message")?;
        Ok((message.envelope().clone(), message.formatted()))
    }
}
