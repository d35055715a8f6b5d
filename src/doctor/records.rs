//! The DNS records a receiver reads before it trusts the mail: the DKIM key at
//! `<selector>._domainkey.<domain>`, SPF at the From domain and DMARC at `_dmarc.<domain>`.
//! Lookups go through `dns`; reading the answers is plain functions, tested on their own.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;

use super::dkim::{self, PublicKey};
use super::dns::{Dns, Txt};
use super::{Check, Finding};
use crate::config::Settings;

/// `tag=value` pairs of a DKIM or DMARC record (RFC 6376 §3.2): tag names lowercased,
/// whitespace inside values dropped (base64 keys are often folded).
pub fn tags(record: &str) -> Vec<(String, String)> {
    record
        .split(';')
        .filter_map(|pair| {
            let (name, value) = pair.split_once('=')?;
            let value: String = value.chars().filter(|c| !c.is_whitespace()).collect();
            Some((name.trim().to_ascii_lowercase(), value))
        })
        .collect()
}

fn tag<'a>(tags: &'a [(String, String)], name: &str) -> Option<&'a str> {
    tags.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Whether a DKIM signature for `signing` aligns with mail from `from` under DMARC's relaxed
/// rule: the same domain, or one inside the other (a stand-in for "same organisational
/// domain" that needs no public-suffix list).
fn aligned(signing: &str, from: &str) -> bool {
    let (s, f) = (signing.to_ascii_lowercase(), from.to_ascii_lowercase());
    s == f || s.ends_with(&format!(".{f}")) || f.ends_with(&format!(".{s}"))
}

/// The DKIM finding, from the configured key and what DNS holds at its name.
pub async fn check_dkim(dns: &Dns, settings: &Settings) -> Finding {
    let key = match dkim::configured(settings) {
        Ok(Some(key)) => key,
        Ok(None) => {
            return Finding::warning(
                Check::Dkim,
                "Herald does not sign mail with DKIM ([mail.dkim] selector is empty)",
                format!(
                    "Unless your mail relay signs for {domain} itself, Gmail and Yahoo reject or junk bulk mail without \
                     DKIM. Make a key (`openssl genrsa -traditional -out dkim.pem 2048`), set [mail.dkim] \
                     selector = \"herald\", domain = \"{domain}\", private_key_path = \"dkim.pem\", and run \
                     `herald doctor` again: it prints the record to publish.",
                    domain = settings.mail.from.email.domain()
                ),
            );
        }
        Err(e) => {
            return Finding::problem(
                Check::Dkim,
                format!("the signing key cannot be used: {e}"),
                "Point [mail.dkim] private_key_path at an RSA key in PKCS#1 PEM (`openssl genrsa -traditional \
                 -out dkim.pem 2048`) or an Ed25519 key in base64.",
            );
        }
    };
    let dkim = &settings.mail.dkim;
    if dkim.domain.trim().is_empty() {
        return Finding::problem(
            Check::Dkim,
            "[mail.dkim] selector is set but domain is empty: Herald cannot sign",
            format!(
                "Set [mail.dkim] domain = \"{}\" (the From domain).",
                settings.mail.from.email.domain()
            ),
        );
    }
    let name = format!("{}._domainkey.{}", dkim.selector.trim(), dkim.domain.trim());
    let mut finding = judge_dkim(&key, &name, &dns.txt(&name).await);
    let from = settings.mail.from.email.domain();
    if finding.level == super::Level::Ok && !aligned(dkim.domain.trim(), from) {
        finding = Finding::warning(
            Check::Dkim,
            format!(
                "{} — but mail is signed for {} and comes from {from}, so DMARC does not count the signature",
                finding.summary,
                dkim.domain.trim()
            ),
            format!(
                "Set [mail.dkim] domain = \"{from}\" and publish the key at {}._domainkey.{from}.",
                dkim.selector.trim()
            ),
        );
    }
    finding
}

