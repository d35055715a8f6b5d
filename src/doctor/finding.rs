//! What a check ends in: a [`Finding`] with its [`Level`], and the [`Report`] of them all.

use serde::Serialize;

/// How much a finding matters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Ok,
    /// Mail goes out, but some of it may land in spam, or a later change will be needed.
    Warning,
    /// Mail will be rejected, land in spam, or break for readers: fix before sending.
    Problem,
}

impl Level {
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Ok => "ok",
            Level::Warning => "warning",
            Level::Problem => "problem",
        }
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What was checked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Check {
    Dkim,
    Spf,
    Dmarc,
    DigestSize,
    OneClick,
    BaseUrl,
}

impl Check {
    /// The check's name in tables and pages.
    pub fn label(self) -> &'static str {
        match self {
            Check::Dkim => "DKIM",
            Check::Spf => "SPF",
            Check::Dmarc => "DMARC",
            Check::DigestSize => "digest size",
            Check::OneClick => "one-click unsubscribe",
            Check::BaseUrl => "base URL",
        }
    }
}

/// One check's outcome: what was found and, unless all is well, what to change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub check: Check,
    pub level: Level,
    /// What was found, in a sentence.
    pub summary: String,
    /// What to change, concretely (the record to publish, the key to set); `None` when ok.
    pub fix: Option<String>,
}

impl Finding {
    pub fn ok(check: Check, summary: impl Into<String>) -> Self {
        Self {
            check,
            level: Level::Ok,
            summary: summary.into(),
            fix: None,
        }
    }

    pub fn warning(check: Check, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            level: Level::Warning,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }

    pub fn problem(check: Check, summary: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            check,
            level: Level::Problem,
            summary: summary.into(),
            fix: Some(fix.into()),
        }
    }
}

/// Every finding, in a fixed order: DKIM, SPF, DMARC, digest size, one-click, base URL.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// No finding is a problem.
    pub ok: bool,
    pub findings: Vec<Finding>,
}

impl Report {
    pub fn new(findings: Vec<Finding>) -> Self {
        Self {
            ok: findings.iter().all(|f| f.level < Level::Problem),
            findings,
        }
    }

    /// The finding of `check`.
    pub fn get(&self, check: Check) -> Option<&Finding> {
        self.findings.iter().find(|f| f.check == check)
    }
}
