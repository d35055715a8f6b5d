//! Reports about mail already sent, as mail servers write them: delivery status
//! notifications (RFC 3464, "bounces", from Postfix, Exim, Exchange and the rest) and abuse
//! feedback reports (ARF, RFC 5965, "complaints", from mailbox providers' feedback loops).
//! Reading one says who bounced or complained, how badly, and about which of Herald's
//! messages. Uses `mail` only.

use chrono::{DateTime, Utc};
use mail_parser::{Message, MessageParser, MimeHeaders, PartType};
use sha2::{Digest, Sha256};

use super::SendError;

/// The most recipients one report is read for. Herald sends each message to one recipient, so
/// a report about one of its messages names one; a report naming thousands is not about
/// Herald's mail, and must not become thousands of events.
pub const MAX_FINDINGS: usize = 100;

/// How bad the news about one recipient is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Severity {
    /// The address itself is at fault (no such user, no such domain, disabled): suppress it.
    Hard,
    /// Delivery gave up for a reason that may pass: mailbox full, a policy or content
    /// refusal, an expired retry. Counted; enough of them make the address bounced.
    Soft,
    /// The recipient reported the message as spam.
    Complaint,
}

/// What one report says about one recipient.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The recipient's address, lowercased, as the report gives it (absent when a feedback
    /// loop redacts it: the original message's Message-ID then says who it was).
    pub recipient: Option<String>,
    pub severity: Severity,
    /// The status and the remote server's words, e.g. `5.1.1 smtp; 550 5.1.1 User unknown`.
    pub diagnostic: String,
}

/// A report read from one message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// The report's own Message-ID, or a hash of its bytes when it has none: the same report
    /// fetched twice (two instances polling one mailbox, a re-run) is recorded once.
    pub id: String,
    /// The Message-ID of the message it is about, without angle brackets, when the report
    /// returns the message or its headers.
    pub original_message_id: Option<String>,
    /// The addresses the report was delivered to (To, Delivered-To, X-Original-To): with a
    /// VERP return path, one of them carries the token of the delivery that bounced.
    pub sent_to: Vec<String>,
    pub arrived_at: Option<DateTime<Utc>>,
    pub findings: Vec<Finding>,
}

/// Why a message could not be read as a report.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("not an email message (no headers could be read)")]
    NotAMessage,
    #[error("not a bounce or complaint report (subject {subject:?}): no delivery-status or feedback-report part")]
    NotAReport { subject: String },
}

/// Reads a delivery status notification or an abuse report. A report that says nothing
/// failed (a delay warning, a success notice) is a report with no findings.
pub fn read(raw: &[u8]) -> Result<Report, ReportError> {
    let message = MessageParser::default().parse(raw).ok_or(ReportError::NotAMessage)?;
    if message.headers().is_empty() {
        return Err(ReportError::NotAMessage);
    }
    let id = message
        .message_id()
        .map(|id| format!("<{id}>"))
        .unwrap_or_else(|| format!("sha256:{}", hex::encode(Sha256::digest(raw))));
    let mut sent_to = Vec::new();
    for name in ["Delivered-To", "X-Original-To", "To"] {
        for value in message.header_values(name) {
            collect_addresses(value, &mut sent_to);
        }
    }
    let mut report = Report {
        id,
        original_message_id: returned_message_id(&message),
        sent_to,
        arrived_at: message
            .date()
            .and_then(|d| DateTime::from_timestamp(d.to_timestamp(), 0)),
        findings: Vec::new(),
    };
    if let Some(fields) = part_text(&message, &["delivery-status", "global-delivery-status"]) {
        report.findings = delivery_status(&fields);
    } else if let Some(fields) = part_text(&message, &["feedback-report"]) {
        report.findings = feedback_report(&fields, &message);
    } else if let Some((findings, original)) = exim_text(&message) {
        report.findings = findings;
        report.original_message_id = report.original_message_id.or(original);
    } else {
        let subject = message.subject().unwrap_or_default().chars().take(100).collect();
        return Err(ReportError::NotAReport { subject });
    }
    report.findings.truncate(MAX_FINDINGS);
    Ok(report)
}

