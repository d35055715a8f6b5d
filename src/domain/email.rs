//! Email addresses as Herald accepts them: syntax, IDNA domains, the key that makes two
//! spellings one subscriber. Uses nothing else in Herald.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::str::FromStr;

/// A subscriber's email address, checked once when it comes in and never handled as a bare `String`
/// after that. It keeps the address as the subscriber wrote it (surrounding whitespace trimmed) for
/// display and sending, and a normalised [`key`](EmailAddress::key) that equality and hashing use, so
/// `Ana@Example.org` and `ana@example.ORG` are the same subscriber.
#[derive(Clone, serde::Deserialize)]
#[serde(try_from = "String")]
pub struct EmailAddress {
    /// The trimmed address as given.
    address: String,
    /// Byte index of the `@` in `address`.
    at: usize,
    /// The domain in its ASCII (punycode) form, lowercase.
    ascii_domain: String,
    /// Lowercased local part + "@" + `ascii_domain`.
    key: String,
}

/// Why a string is not an email address we can send to. Each message speaks to the subscriber who typed it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmailError {
    #[error("Please enter an email address, like ana@example.org.")]
    Empty,
    #[error("The address is too long: an email address can have at most {max} characters, this one has {len}.")]
    TooLong { len: usize, max: usize },
    #[error("The part before the @ is too long: it can have at most {max} characters, this one has {len}.")]
    LocalTooLong { len: usize, max: usize },
    #[error("The address contains a line break or another invisible control character; please type it on one line.")]
    ControlCharacter,
    #[error("The address needs an @ between the name and the domain, like ana@example.org.")]
    MissingAt,
    #[error("The address has more than one @; it needs exactly one, like ana@example.org.")]
    MultipleAt,
    #[error("The address needs a name before the @, like ana@example.org.")]
    EmptyLocal,
    #[error("The address needs a domain after the @, like ana@example.org.")]
    EmptyDomain,
    #[error("The part before the @ can't contain {0:?}; letters, digits and signs like . _ + - are fine.")]
    InvalidLocalCharacter(char),
    #[error("The part before the @ can't start or end with a dot, or have two dots in a row.")]
    BadDots,
    #[error("Addresses with quotes around the part before the @ are not supported.")]
    QuotedLocal,
    #[error("Addresses at an IP address in brackets, like ana@[192.0.2.1], are not supported; use a domain name.")]
    IpLiteral,
    #[error("The address needs a domain with a dot after the @, like example.org.")]
    DomainWithoutDot,
    #[error("The domain after the @ is not valid: {0}.")]
    InvalidDomain(String),
}

impl EmailAddress {
    /// Longest address accepted, in bytes with the domain in ASCII form. RFC 5321 §4.5.3.1.3 caps a
    /// path at 256 octets including the angle brackets, which leaves 254 for the address.
    pub const MAX_LEN: usize = 254;
    /// Longest local part accepted, in bytes (RFC 5321 §4.5.3.1.1).
    pub const MAX_LOCAL_LEN: usize = 64;
    /// Longest domain label, in bytes (RFC 1035 §2.3.4).
    const MAX_LABEL_LEN: usize = 63;

