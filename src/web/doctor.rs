//! The console's preflight page (`/admin/doctor`): the checks of `herald doctor`, run when
//! the page is opened. Uses the `doctor` module.

use axum::extract::State;
use axum::response::Response;

use super::console::{Admin, page, with_message};
use super::{AppState, Result};
use crate::doctor;

pub async fn doctor(State(app): State<AppState>, axum::Extension(admin): axum::Extension<Admin>) -> Result<Response> {
    let report = doctor::examine(&app.settings, &app.db, &app.digests).await;
    let findings: Vec<serde_json::Value> = report
        .findings
        .iter()
        .map(|f| {
            serde_json::json!({"label": f.check.label(), "check": f.check, "level": f.level,
                "summary": f.summary, "fix": f.fix})
        })
        .collect();
    let mut ctx = with_message(None, None);
    ctx.insert("ok", &report.ok);
    ctx.insert("findings", &findings);
    page(&app, "web/admin/doctor.html", "doctor", &admin, ctx)
}
