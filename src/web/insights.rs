//! The console's insight page, its SVG charts and the same figures as JSON
//! (`GET /admin/api/insights`). Uses `insight` for the figures and the drawing.

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Json, Response};
use chrono::Utc;
use serde::Deserialize;

use super::console::{Admin, page, with_message};
use super::extract::{Path, Query};
use super::{AppState, Result, WebError};
use crate::insight::{self, Report, charts};

#[derive(Debug, Default, Deserialize)]
pub struct InsightQuery {
    /// How many days up to today the report covers.
    days: Option<u32>,
}

async fn report(app: &AppState, query: &InsightQuery) -> Result<Report> {
    let days = insight::check_days(query.days.unwrap_or(insight::DEFAULT_DAYS))
        .map_err(|e| WebError::Validation(e.to_string()))?;
    Ok(insight::report(&app.db, &app.settings.tracking, Utc::now(), days).await?)
}

/// `GET /admin/api/insights?days=90`
pub async fn api(State(app): State<AppState>, Query(query): Query<InsightQuery>) -> Result<Response> {
    Ok(Json(report(&app, &query).await?).into_response())
}

/// `GET /admin/insights?days=90`: the charts, each with its figures in a table beneath.
pub async fn insights(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Query(query): Query<InsightQuery>,
) -> Result<Response> {
    let report = report(&app, &query).await?;
    let mut ctx = with_message(None, None);
    ctx.insert("report", &report);
    ctx.insert("charts", charts::NAMES);
    ctx.insert("ranges", &[30, 90, 365]);
    page(&app, "web/admin/insights.html", "insights", &admin, ctx)
}

/// `GET /admin/insights/{name}.svg?days=90`
pub async fn chart(
    State(app): State<AppState>,
    Path(file): Path<String>,
    Query(query): Query<InsightQuery>,
) -> Result<Response> {
    let name = file.strip_suffix(".svg").ok_or(WebError::NotFound)?;
    if !charts::NAMES.contains(&name) {
        return Err(WebError::NotFound);
    }
    let report = report(&app, &query).await?;
    let svg = charts::draw(&report, name).ok_or(WebError::NotFound)??;
    Ok((
        StatusCode::OK,
        [
            (header::CONTENT_TYPE, "image/svg+xml; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        svg,
    )
        .into_response())
}