    /// Parses an address as a subscriber typed it. Surrounding whitespace is trimmed; anything else
    /// that is not a plain `local@domain.tld` address is refused with an [`EmailError`] saying why.
    /// International domains (`ana@bücher.example`) and Unicode local parts are accepted.
    pub fn parse(input: &str) -> Result<Self, EmailError> {
        // Checked on the untrimmed input on purpose: a CR or LF anywhere in a value bound for a mail
        // header is an injection attempt (RFC 5322 §2.2), and refusing it is safer than quietly trimming it.
        if input.chars().any(char::is_control) {
            return Err(EmailError::ControlCharacter);
        }
        let address = input.trim();
        if address.is_empty() {
            return Err(EmailError::Empty);
        }
        // A cheap guard before the IDNA conversion, which may shrink the domain but never by this much
        // for a real address: four bytes per character is the most UTF-8 needs.
        if address.len() > 4 * Self::MAX_LEN {
            return Err(EmailError::TooLong {
                len: address.len(),
                max: Self::MAX_LEN,
            });
        }
        // Quoted local parts (RFC 5322 §3.2.4) may hold spaces and even @; few providers hand them
        // out and many mail systems mishandle them, so they are refused rather than parsed.
        if address.starts_with('"') {
            return Err(EmailError::QuotedLocal);
        }
        let at = match address.match_indices('@').count() {
            0 => return Err(EmailError::MissingAt),
            1 => address.find('@').unwrap_or_default(),
            _ => return Err(EmailError::MultipleAt),
        };
        let (local, domain) = (&address[..at], &address[at + 1..]);
        if local.is_empty() {
            return Err(EmailError::EmptyLocal);
        }
        if domain.is_empty() {
            return Err(EmailError::EmptyDomain);
        }
        check_local(local)?;
        // Address literals (RFC 5321 §4.1.3) bypass DNS and are a favourite of abuse; no subscriber needs one.
        if domain.starts_with('[') || domain.ends_with(']') {
            return Err(EmailError::IpLiteral);
        }
        let ascii_domain = idna::domain_to_ascii(domain)
            .map_err(|_| EmailError::InvalidDomain("it is not a domain name that can be looked up".into()))?
            .to_ascii_lowercase();
        if !ascii_domain.contains('.') {
            return Err(EmailError::DomainWithoutDot);
        }
        let len = local.len() + 1 + ascii_domain.len();
        if len > Self::MAX_LEN {
            return Err(EmailError::TooLong {
                len,
                max: Self::MAX_LEN,
            });
        }
        check_ascii_domain(&ascii_domain)?;
        let key = format!("{}@{}", local.to_lowercase(), ascii_domain);
        Ok(Self {
            address: address.to_owned(),
            at,
            ascii_domain,
            key,
        })
    }

    /// The address as given (trimmed), for display and for the `To:` header.
    pub fn as_str(&self) -> &str {
        &self.address
    }

    /// The part before the `@`, as given.
    pub fn local_part(&self) -> &str {
        &self.address[..self.at]
    }

    /// The part after the `@`, as given (Unicode domains stay Unicode).
    pub fn domain(&self) -> &str {
        &self.address[self.at + 1..]
    }

    /// The domain in lowercase ASCII, with international labels in punycode (`xn--bcher-kva.example`).
    pub fn ascii_domain(&self) -> &str {
        &self.ascii_domain
    }

    /// The lowercased local part, `@`, and the ASCII domain: one key per mailbox, for case-insensitive
    /// uniqueness. Local parts are case-sensitive in theory (RFC 5321 §2.4) but not at any real provider.
    pub fn key(&self) -> String {
        self.key.clone()
    }
}

/// RFC 5322 §3.2.3 dot-atom, with Unicode letters and digits as RFC 6531 §3.3 allows for SMTPUTF8,
/// as the `email_address` crate reads it. Quoted local parts never get here: [`EmailAddress::parse`]
/// refuses them first.
fn check_local(local: &str) -> Result<(), EmailError> {
    if local.len() > EmailAddress::MAX_LOCAL_LEN {
        return Err(EmailError::LocalTooLong {
            len: local.len(),
            max: EmailAddress::MAX_LOCAL_LEN,
        });
    }
    if email_address::EmailAddress::is_valid_local_part(local) {
        return Ok(());
    }
    // Name what is wrong: the first character that can't stand in a local part, else the dots.
    let mut buf = [0; 4];
    match local
        .chars()
        .find(|&c| c != '.' && !email_address::EmailAddress::is_valid_local_part(c.encode_utf8(&mut buf)))
    {
        Some(c) => Err(EmailError::InvalidLocalCharacter(c)),
        None => Err(EmailError::BadDots),
    }
}

