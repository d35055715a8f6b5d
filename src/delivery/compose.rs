use anyhow::Context;
use lettre::Message;
use lettre::address::Envelope;
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};

use crate::config::Settings;

/// A text part, encoded as lettre sees fit (7bit or quoted-printable).
pub fn body(text: String) -> Body {
    Body::new(text)
}

/// Quoted-printable pieces that can be joined: each ends in a soft line break, so a piece
/// encoded once serves every message it appears in (RFC 2045 §6.7).
pub fn qp_piece(text: &str, out: &mut Vec<u8>) {
    let crlf = text.replace("\r\n", "\n").replace('\n', "\r\n");
    out.extend_from_slice(&quoted_printable::encode(crlf.as_bytes()));
    out.extend_from_slice(b"=\r\n");
}

/// A body from pieces made by [`qp_piece`].
pub fn qp_body(encoded: Vec<u8>) -> Body {
    Body::dangerous_pre_encoded(encoded, ContentTransferEncoding::QuotedPrintable)
}

/// One message to one person, before it is put together.
#[derive(Debug, Clone)]
pub struct Outgoing {
    pub to: Mailbox,
    pub subject: String,
    /// HTML with its CSS already inlined ([`Composer::inline_css`]), as a body ([`body`]).
    pub html: Body,
    pub text: Body,
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
            .singlepart(SinglePart::builder().header(ContentType::TEXT_PLAIN).body(out.text))
            .singlepart(SinglePart::builder().header(ContentType::TEXT_HTML).body(out.html));
        let message = builder.multipart(parts).context("Failed to build a message")?;
        Ok((message.envelope().clone(), message.formatted()))
    }
}