fn collect_addresses(value: &mail_parser::HeaderValue<'_>, into: &mut Vec<String>) {
    match value {
        mail_parser::HeaderValue::Address(address) => {
            for addr in address.iter() {
                if let Some(email) = addr.address() {
                    into.push(email.trim().to_lowercase());
                }
            }
        }
        mail_parser::HeaderValue::Text(text) => into.push(bare_address(text)),
        _ => {}
    }
}

/// `<A@B>` or `rfc822; A@B` or `A@B`: the address, lowercased.
fn bare_address(value: &str) -> String {
    let value = value.split_once(';').map_or(value, |(kind, rest)| {
        if kind.trim().eq_ignore_ascii_case("rfc822") || kind.trim().eq_ignore_ascii_case("utf-8") {
            rest
        } else {
            value
        }
    });
    value
        .trim()
        .trim_start_matches('<')
        .trim_end_matches('>')
        .trim()
        .to_lowercase()
}

/// The text of the first `message/<subtype>` part with one of `subtypes`.
fn part_text(message: &Message<'_>, subtypes: &[&str]) -> Option<String> {
    message.parts.iter().find_map(|part| {
        let ct = part.content_type()?;
        let matches = ct.ctype().eq_ignore_ascii_case("message")
            && ct
                .subtype()
                .is_some_and(|s| subtypes.iter().any(|t| s.eq_ignore_ascii_case(t)));
        if !matches {
            return None;
        }
        match &part.body {
            PartType::Text(text) => Some(text.to_string()),
            PartType::Binary(bytes) | PartType::InlineBinary(bytes) => {
                Some(String::from_utf8_lossy(bytes).into_owned())
            }
            _ => None,
        }
    })
}

/// The Message-ID of the returned message: a `message/rfc822` part or `text/rfc822-headers`.
fn returned_message_id(message: &Message<'_>) -> Option<String> {
    for part in &message.parts {
        let Some(ct) = part.content_type() else { continue };
        let sub = ct.subtype().unwrap_or_default();
        let headers_only = ct.ctype().eq_ignore_ascii_case("text") && sub.eq_ignore_ascii_case("rfc822-headers");
        let id = match &part.body {
            PartType::Message(inner) => inner.message_id().map(str::to_owned),
            PartType::Text(text) if headers_only => {
                let parsed = MessageParser::default().parse_headers(text.as_bytes());
                parsed.and_then(|m| m.message_id().map(str::to_owned))
            }
            _ => None,
        };
        if let Some(id) = id {
            return Some(id.trim().trim_start_matches('<').trim_end_matches('>').to_owned());
        }
    }
    None
}

/// The field groups of a `message/delivery-status` or `message/feedback-report` body: blank
/// lines separate groups, folded lines are unfolded, names are lowercased.
fn field_groups(text: &str) -> Vec<Vec<(String, String)>> {
    let mut groups = vec![Vec::<(String, String)>::new()];
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !groups.last().is_some_and(Vec::is_empty) {
                groups.push(Vec::new());
            }
            continue;
        }
        let group = groups.last_mut().expect("never empty");
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = group.last_mut() {
                value.push(' ');
                value.push_str(line.trim());
            }
        } else if let Some((name, value)) = line.split_once(':') {
            group.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
        }
    }
    groups.retain(|g| !g.is_empty());
    groups
}

fn field<'a>(group: &'a [(String, String)], name: &str) -> Option<&'a str> {
    group.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

