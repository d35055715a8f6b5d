//! Messages as Herald sends them: multipart HTML and text, quoted-printable, list and
//! Message-ID headers, CSS inlined, DKIM when configured (lettre). Uses `config` and `domain`.

use anyhow::Context;
use lettre::address::Envelope;
use lettre::message::dkim::{
    DkimCanonicalization, DkimCanonicalizationType, DkimConfig, DkimSigningAlgorithm, DkimSigningKey,
};
use lettre::message::header::{ContentTransferEncoding, ContentType, HeaderName, HeaderValue};
use lettre::message::{Body, Mailbox, MultiPart, SinglePart};
use lettre::{Address, Message};

use crate::config::Settings;
use crate::domain::EmailAddress;

/// A checked address as lettre's envelope and header address, spelled as the subscriber wrote it
/// (an international domain stays Unicode). Herald's rules admit nothing lettre's would refuse: the
/// local part passes the same `email_address` check, and the domain is a host name once in ASCII.
impl From<&EmailAddress> for Address {
    fn from(address: &EmailAddress) -> Self {
        Address::new_dangerous(address.local_part(), address.domain())
    }
}

/// A text part, encoded as lettre sees fit (7bit or quoted-printable).
pub fn body(text: String) -> Body {
    Body::new(text)
}

/// The width plain-text parts are wrapped to (RFC 5322 §2.1.1 recommends 78).
pub const TEXT_WIDTH: usize = 78;

/// A rendered text part tidied for reading: no leading or trailing blank lines, at most one
/// blank line in a row, and lines wrapped at [`TEXT_WIDTH`] columns (a word longer than
/// that, such as a link, stays whole on a line of its own).
pub fn plain_text(text: &str) -> String {
    let options = |indent: &'static str| {
        textwrap::Options::new(TEXT_WIDTH)
            .break_words(false)
            .word_separator(textwrap::WordSeparator::AsciiSpace)
            .word_splitter(textwrap::WordSplitter::NoHyphenation)
            .initial_indent(indent)
            .subsequent_indent(indent)
    };
    let mut out = String::with_capacity(text.len() + text.len() / 16);
    let mut blank = true;
    for line in text.lines().map(str::trim_end) {
        if line.is_empty() {
            if !blank {
                out.push('\n');
            }
            blank = true;
            continue;
        }
        blank = false;
        if textwrap::core::display_width(line) <= TEXT_WIDTH {
            out.push_str(line);
        } else {
            let body = line.trim_start();
            let indent = &line[..line.len() - body.len()];
            // Indentation is kept (lists, quotes); only spaces and tabs count as such.
            let indent: &'static str = match indent.len() {
                0 => "",
                1 => " ",
                2 => "  ",
                3 => "   ",
                _ => "    ",
            };
            out.push_str(&textwrap::fill(body, options(indent)));
        }
        out.push('\n');
    }
    while out.ends_with("\n\n") {
        out.pop();
    }
    out
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
    /// What `{token}` stands for in `[mail] return_path` (VERP); none: the return path
    /// without its token (`bounces+{token}@...` -> `bounces@...`).
    pub return_token: Option<String>,
    /// Extra headers, e.g. `List-Unsubscribe`.
    pub headers: Vec<(&'static str, String)>,
}

/// Puts messages together: From/Reply-To from config, a Message-ID on the sender's domain,
/// multipart/alternative with the text part first (RFC 2046 §5.1.4: last is preferred).
pub struct Composer {
    from: Mailbox,
    /// `[mail] return_path`, when set: `{token}` is each message's key.
    return_path: Option<String>,
    reply_to: Option<Mailbox>,
    domain: String,
    dkim: Option<DkimConfig>,
}