/// Reads the TXT answer at `name` against the key Herald signs with.
pub fn judge_dkim(key: &PublicKey, name: &str, answer: &Txt) -> Finding {
    let publish = format!("Publish a TXT record at {name} with the value: {}", key.record());
    let records = match answer {
        Txt::Failed(e) => {
            return Finding::problem(
                Check::Dkim,
                format!("the DKIM record at {name} could not be looked up: {e}"),
                format!("Check that DNS answers from here ([doctor] nameserver), then run again. {publish}"),
            );
        }
        Txt::Missing => {
            return Finding::problem(
                Check::Dkim,
                format!("no DKIM record at {name}: receivers cannot verify Herald's signatures"),
                publish,
            );
        }
        Txt::Found(records) => records,
    };
    // A record is a key record if it says so or carries a key; other TXT at the name is ignored.
    let keys: Vec<Vec<(String, String)>> = records
        .iter()
        .map(|r| tags(r))
        .filter(|t| tag(t, "v").is_some_and(|v| v.eq_ignore_ascii_case("DKIM1")) || tag(t, "p").is_some())
        .collect();
    let record = match keys.as_slice() {
        [] => {
            return Finding::problem(
                Check::Dkim,
                format!("the TXT at {name} is not a DKIM key record"),
                publish,
            );
        }
        [one] => one,
        more => {
            return Finding::problem(
                Check::Dkim,
                format!(
                    "{} DKIM records at {name}: receivers may read either, and fail the signature",
                    more.len()
                ),
                format!("Keep one TXT record at {name}, with the value: {}", key.record()),
            );
        }
    };
    if let Some(v) = tag(record, "v").filter(|v| *v != "DKIM1") {
        return Finding::problem(
            Check::Dkim,
            format!("the record at {name} says v={v}; receivers ignore it"),
            publish,
        );
    }
    let kind = tag(record, "k").unwrap_or("rsa");
    if !kind.eq_ignore_ascii_case(key.kind()) {
        return Finding::problem(
            Check::Dkim,
            format!(
                "the record at {name} is for k={kind} keys, but Herald signs with an {} key",
                key.kind()
            ),
            publish,
        );
    }
    let p = tag(record, "p").unwrap_or("");
    if p.is_empty() {
        return Finding::problem(
            Check::Dkim,
            format!("the key at {name} is revoked (empty p=): every signature with it fails"),
            format!(
                "A revoked key stays revoked: make a new key under a new selector ([mail.dkim] selector and \
                 private_key_path) and publish that. If this key was never meant to be revoked: {publish}"
            ),
        );
    }
    let published = match STANDARD.decode(p) {
        Ok(bytes) => bytes,
        Err(_) => {
            return Finding::problem(
                Check::Dkim,
                format!("the p= value at {name} is not valid base64 (cut short when pasted?)"),
                publish,
            );
        }
    };
    if !key.matches(&published) {
        return Finding::problem(
            Check::Dkim,
            format!("the key published at {name} is not the public half of the key Herald signs with"),
            format!("{publish} (or set [mail.dkim] private_key_path to the key whose public half is published)"),
        );
    }
    let size = key
        .rsa_bits()
        .map(|b| format!(" ({b}-bit RSA)"))
        .unwrap_or(" (Ed25519)".into());
    let summary = format!("{name} publishes the key Herald signs with{size}");
    if tag(record, "t").is_some_and(|t| t.split(':').any(|f| f.trim().eq_ignore_ascii_case("y"))) {
        return Finding::warning(
            Check::Dkim,
            format!("{summary}, in testing mode (t=y): receivers may treat mail as unsigned"),
            format!("Once mail verifies, remove t=y: publish at {name}: {}", key.record()),
        );
    }
    match key.rsa_bits() {
        Some(bits) if bits < 1024 => Finding::problem(
            Check::Dkim,
            format!("{summary}, but receivers ignore signatures by keys under 1024 bits"),
            "Make a 2048-bit key (`openssl genrsa -traditional -out dkim.pem 2048`) with a new selector, and publish it.",
        ),
        Some(bits) if bits < 2048 => Finding::warning(
            Check::Dkim,
            format!("{summary}; Gmail and others recommend 2048 bits"),
            "Make a 2048-bit key (`openssl genrsa -traditional -out dkim.pem 2048`) with a new selector, and publish it.",
        ),
        _ => Finding::ok(Check::Dkim, summary),
    }
}

