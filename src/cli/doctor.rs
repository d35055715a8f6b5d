//! `herald doctor`: the preflight checks, as a table or JSON; a failing exit status when one
//! found a problem.

use std::process::ExitCode;

use super::args::DoctorFormat;
use crate::doctor::{self, Level, Report};
use crate::startup::Parts;

pub async fn doctor(parts: &Parts, format: DoctorFormat) -> anyhow::Result<ExitCode> {
    let (db, digests) = (parts.db().await?, parts.digests().await?);
    let report = doctor::examine(&parts.settings, &db, &digests).await;
    match format {
        DoctorFormat::Json => println!("{}", serde_json::to_string_pretty(&report)?),
        DoctorFormat::Table => print!("{}", table(&report)),
    }
    Ok(if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The findings in a table, then what to change for each that is not ok.
fn table(report: &Report) -> String {
    let mut table = super::output::table(["check", "level", "finding"]);
    for f in &report.findings {
        table.add_row([f.check.label(), f.level.as_str(), f.summary.as_str()]);
    }
    let mut out = format!("{}\n", table.trim_fmt());
    let fixes: Vec<_> = report
        .findings
        .iter()
        .filter_map(|f| Some((f, f.fix.as_ref()?)))
        .collect();
    if !fixes.is_empty() {
        out.push_str("\nWhat to change:\n");
        for (f, fix) in fixes {
            out.push_str(&format!("- {} ({}): {fix}\n", f.check.label(), f.level));
        }
    }
    let problems = report.findings.iter().filter(|f| f.level == Level::Problem).count();
    let warnings = report.findings.iter().filter(|f| f.level == Level::Warning).count();
    out.push_str(&match (problems, warnings) {
        (0, 0) => "\nAll clear.\n".to_owned(),
        (0, w) => format!("\nNo problems, {w} warning(s).\n"),
        (p, w) => format!("\n{p} problem(s) to fix before sending, {w} warning(s).\n"),
    });
    out
}