/// The headers a DKIM signature covers. RFC 8058 §4 requires the unsubscribe headers among
/// them, so a forwarder cannot graft its own one-click link onto the message.
const SIGNED_HEADERS: [&str; 8] = [
    "From",
    "To",
    "Subject",
    "Date",
    "Message-ID",
    "List-Id",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

fn dkim_config(settings: &Settings) -> anyhow::Result<Option<DkimConfig>> {
    let dkim = &settings.mail.dkim;
    if dkim.selector.trim().is_empty() {
        return Ok(None);
    }
    if dkim.domain.trim().is_empty() {
        anyhow::bail!("mail.dkim.domain must be set when mail.dkim.selector is");
    }
    let path = settings.resolve(&dkim.private_key_path);
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("mail.dkim.private_key_path: cannot read {}", path.display()))?;
    let key = if text.contains("BEGIN RSA PRIVATE KEY") {
        DkimSigningKey::new(&text, DkimSigningAlgorithm::Rsa)
    } else if text.contains("BEGIN") {
        anyhow::bail!(
            "mail.dkim.private_key_path: {} is not a PKCS#1 RSA key; convert it with `openssl rsa -traditional`",
            path.display()
        );
    } else {
        DkimSigningKey::new(text.trim(), DkimSigningAlgorithm::Ed25519)
    }
    .map_err(|e| {
        anyhow::anyhow!(
            "mail.dkim.private_key_path: {} is not a usable key: {e:?}",
            path.display()
        )
    })?;
    Ok(Some(DkimConfig::new(
        dkim.selector.trim().to_owned(),
        dkim.domain.trim().to_owned(),
        key,
        SIGNED_HEADERS
            .iter()
            .map(|h| HeaderName::new_from_ascii_str(h))
            .collect(),
        DkimCanonicalization {
            header: DkimCanonicalizationType::Relaxed,
            body: DkimCanonicalizationType::Relaxed,
        },
    )))
}