/// The SPF finding for the From domain.
pub async fn check_spf(dns: &Dns, domain: &str, settings: &Settings) -> Finding {
    let relay = match settings.mail.transport {
        crate::config::MailTransport::Smtp => format!(" (the one {} documents)", settings.mail.smtp.host),
        crate::config::MailTransport::File => String::new(),
    };
    judge_spf(domain, &relay, &dns.txt(domain).await)
}

/// Reads the TXT answer at the From domain for SPF; `relay` names the relay in advice.
pub fn judge_spf(domain: &str, relay: &str, answer: &Txt) -> Finding {
    let records = match answer {
        Txt::Failed(e) => {
            return Finding::problem(
                Check::Spf,
                format!("the TXT records at {domain} could not be looked up: {e}"),
                "Check that DNS answers from here ([doctor] nameserver), then run again.",
            );
        }
        Txt::Missing => &Vec::new(),
        Txt::Found(records) => records,
    };
    // RFC 7208 §4.5: the version is `v=spf1` followed by a space or the end.
    let spf: Vec<&String> = records
        .iter()
        .filter(|r| {
            let lower = r.trim().to_ascii_lowercase();
            lower == "v=spf1" || lower.starts_with("v=spf1 ")
        })
        .collect();
    match spf.as_slice() {
        [] => Finding::warning(
            Check::Spf,
            format!("no SPF record at {domain}: receivers cannot tell which servers may send its mail"),
            format!(
                "Publish a TXT record at {domain} with the value: v=spf1 include:<your mail relay's SPF domain> ~all \
                 (your relay's setup guide names the include{relay})"
            ),
        ),
        [one] => {
            let all = one.split_whitespace().find(|term| {
                term.trim_start_matches(['+', '-', '~', '?'])
                    .eq_ignore_ascii_case("all")
            });
            match all {
                Some(term) if term.eq_ignore_ascii_case("all") || term.eq_ignore_ascii_case("+all") => {
                    Finding::warning(
                        Check::Spf,
                        format!("the SPF record at {domain} ends in {term}: any server may send mail as {domain}"),
                        format!(
                            "End the record with ~all (or -all) instead: {}",
                            one.split_whitespace()
                                .map(|t| if t == term { "~all" } else { t })
                                .collect::<Vec<_>>()
                                .join(" ")
                        ),
                    )
                }
                _ => Finding::ok(Check::Spf, format!("{domain}: {one}")),
            }
        }
        more => Finding::problem(
            Check::Spf,
            format!(
                "{} SPF records at {domain}: receivers treat that as an error (RFC 7208 §4.5), so SPF fails for all its mail",
                more.len()
            ),
            format!(
                "Merge them into one TXT record at {domain}: one v=spf1, every include and address of the {} records, one ~all",
                more.len()
            ),
        ),
    }
}

/// The DMARC finding for the From domain: its own `_dmarc` record, or else its parents'
/// (mail from `news.example.org` falls under `_dmarc.example.org`, RFC 7489 §6.6.3).
pub async fn check_dmarc(dns: &Dns, domain: &str) -> Finding {
    let mut answers = Vec::new();
    let mut at = domain.trim_end_matches('.').to_owned();
    loop {
        let name = format!("_dmarc.{at}");
        let answer = dns.txt(&name).await;
        let found = !matches!(answer, Txt::Missing);
        answers.push((name, answer));
        // Stop at an answer, and before a bare top-level domain.
        match at.split_once('.') {
            Some((_, parent)) if !found && parent.contains('.') => at = parent.to_owned(),
            _ => break,
        }
    }
    judge_dmarc(domain, &answers)
}