/// Per-recipient groups of a delivery status notification (the first group is about the
/// message; recipients' groups have Final-Recipient). Only `Action: failed` is news:
/// `delayed` is a warning while the server keeps trying, `delivered`/`relayed`/`expanded`
/// are successes.
fn delivery_status(text: &str) -> Vec<Finding> {
    field_groups(text)
        .iter()
        .filter(|g| field(g, "final-recipient").is_some() || field(g, "original-recipient").is_some())
        .filter(|g| field(g, "action").is_some_and(|a| a.eq_ignore_ascii_case("failed")))
        .map(|g| {
            let recipient = field(g, "final-recipient")
                .or_else(|| field(g, "original-recipient"))
                .map(bare_address);
            let status = field(g, "status")
                .unwrap_or("")
                .split_whitespace()
                .next()
                .unwrap_or("")
                .to_owned();
            let said = field(g, "diagnostic-code")
                .or_else(|| field(g, "x-exim-diagnostic"))
                .unwrap_or("");
            Finding {
                recipient,
                severity: severity(&status, said),
                diagnostic: format!("{status} {said}").trim().chars().take(1000).collect(),
            }
        })
        .collect()
}

/// Hard when the address is at fault, by the same rule as a refusal during the send (RFC 3463
/// 5.1.x, 5.2.1, or a bare 550/551/553): a status of its own when the report has one that says
/// more than 5.0.0, the remote server's reply otherwise. Any other failure is soft.
fn severity(status: &str, diagnostic: &str) -> Severity {
    if !status.starts_with('5') {
        return Severity::Soft;
    }
    let bad_mailbox = if status != "5.0.0" && !status.is_empty() {
        status.starts_with("5.1.") || status == "5.2.1"
    } else {
        // "smtp; 550 5.1.1 <x>: Recipient address rejected" -> the reply after the type.
        // A multi-line reply's first line is "550-5.1.1 ...".
        let reply = diagnostic.split_once(';').map_or(diagnostic, |(_, r)| r).trim();
        let (code, text) = match reply.get(3..4) {
            Some("-") | Some(" ") => (&reply[..3], reply[4..].trim()),
            _ => (reply, ""),
        };
        match code.parse::<u16>() {
            Ok(code) => matches!(
                SendError::from_reply(code, text),
                SendError::Permanent { bad_mailbox: true, .. }
            ),
            Err(_) => false,
        }
    };
    if bad_mailbox { Severity::Hard } else { Severity::Soft }
}

/// An abuse report: one complaint, about the recipient named in `Original-Rcpt-To` or, when a
/// feedback loop leaves it out, the returned message's `To`. Reports of other kinds
/// (`not-spam`, `auth-failure`, `virus`) are not complaints.
fn feedback_report(text: &str, message: &Message<'_>) -> Vec<Finding> {
    let fields: Vec<(String, String)> = field_groups(text).into_iter().flatten().collect();
    let kind = field(&fields, "feedback-type").unwrap_or("abuse").to_ascii_lowercase();
    if !matches!(kind.as_str(), "abuse" | "fraud" | "other") {
        return Vec::new();
    }
    let recipient = field(&fields, "original-rcpt-to").map(bare_address).or_else(|| {
        message.parts.iter().find_map(|part| match &part.body {
            PartType::Message(inner) => inner
                .to()
                .and_then(|to| to.first())
                .and_then(|a| a.address())
                .map(str::to_lowercase),
            _ => None,
        })
    });
    let agent = field(&fields, "user-agent").unwrap_or("a feedback loop");
    vec![Finding {
        recipient: recipient.filter(|r| r.contains('@')),
        severity: Severity::Complaint,
        diagnostic: format!("Feedback-Type: {kind} ({agent})").chars().take(1000).collect(),
    }]
}

