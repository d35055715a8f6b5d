//! What the web handlers share: the services `startup` built, and the per-client limits.
//! Uses the services and what they are made of.

use std::sync::Arc;

use axum::extract::FromRef;

use super::Limits;
use crate::auth::Auth;
use crate::bounces::Bounces;
use crate::bounces::webhooks::Webhooks;
use crate::config::Settings;
use crate::digest::Digests;
use crate::mail::Mailer;
use crate::metrics::Metrics;
use crate::schedule::Jobs;
use crate::site::{DocumentCache, Site};
use crate::startup::App;
use crate::store::{Db, health::Readiness};
use crate::subscribers::Subscriptions;

/// What the handlers share; a handler that needs one part takes it as its own state.
#[derive(Clone, FromRef)]
pub struct AppState {
    pub settings: Arc<Settings>,
    pub db: Db,
    pub site: Arc<Site>,
    pub cache: Arc<DocumentCache>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
    pub mailer: Arc<dyn Mailer>,
    pub auth: Arc<Auth>,
    pub subscriptions: Arc<Subscriptions>,
    pub digests: Arc<Digests>,
    pub jobs: Arc<Jobs>,
    pub bounces: Bounces,
    pub webhooks: Webhooks,
    /// Per-client rate limits (subscribe form, logins), per instance.
    pub limits: Arc<Limits>,
}

impl AppState {
    pub fn new(app: &App) -> Self {
        Self {
            settings: app.settings.clone(),
            db: app.db.clone(),
            site: app.site.clone(),
            cache: app.cache.clone(),
            metrics: app.metrics.clone(),
            readiness: app.readiness.clone(),
            mailer: app.mailer.clone(),
            auth: app.auth.clone(),
            subscriptions: app.subscriptions.clone(),
            digests: app.digests.clone(),
            jobs: app.jobs.clone(),
            bounces: app.bounces.clone(),
            webhooks: app.webhooks.clone(),
            limits: Arc::new(Limits::new(&app.settings)),
        }
    }
}