impl Composer {
    pub fn new(settings: &Settings) -> anyhow::Result<Self> {
        let from = settings.mail.from.clone();
        let reply_to = settings.mail.reply_to.clone();
        let domain = from.email.domain().to_owned();
        let return_path = Some(settings.mail.return_path.trim().to_owned()).filter(|r| !r.is_empty());
        Ok(Self {
            from,
            return_path,
            reply_to,
            domain,
            dkim: dkim_config(settings)?,
        })
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

    /// The envelope sender of a message: `[mail] return_path` with `token` in it (or without
    /// the token, `bounces+{token}@...` as `bounces@...`), or the From address.
    pub fn envelope_sender(&self, token: Option<&str>) -> Address {
        self.return_path
            .as_deref()
            .and_then(|template| match token {
                Some(token) => template.replace("{token}", token).parse().ok(),
                None => template.replace("+{token}", "").replace("{token}", "").parse().ok(),
            })
            .unwrap_or_else(|| self.from.email.clone())
    }

    /// The token a bounce address carries, when `address` is the return path of one of
    /// Herald's messages (`bounces+TOKEN@example.org` for `bounces+{token}@example.org`).
    pub fn token_in_return_path<'a>(&self, address: &'a str) -> Option<&'a str> {
        let (before, after) = self.return_path.as_deref()?.split_once("{token}")?;
        let key = address.get(before.len()..address.len().checked_sub(after.len())?)?;
        let matches = address[..before.len()].eq_ignore_ascii_case(before)
            && address[address.len() - after.len()..].eq_ignore_ascii_case(after);
        (matches && !key.is_empty()).then_some(key)
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
        let mut message = builder.multipart(parts).context("Failed to build a message")?;
        if let Some(dkim) = &self.dkim {
            message.sign(dkim);
        }
        let envelope = Envelope::new(
            Some(self.envelope_sender(out.return_token.as_deref())),
            message.envelope().to().to_vec(),
        )
        .context("Failed to build a message's envelope")?;
        Ok((envelope, message.formatted()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn text_parts_wrap_at_78_columns_and_keep_links_whole() {
        let link = format!("https://news.example.org/{}", "x".repeat(90));
        let text = format!(
            "\n\nTitle\n{}\n\n\n\n  {}\n{link}\n\n",
            "word ".repeat(40),
            "indented ".repeat(20)
        );
        let out = plain_text(&text);
        assert!(out.starts_with("Title\n"), "{out}");
        assert!(!out.contains("\n\n\n"), "one blank line at most: {out}");
        assert!(out.ends_with(&format!("{link}\n")), "{out}");
        for line in out.lines().filter(|l| *l != link) {
            assert!(line.chars().count() <= TEXT_WIDTH, "{line:?}");
        }
        assert!(
            out.lines().filter(|l| l.starts_with("  indented")).count() >= 2,
            "{out}"
        );
        let words = |s: &str| s.split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(words(&out), words(&text), "nothing lost");
    }

    #[test]
    fn addresses_convert_as_written() {
        for text in [
            "ana@example.org",
            "Ana.Smith+news@Example.ORG",
            "ana@bücher.example",
            "josé.müller@example.org",
            "Δοκιμή@παράδειγμα.δοκιμή",
            "ana@example。org",
        ] {
            let address = Address::from(&EmailAddress::parse(text).unwrap());
            assert_eq!(address.to_string(), text);
            assert_eq!(address, text.parse::<Address>().unwrap(), "{text}");
        }
    }

    proptest! {
        #[test]
        fn lettre_accepts_every_checked_address(
            text in prop_oneof![
                "[a-zA-Z0-9éß.+!#'_\\-]{1,12}@[a-zA-Z0-9ü。\\-]{1,12}\\.[a-zA-Zü0-9\\-]{2,6}",
                "\\PC{1,12}@\\PC{1,12}\\.[a-z]{2,4}",
            ]
        ) {
            if let Ok(checked) = EmailAddress::parse(&text) {
                let lettre = Address::new(checked.local_part(), checked.domain());
                prop_assert_eq!(lettre, Ok(Address::from(&checked)));
            }
        }
    }

    #[test]
    fn dkim_signs_the_unsubscribe_headers() {
        let mut settings = Settings::default();
        settings.mail.from = "News <news@example.org>".parse().unwrap();
        settings.mail.dkim.selector = "herald".into();
        settings.mail.dkim.domain = "example.org".into();
        settings.mail.dkim.private_key_path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkim-test-key.pem");
        let composer = Composer::new(&settings).unwrap();
        let (_, bytes) = composer
            .build(Outgoing {
                to: "reader@example.net".parse().unwrap(),
                subject: "Signed".into(),
                html: body("<p>Hi</p>".into()),
                text: body("Hi".into()),
                message_key: "k".into(),
                return_token: None,
                headers: vec![
                    ("List-Unsubscribe", "<https://example.org/u/x>".into()),
                    ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()),
                ],
            })
            .unwrap();
        let text = String::from_utf8(bytes).unwrap();
        let signature = text.split("\r\n\r\n").next().unwrap().replace("\r\n ", " ");
        let line = signature
            .lines()
            .find(|l| l.starts_with("DKIM-Signature:"))
            .expect("signed");
        assert!(
            line.contains("d=example.org") && line.contains("s=herald") && line.contains("a=rsa-sha256"),
            "{line}"
        );
        let h = line
            .split("h=")
            .nth(1)
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_ascii_lowercase();
        for header in ["from", "list-unsubscribe", "list-unsubscribe-post", "message-id"] {
            assert!(h.split(':').any(|x| x.trim() == header), "{header} not signed: {h}");
        }
    }

    #[test]
    fn a_pkcs8_key_is_refused_with_a_hint() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("key.pem");
        std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n").unwrap();
        let mut settings = Settings::default();
        settings.mail.dkim.selector = "s".into();
        settings.mail.dkim.domain = "example.org".into();
        settings.mail.dkim.private_key_path = key;
        let err = Composer::new(&settings).err().unwrap().to_string();
        assert!(err.contains("-traditional"), "{err}");
    }
}