/// Host-name rules (RFC 1035 §2.3.1, RFC 1123 §2.1, RFC 5890 §2.3.1) on the domain's ASCII form.
fn check_ascii_domain(domain: &str) -> Result<(), EmailError> {
    let invalid = |reason: String| Err(EmailError::InvalidDomain(reason));
    for label in domain.split('.') {
        if label.is_empty() {
            return invalid("it has an empty part between dots".into());
        }
        if label.len() > EmailAddress::MAX_LABEL_LEN {
            return invalid(format!(
                "each part between dots can have at most {} characters",
                EmailAddress::MAX_LABEL_LEN
            ));
        }
        if let Some(c) = label.chars().find(|&c| !(c.is_ascii_alphanumeric() || c == '-')) {
            return invalid(format!(
                "it can't contain {c:?}, only letters, digits, hyphens and dots"
            ));
        }
        if label.starts_with('-') || label.ends_with('-') {
            return invalid("a part between dots can't start or end with a hyphen".into());
        }
    }
    // An all-digit last label would make the domain look like an IPv4 address (RFC 3696 §2).
    if domain
        .rsplit('.')
        .next()
        .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
    {
        return invalid("the ending after the last dot can't be only digits".into());
    }
    Ok(())
}

impl fmt::Display for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.address)
    }
}

impl fmt::Debug for EmailAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("EmailAddress").field(&self.address).finish()
    }
}

impl PartialEq for EmailAddress {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key
    }
}

impl Eq for EmailAddress {}

impl Hash for EmailAddress {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.key.hash(state);
    }
}

impl FromStr for EmailAddress {
    type Err = EmailError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

impl TryFrom<String> for EmailAddress {
    type Error = EmailError;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        Self::parse(&s)
    }
}

impl serde::Serialize for EmailAddress {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.address)
    }
}