/// A bounce written as plain text, with no delivery-status part (Exim before 4.83, and
/// Exim with its DSN part turned off): the addresses listed after "The following
/// address(es) failed:", each with the remote server's words indented below it, and the
/// returned message's headers after "------ This is a copy of the message".
fn exim_text(message: &Message<'_>) -> Option<(Vec<Finding>, Option<String>)> {
    let body = message.body_text(0)?;
    let start = body.find("address(es) failed:")?;
    let permanent = body[..start].contains("permanent error");
    let mut findings: Vec<Finding> = Vec::new();
    for line in body[start..].lines().skip(1) {
        if line.starts_with("------") {
            break;
        }
        if line.trim().is_empty() {
            continue;
        }
        let indent = line.len() - line.trim_start().len();
        if indent <= 2 && line.contains('@') {
            findings.push(Finding {
                recipient: Some(bare_address(line.trim())),
                severity: if permanent { Severity::Hard } else { Severity::Soft },
                diagnostic: String::new(),
            });
        } else if let Some(last) = findings.last_mut() {
            if !last.diagnostic.is_empty() {
                last.diagnostic.push(' ');
            }
            last.diagnostic.push_str(line.trim());
        }
    }
    for finding in &mut findings {
        // "550 5.2.2 mailbox full": the server's own words decide, as in a DSN.
        if let Some(reply) = finding.diagnostic.split(':').next_back() {
            let reply = reply.trim();
            if permanent && reply.starts_with('5') {
                let status = reply
                    .split_whitespace()
                    .nth(1)
                    .filter(|s| s.starts_with("5."))
                    .unwrap_or("5.0.0");
                finding.severity = severity(status, &format!("smtp; {reply}"));
            }
        }
        finding.diagnostic = finding.diagnostic.chars().take(1000).collect();
    }
    let original = body[start..]
        .split_once("------ This is a copy of the message")
        .and_then(|(_, copy)| {
            let headers = copy.split_once('\n').map_or("", |(_, rest)| rest).trim_start();
            let parsed = MessageParser::default().parse_headers(headers.as_bytes())?;
            parsed
                .message_id()
                .map(|id| id.trim_start_matches('<').trim_end_matches('>').to_owned())
        });
    Some((findings, original))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Vec<u8> {
        let path = format!("{}/tests/fixtures/reports/{name}", env!("CARGO_MANIFEST_DIR"));
        std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
    }

    fn who_and_how(report: &Report) -> Vec<(Option<&str>, Severity)> {
        report
            .findings
            .iter()
            .map(|f| (f.recipient.as_deref(), f.severity))
            .collect()
    }

    #[test]
    fn a_postfix_bounce_for_an_unknown_user_is_hard() {
        let report = read(&fixture("postfix-unknown-user.eml")).unwrap();
        assert_eq!(report.findings.len(), 1);
        let finding = &report.findings[0];
        assert_eq!(finding.recipient.as_deref(), Some("gone@example.net"));
        assert_eq!(finding.severity, Severity::Hard);
        assert!(
            finding
                .diagnostic
                .starts_with("5.1.1 smtp; 550 5.1.1 <gone@example.net>: Recipient address rejected")
        );
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("edition.7.42@news.example.org")
        );
        assert!(
            report.sent_to.iter().any(|a| a.starts_with("bounces+")),
            "{:?}",
            report.sent_to
        );
        assert_eq!(report.id, "<20261120101500.8F2A1C0B9D@mail.example.org>");
    }

    #[test]
    fn a_postfix_bounce_for_a_full_mailbox_and_a_policy_refusal_is_soft() {
        let report = read(&fixture("postfix-two-recipients.eml")).unwrap();
        assert_eq!(
            who_and_how(&report),
            [
                (Some("full@example.net"), Severity::Soft),
                (Some("blocked@example.com"), Severity::Soft)
            ]
        );
    }

    #[test]
    fn a_postfix_delay_warning_reports_nothing() {
        let report = read(&fixture("postfix-delayed.eml")).unwrap();
        assert!(report.findings.is_empty(), "{:?}", report.findings);
    }

    #[test]
    fn an_exim_bounce_with_a_generic_status_is_read_from_the_server_reply() {
        let report = read(&fixture("exim-dsn.eml")).unwrap();
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].recipient.as_deref(), Some("nobody@example.net"));
        assert_eq!(report.findings[0].severity, Severity::Hard);
        assert!(
            report.findings[0].diagnostic.contains("User unknown"),
            "{:?}",
            report.findings[0]
        );
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("edition.3.9@news.example.org")
        );
    }

    #[test]
    fn an_exim_text_bounce_lists_each_failed_address() {
        let report = read(&fixture("exim-text.eml")).unwrap();
        assert_eq!(
            who_and_how(&report),
            [
                (Some("old@example.net"), Severity::Hard),
                (Some("full@example.net"), Severity::Soft)
            ]
        );
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("edition.5.11@news.example.org")
        );
    }

    #[test]
    fn an_abuse_report_is_a_complaint_about_the_original_recipient() {
        let report = read(&fixture("arf-abuse.eml")).unwrap();
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].recipient.as_deref(), Some("reader@example.com"));
        assert_eq!(report.findings[0].severity, Severity::Complaint);
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("edition.2.5@news.example.org")
        );
    }

    #[test]
    fn a_redacted_abuse_report_still_names_the_message() {
        let report = read(&fixture("arf-redacted.eml")).unwrap();
        assert_eq!(report.findings.len(), 1);
        assert_eq!(report.findings[0].recipient, None);
        assert_eq!(
            report.original_message_id.as_deref(),
            Some("edition.2.6@news.example.org")
        );
    }

    #[test]
    fn a_report_naming_thousands_of_recipients_is_read_for_the_first_hundred() {
        let groups: String = (0..5000)
            .map(|i| format!("Final-Recipient: rfc822; r{i}@example.net\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"))
            .collect();
        let raw = format!(
            "From: MAILER-DAEMON@example.net\r\nSubject: Undelivered\r\nMIME-Version: 1.0\r\n\
             Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\r\n\
             --b\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; example.net\r\n\r\n{groups}--b--\r\n"
        );
        let report = read(raw.as_bytes()).unwrap();
        assert_eq!(report.findings.len(), MAX_FINDINGS);
        assert_eq!(report.findings[0].recipient.as_deref(), Some("r0@example.net"));
    }

    #[test]
    fn ordinary_mail_is_not_a_report() {
        let err = read(b"From: a@example.org\r\nSubject: Hello\r\n\r\nJust a reply.\r\n").unwrap_err();
        assert_eq!(
            err,
            ReportError::NotAReport {
                subject: "Hello".into()
            }
        );
        assert_eq!(read(b"").unwrap_err(), ReportError::NotAMessage);
    }

    #[test]
    fn a_report_without_a_message_id_is_known_by_its_bytes() {
        let raw = String::from_utf8(fixture("postfix-delayed.eml")).unwrap();
        let without = raw.replace("Message-Id: <20261121060000.1A2B3C4D5E@mail.example.org>\n", "");
        assert_ne!(raw, without);
        let (a, b) = (read(without.as_bytes()).unwrap(), read(without.as_bytes()).unwrap());
        assert!(a.id.starts_with("sha256:"));
        assert_eq!(a.id, b.id);
    }

    #[test]
    fn severities_follow_the_send_time_rule() {
        assert_eq!(severity("5.1.1", ""), Severity::Hard);
        assert_eq!(severity("5.2.1", ""), Severity::Hard);
        assert_eq!(severity("5.2.2", "smtp; 552 5.2.2 over quota"), Severity::Soft);
        assert_eq!(severity("5.7.1", "smtp; 550 5.7.1 spam"), Severity::Soft);
        assert_eq!(severity("5.0.0", "smtp; 550 5.1.1 no such user"), Severity::Hard);
        assert_eq!(severity("5.0.0", "smtp; 554 5.7.1 refused"), Severity::Soft);
        assert_eq!(severity("5.0.0", "smtp; 550-5.1.1 first line"), Severity::Hard);
        assert_eq!(severity("4.4.1", "X-Postfix; connect timed out"), Severity::Soft);
        assert_eq!(severity("5.0.0", "X-Postfix; mail loops back"), Severity::Soft);
    }
}