/// Reads the `_dmarc` answers, the From domain's own first, then its parents' until one
/// answered.
pub fn judge_dmarc(domain: &str, answers: &[(String, Txt)]) -> Finding {
    let own = format!("_dmarc.{domain}");
    let suggested = format!("v=DMARC1; p=none; rua=mailto:dmarc-reports@{domain}");
    let Some((name, answer)) = answers.iter().find(|(_, a)| !matches!(a, Txt::Missing)) else {
        return Finding::problem(
            Check::Dmarc,
            format!("no DMARC record at {own}: Gmail and Yahoo require one from bulk senders"),
            format!(
                "Publish a TXT record at {own} with the value: {suggested} — then, once the reports show your mail \
                 passing, change p=none to p=quarantine."
            ),
        );
    };
    let records = match answer {
        Txt::Failed(e) => {
            return Finding::problem(
                Check::Dmarc,
                format!("the DMARC record at {name} could not be looked up: {e}"),
                "Check that DNS answers from here ([doctor] nameserver), then run again.",
            );
        }
        Txt::Found(records) => records,
        Txt::Missing => unreachable!("found above"),
    };
    let dmarc: Vec<Vec<(String, String)>> = records
        .iter()
        .map(|r| tags(r))
        .filter(|t| t.first().is_some_and(|(n, v)| n == "v" && v == "DMARC1"))
        .collect();
    let record = match dmarc.as_slice() {
        [] => {
            return Finding::problem(
                Check::Dmarc,
                format!("the TXT at {name} is not a DMARC record (it must start with v=DMARC1)"),
                format!("Publish a TXT record at {own} with the value: {suggested}"),
            );
        }
        [one] => one,
        more => {
            return Finding::problem(
                Check::Dmarc,
                format!(
                    "{} DMARC records at {name}: receivers then apply none (RFC 7489 §6.6.3)",
                    more.len()
                ),
                format!("Keep one TXT record at {name}."),
            );
        }
    };
    // A parent's record governs subdomains through sp= when it has one.
    let inherited = name != &own;
    let policy = if inherited {
        tag(record, "sp").or_else(|| tag(record, "p"))
    } else {
        tag(record, "p")
    };
    let whose = if inherited {
        format!("{name} (covering {domain})")
    } else {
        name.clone()
    };
    match policy.map(str::to_ascii_lowercase).as_deref() {
        Some("reject") | Some("quarantine") => Finding::ok(
            Check::Dmarc,
            format!("{whose}: policy p={}", policy.unwrap_or_default()),
        ),
        Some("none") => Finding::warning(
            Check::Dmarc,
            format!("{whose}: policy p=none — receivers only report, and act on nothing"),
            format!(
                "Read the aggregate reports (rua=); once they show your mail passing SPF or DKIM for {domain}, change \
                 p=none to p=quarantine at {name}."
            ),
        ),
        other => Finding::problem(
            Check::Dmarc,
            format!(
                "{whose}: {} — receivers ignore the record",
                match other {
                    Some(p) => format!("unknown policy p={p}"),
                    None => "no p= policy".to_owned(),
                }
            ),
            format!("Publish a TXT record at {name} with the value: {suggested}"),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::super::Level;
    use super::*;

    fn found(records: &[&str]) -> Txt {
        Txt::Found(records.iter().map(|s| s.to_string()).collect())
    }

    fn key() -> PublicKey {
        let mut settings = Settings::default();
        settings.mail.dkim.selector = "herald".into();
        settings.mail.dkim.private_key_path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/dkim-test-key.pem");
        dkim::configured(&settings).unwrap().unwrap()
    }

    #[test]
    fn dkim_records_are_read_tag_by_tag() {
        let key = key();
        let name = "herald._domainkey.example.org";
        let p = key.p();
        let folded = format!("v=DKIM1; k=rsa; p={} {}", &p[..100], &p[100..]);
        let cases: Vec<(Txt, Level, &str)> = vec![
            (found(&[&key.record()]), Level::Ok, "2048-bit RSA"),
            (
                found(&[&folded, "google-site-verification=x"]),
                Level::Ok,
                "publishes the key",
            ),
            (found(&[&format!("p={p}")]), Level::Ok, "publishes the key"),
            (Txt::Missing, Level::Problem, "no DKIM record"),
            (found(&["v=DKIM1; k=rsa; p="]), Level::Problem, "revoked"),
            (
                found(&[&format!("v=DKIM1; k=ed25519; p={p}")]),
                Level::Problem,
                "k=ed25519",
            ),
            (
                found(&["v=DKIM1; p=MIIBIjANBgkq"]),
                Level::Problem,
                "not the public half",
            ),
            (found(&["v=DKIM1; p=%%%"]), Level::Problem, "not valid base64"),
            (found(&[&key.record(), &key.record()]), Level::Problem, "2 DKIM records"),
            (found(&["hello"]), Level::Problem, "not a DKIM key record"),
            (
                found(&[&format!("v=DKIM1; t=y; p={p}")]),
                Level::Warning,
                "testing mode",
            ),
            (Txt::Failed("timed out".into()), Level::Problem, "timed out"),
        ];
        for (answer, level, words) in cases {
            let finding = judge_dkim(&key, name, &answer);
            assert_eq!(finding.level, level, "{answer:?}: {finding:?}");
            assert!(finding.summary.contains(words), "{answer:?}: {}", finding.summary);
            if level != Level::Ok {
                assert!(finding.fix.is_some());
            }
        }
        let missing = judge_dkim(&key, name, &Txt::Missing);
        assert_eq!(
            missing.fix.unwrap(),
            format!("Publish a TXT record at {name} with the value: {}", key.record())
        );
    }

    #[test]
    fn spf_wants_exactly_one_record_that_does_not_allow_everyone() {
        let cases = [
            (found(&["v=spf1 include:_spf.relay.example -all"]), Level::Ok),
            (found(&["other", "v=spf1 mx ~all"]), Level::Ok),
            (found(&["v=spf10 nothing"]), Level::Warning),
            (Txt::Missing, Level::Warning),
            (found(&["v=spf1 +all"]), Level::Warning),
            (found(&["v=spf1 a all"]), Level::Warning),
            (found(&["v=spf1 mx -all", "v=spf1 a -all"]), Level::Problem),
            (Txt::Failed("refused".into()), Level::Problem),
        ];
        for (answer, level) in cases {
            let finding = judge_spf("example.org", "", &answer);
            assert_eq!(finding.level, level, "{answer:?}: {finding:?}");
        }
        let open = judge_spf("example.org", "", &found(&["v=spf1 include:allmail.example all"]));
        assert!(
            open.fix.unwrap().ends_with(": v=spf1 include:allmail.example ~all"),
            "only the all term changes"
        );
    }

    #[test]
    fn dmarc_reports_the_policy_and_falls_back_to_the_parent_domain() {
        let own = |t: Txt| vec![("_dmarc.example.org".to_owned(), t)];
        let cases = [
            (own(found(&["v=DMARC1; p=reject"])), Level::Ok, "p=reject"),
            (
                own(found(&["v=DMARC1; p=quarantine; rua=mailto:d@example.org"])),
                Level::Ok,
                "p=quarantine",
            ),
            (own(found(&["v=DMARC1; p=none"])), Level::Warning, "p=none"),
            (
                own(found(&["v=DMARC1; rua=mailto:d@example.org"])),
                Level::Problem,
                "no p= policy",
            ),
            (
                own(found(&["v=DMARC1; p=reject", "v=DMARC1; p=none"])),
                Level::Problem,
                "2 DMARC records",
            ),
            (
                own(found(&["p=reject; v=DMARC1"])),
                Level::Problem,
                "not a DMARC record",
            ),
            (
                own(Txt::Missing),
                Level::Problem,
                "no DMARC record at _dmarc.example.org",
            ),
        ];
        for (answers, level, words) in cases {
            let finding = judge_dmarc("example.org", &answers);
            assert_eq!(finding.level, level, "{answers:?}: {finding:?}");
            assert!(finding.summary.contains(words), "{}", finding.summary);
        }
        let parent = vec![
            ("_dmarc.news.example.org".to_owned(), Txt::Missing),
            ("_dmarc.example.org".to_owned(), found(&["v=DMARC1; p=reject; sp=none"])),
        ];
        let finding = judge_dmarc("news.example.org", &parent);
        assert_eq!(finding.level, Level::Warning, "{finding:?}");
        assert!(
            finding.summary.contains("covering news.example.org"),
            "{}",
            finding.summary
        );
    }

    #[test]
    fn alignment_allows_subdomains_either_way() {
        assert!(aligned("example.org", "news.example.org"));
        assert!(aligned("mail.example.org", "example.org"));
        assert!(aligned("Example.org", "example.org"));
        assert!(!aligned("relay.example", "example.org"));
        assert!(!aligned("badexample.org", "example.org"));
    }
}