#[cfg(test)]
#[allow(clippy::redundant_pattern_matching)] // the case table writes `Ok(_)` as a pattern on purpose
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Outcome = Result<EmailAddress, EmailError>;

    /// One table row: the input, the expected pattern as text, and a check that the outcome matches it.
    macro_rules! case {
        ($input:expr => $pat:pat $(if $guard:expr)?) => {
            (
                String::from($input),
                stringify!($pat $(if $guard)?),
                (|outcome: &Outcome| matches!(outcome, $pat $(if $guard)?)) as fn(&Outcome) -> bool,
            )
        };
    }

    #[test]
    fn tricky_addresses() {
        let long_local = "a".repeat(64);
        let domain_190 = format!("{}.{}.{}.org", "b".repeat(63), "c".repeat(63), "d".repeat(58));
        let domain_189 = format!("{}.{}.{}.org", "b".repeat(63), "c".repeat(63), "d".repeat(57));
        let cases = [
            // Accepted.
            case!("ana@example.org" => Ok(a) if a.key() == "ana@example.org"),
            case!("ana+news@example.org" => Ok(a) if a.local_part() == "ana+news"),
            case!("ana.b_c-d@mail.sub.example.co.uk" => Ok(a) if a.domain() == "mail.sub.example.co.uk"),
            case!("Ana.Smith@Example.ORG" => Ok(a) if a.key() == "ana.smith@example.org"
                && a.as_str() == "Ana.Smith@Example.ORG"),
            case!("ana@bücher.example" => Ok(a) if a.ascii_domain() == "xn--bcher-kva.example"
                && a.domain() == "bücher.example" && a.key() == "ana@xn--bcher-kva.example"),
            case!("ana@BÜCHER.example" => Ok(a) if a.key() == "ana@xn--bcher-kva.example"),
            case!("josé.müller@example.org" => Ok(a) if a.local_part() == "josé.müller"),
            case!("안녕@example.org" => Ok(a) if a.local_part() == "안녕"),
            case!("Δοκιμή@παράδειγμα.δοκιμή" => Ok(a) if a.key().starts_with("δοκιμή@xn--")),
            case!("  ana@example.org \u{a0}" => Ok(a) if a.as_str() == "ana@example.org"),
            case!("!#$%&'*+/=?^_`{|}~-@example.org" => Ok(_)),
            case!("ana@example。org" => Ok(a) if a.ascii_domain() == "example.org"),
            case!(format!("{long_local}@example.org") => Ok(_)),
            case!(format!("{long_local}@{domain_189}") => Ok(a) if a.as_str().len() == 254),
            // Refused.
            case!("" => Err(EmailError::Empty)),
            case!("   " => Err(EmailError::Empty)),
            case!("anaexample.org" => Err(EmailError::MissingAt)),
            case!("a@b" => Err(EmailError::DomainWithoutDot)),
            case!("@example.org" => Err(EmailError::EmptyLocal)),
            case!("ana@" => Err(EmailError::EmptyDomain)),
            case!("ana@@example.org" => Err(EmailError::MultipleAt)),
            case!("ana@exa@mple.org" => Err(EmailError::MultipleAt)),
            case!("\"quoted\"@example.org" => Err(EmailError::QuotedLocal)),
            case!("\"ana@home\"@example.org" => Err(EmailError::QuotedLocal)),
            case!("ana..b@example.org" => Err(EmailError::BadDots)),
            case!(".ana@example.org" => Err(EmailError::BadDots)),
            case!("ana.@example.org" => Err(EmailError::BadDots)),
            case!("ana@[127.0.0.1]" => Err(EmailError::IpLiteral)),
            case!("ana@[IPv6:2001:db8::1]" => Err(EmailError::IpLiteral)),
            case!("ana@example.org\r\nBcc: x@evil.example" => Err(EmailError::ControlCharacter)),
            case!("ana@example.org\nX" => Err(EmailError::ControlCharacter)),
            case!("ana@example.org\r\n" => Err(EmailError::ControlCharacter)),
            case!("\tana@example.org" => Err(EmailError::ControlCharacter)),
            case!("ana\0@example.org" => Err(EmailError::ControlCharacter)),
            case!("ana@example.org\u{85}" => Err(EmailError::ControlCharacter)),
            case!("ana\u{7f}@example.org" => Err(EmailError::ControlCharacter)),
            case!(format!("a{long_local}@example.org") => Err(EmailError::LocalTooLong { len: 65, max: 64 })),
            case!(format!("{long_local}@{domain_190}") => Err(EmailError::TooLong { len: 255, max: 254 })),
            case!(format!("ana@{}.org", "a".repeat(64)) => Err(EmailError::InvalidDomain(_))),
            case!("ana@-example.org" => Err(EmailError::InvalidDomain(_))),
            case!("ana@example-.org" => Err(EmailError::InvalidDomain(_))),
            case!("ana@example.123" => Err(EmailError::InvalidDomain(_))),
            case!("ana@127.0.0.1" => Err(EmailError::InvalidDomain(_))),
            case!("ana@example..org" => Err(EmailError::InvalidDomain(_))),
            case!("ana@example.org." => Err(EmailError::InvalidDomain(_))),
            case!("ana@exa_mple.org" => Err(EmailError::InvalidDomain(_))),
            case!("ana smith@example.org" => Err(EmailError::InvalidLocalCharacter(' '))),
            case!("ana(x)@example.org" => Err(EmailError::InvalidLocalCharacter('('))),
            case!("ana\"b\"@example.org" => Err(EmailError::InvalidLocalCharacter('"'))),
            case!("ana..b(@example.org" => Err(EmailError::InvalidLocalCharacter('('))),
            case!("ana\u{2028}@example.org" => Err(EmailError::InvalidLocalCharacter('\u{2028}'))),
            case!("ana@exa mple.org" => Err(EmailError::InvalidDomain(_))),
            case!("ana@exa<mple.org" => Err(EmailError::InvalidDomain(_))),
            case!(format!("{}@example.org", "a".repeat(2000)) => Err(EmailError::TooLong { .. })),
        ];
        let failures: Vec<String> = cases
            .iter()
            .filter_map(|(input, expected, check)| {
                let outcome = EmailAddress::parse(input);
                (!check(&outcome)).then(|| format!("{input:?}: expected {expected}, got {outcome:?}"))
            })
            .collect();
        assert!(
            failures.is_empty(),
            "{} case(s) failed:\n{}",
            failures.len(),
            failures.join("\n")
        );
    }

    #[test]
    fn equality_and_hashing_follow_the_key() {
        use std::collections::HashSet;
        let a = EmailAddress::parse("Ana@Bücher.Example").unwrap();
        let b = EmailAddress::parse("ana@xn--bcher-kva.example").unwrap();
        assert_eq!(a, b);
        assert_eq!(a.to_string(), "Ana@Bücher.Example");
        assert_eq!(HashSet::from([a, b]).len(), 1);
        assert_ne!(
            EmailAddress::parse("ana@example.org").unwrap(),
            EmailAddress::parse("ana+news@example.org").unwrap()
        );
    }

    #[test]
    fn serde_uses_the_string_and_validates_on_the_way_in() {
        let a: EmailAddress = "Ana@Example.org".parse().unwrap();
        assert_eq!(format!("{a:?}"), "EmailAddress(\"Ana@Example.org\")");
        let json = serde_json::to_string(&a).unwrap();
        assert_eq!(json, "\"Ana@Example.org\"");
        let back: EmailAddress = serde_json::from_str(&json).unwrap();
        assert_eq!(back.as_str(), "Ana@Example.org");
        let err = serde_json::from_str::<EmailAddress>("\"ana@example.org\\r\\nBcc: x@evil.example\"").unwrap_err();
        assert!(err.to_string().contains("control character"), "{err}");
        assert!(serde_json::from_str::<EmailAddress>("\"a@b\"").is_err());
    }

    #[test]
    fn messages_speak_to_the_subscriber() {
        assert_eq!(
            EmailError::MissingAt.to_string(),
            "The address needs an @ between the name and the domain, like ana@example.org."
        );
        let err = EmailAddress::parse("ana@-example.org").unwrap_err().to_string();
        assert!(err.starts_with("The domain after the @ is not valid: "), "{err}");
    }

    /// Strings made of the characters that matter to the parser, so many come out accepted.
    fn addressish() -> impl Strategy<Value = String> {
        prop_oneof![
            "[ a-zA-Z0-9._+\\-]{0,12}@[a-zA-Z0-9\\-]{1,12}\\.[a-zA-Z]{2,6}[ ]{0,2}",
            "[a-zA-Zé.+\\-\"@\\[\\] \r\n\u{0}\u{85}]{0,20}@[a-zA-Zü0-9.\\-@\\[\\] \r\n]{0,20}",
            "\\PC{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn parse_never_panics(input in any::<String>()) {
            let _ = EmailAddress::parse(&input);
        }

        #[test]
        fn accepted_addresses_are_clean(input in addressish()) {
            if let Ok(addr) = EmailAddress::parse(&input) {
                prop_assert!(!addr.as_str().chars().any(char::is_control));
                prop_assert_eq!(addr.key().matches('@').count(), 1);
                prop_assert_eq!(addr.as_str(), input.trim());
                prop_assert!(addr.ascii_domain().is_ascii());
            }
        }

        #[test]
        fn accepted_addresses_round_trip(input in addressish()) {
            if let Ok(addr) = EmailAddress::parse(&input) {
                let again = EmailAddress::parse(addr.as_str()).unwrap();
                prop_assert_eq!(again.as_str(), addr.as_str());
                prop_assert_eq!(again.key(), addr.key());
                prop_assert_eq!(again, addr);
            }
        }
    }
}
