//! The console's subscriber list: numbered pages sorted by a chosen column with totals, a
//! page per subscriber to change their choices, and actions on the ticked rows (remove,
//! change frequency, send the confirmation link again), each confirmed on a page of its own
//! before it acts; adding, removing one, CSV import and export. Every change goes through
//! `Subscriptions`.

use axum::body::Bytes;
use axum::extract::{Multipart, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum_extra::extract::cookie::CookieJar;
use serde::{Deserialize, Serialize};

use super::console::{Admin, Flash, page, redirect_with_flash, take_flash, with_message};
use super::extract::{Form, Path, Query};
use super::{AppState, Result, WebError};
use crate::bounces::BounceError;
use crate::domain::{
    Actor, BounceSource, EmailAddress, Frequency, SubscriberSource, SubscriberStatus, UnknownValue, parse_name,
    parse_topics,
};
use crate::store::{
    self,
    subscribers::{ListFilter, SortBy, SubscriberPatch},
};
use crate::subscribers::csv::{self, ImportOptions};
use crate::subscribers::{Added, Resent, SubscribeRequest};

/// Rows on a page unless the address asks for another number (`per`, up to [`MAX_PER_PAGE`]).
const PER_PAGE: u32 = 50;
const MAX_PER_PAGE: u32 = 500;

/// The list's address: search, status, sort and page.
#[derive(Deserialize, Default, Clone)]
#[serde(default)]
pub struct SubscriberQuery {
    pub q: String,
    pub status: String,
    /// `email`, `created` or `status`; anything else is id order.
    pub sort: String,
    /// `desc` for the reverse order.
    pub dir: String,
    pub page: Option<u32>,
    pub per: Option<u32>,
}

impl SubscriberQuery {
    fn sort(&self) -> SortBy {
        SortBy::parse(&self.sort).unwrap_or_default()
    }

    fn descending(&self) -> bool {
        self.dir == "desc"
    }

    fn per(&self) -> u32 {
        self.per.unwrap_or(PER_PAGE).clamp(1, MAX_PER_PAGE)
    }

    fn page(&self) -> u32 {
        self.page.unwrap_or(1).max(1)
    }

    /// The list's address with this query, at `page`, sorted by `sort` (`desc` or not).
    fn url(&self, app: &AppState, page: u32, sort: SortBy, descending: bool) -> String {
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        if !self.q.is_empty() {
            query.append_pair("q", &self.q);
        }
        if !self.status.is_empty() {
            query.append_pair("status", &self.status);
        }
        if sort != SortBy::Id {
            query.append_pair("sort", sort.as_str());
        }
        if descending {
            query.append_pair("dir", "desc");
        }
        if self.per.is_some() {
            query.append_pair("per", &self.per().to_string());
        }
        if page > 1 {
            query.append_pair("page", &page.to_string());
        }
        let query = query.finish();
        let base = app.settings.url_for("admin/subscribers");
        if query.is_empty() {
            base
        } else {
            format!("{base}?{query}")
        }
    }
}

#[derive(Serialize)]
struct StatusCount {
    status: &'static str,
    count: i64,
}

#[derive(Serialize)]
struct SortLink {
    key: &'static str,
    label: &'static str,
    url: String,
    /// `asc` or `desc` when the list is sorted by this column now.
    current: Option<&'static str>,
}

/// The topics an admin can choose from: those of every post Herald has (drafts and
/// scheduled posts too), and any topic `extra` already has.
async fn known_topics(app: &AppState, extra: &[String]) -> anyhow::Result<Vec<String>> {
    let mut topics = app.subscriptions.known_topics().await?;
    topics.extend(extra.iter().cloned());
    Ok(topics.into_iter().collect())
}

/// The list page for `query`, with `ctx` (messages, an import report) added.
pub async fn list_page(
    app: &AppState,
    admin: &Admin,
    query: &SubscriberQuery,
    mut ctx: tera::Context,
) -> Result<Response> {
    let (sort, descending, per) = (query.sort(), query.descending(), query.per());
    let mut filter = ListFilter {
        status: query.status.parse().ok(),
        search: Some(query.q.clone()).filter(|q| !q.trim().is_empty()),
        limit: per,
        sort,
        descending,
        ..Default::default()
    };
    let counts = store::subscribers::count_matching(&app.db, &filter).await?;
    let all: i64 = counts.iter().map(|(_, n)| n).sum();
    let total = match filter.status {
        Some(status) => counts.iter().filter(|(s, _)| *s == status).map(|(_, n)| n).sum(),
        None => all,
    };
    let pages = u32::try_from(((total.max(0) as u64).div_ceil(u64::from(per))).max(1)).unwrap_or(u32::MAX);
    let page_number = query.page().min(pages);
    filter.offset = (page_number - 1).saturating_mul(per);
    let list = store::subscribers::list(&app.db, &filter).await?;
    let statuses: Vec<StatusCount> = SubscriberStatus::ALL
        .iter()
        .map(|s| StatusCount {
            status: s.as_str(),
            count: counts.iter().filter(|(c, _)| c == s).map(|(_, n)| n).sum(),
        })
        .collect();
    let columns = [
        (SortBy::Email, "Address"),
        (SortBy::Status, "Status"),
        (SortBy::Created, "Created"),
    ];
    let sort_links: Vec<SortLink> = columns
        .iter()
        .map(|(key, label)| {
            let here = *key == sort;
            SortLink {
                key: key.as_str(),
                label,
                // A second click on the column reverses it; a new column starts ascending.
                url: query.url(app, 1, *key, here && !descending),
                current: here.then_some(if descending { "desc" } else { "asc" }),
            }
        })
        .collect();
    ctx.insert("subscribers", &list);
    ctx.insert("total", &total);
    ctx.insert("all", &all);
    ctx.insert("statuses", &statuses);
    ctx.insert("page", &page_number);
    ctx.insert("pages", &pages);
    ctx.insert("first_row", &(if list.is_empty() { 0 } else { filter.offset + 1 }));
    ctx.insert("last_row", &(filter.offset as usize + list.len()));
    ctx.insert(
        "prev_url",
        &(page_number > 1).then(|| query.url(app, page_number - 1, sort, descending)),
    );
    ctx.insert(
        "next_url",
        &(page_number < pages).then(|| query.url(app, page_number + 1, sort, descending)),
    );
    ctx.insert("sort_links", &sort_links);
    ctx.insert("q", &query.q);
    ctx.insert("sort", &(sort != SortBy::Id).then_some(sort.as_str()));
    ctx.insert("descending", &descending);
    ctx.insert("status", &query.status);
    ctx.insert(
        "all_statuses",
        &SubscriberStatus::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>(),
    );
    ctx.insert("topics", &known_topics(app, &[]).await?);
    ctx.insert("back", &query.url(app, page_number, sort, descending));
    if !ctx.contains_key("report") {
        ctx.insert("report", &None::<()>);
    }
    page(app, "web/admin/subscribers.html", "subscribers", admin, ctx)
}

pub async fn list(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Query(query): Query<SubscriberQuery>,
    jar: CookieJar,
) -> Result<Response> {
    let (ctx, jar) = take_flash(&app, jar);
    let page = list_page(&app, &admin, &query, ctx).await?;
    Ok((jar, page).into_response())
}

#[derive(Deserialize)]
pub struct AddForm {
    email: String,
    #[serde(default)]
    name: String,
    frequency: String,
    confirmed: Option<String>,
    /// One value per ticked topic; none means every post.
    #[serde(default)]
    topics: Vec<String>,
}

pub async fn add(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Form(form): Form<AddForm>,
) -> Result<Response> {
    let query = SubscriberQuery::default();
    let parsed = (|| -> std::result::Result<SubscribeRequest, String> {
        Ok(SubscribeRequest {
            email: EmailAddress::parse(&form.email).map_err(|e| e.to_string())?,
            name: parse_name(&form.name).map_err(|e| e.to_string())?,
            frequency: form.frequency.parse().map_err(|e: UnknownValue| e.to_string())?,
            topics: parse_topics(form.topics.iter().map(String::as_str)).map_err(|e| format!("Topics: {e}."))?,
            source: SubscriberSource::Console,
        })
    })();
    let parsed = match parsed {
        Ok(request) => match app.subscriptions.check_topics(&request.topics).await? {
            Ok(()) => Ok(request),
            Err(e) => Err(format!("Topics: {e}.")),
        },
        Err(e) => Err(e),
    };
    let request = match parsed {
        Ok(n) => n,
        Err(e) => return list_page(&app, &admin, &query, with_message(None, Some(&e))).await,
    };
    let status = if form.confirmed.is_some() {
        SubscriberStatus::Confirmed
    } else {
        SubscriberStatus::Pending
    };
    let message = match app
        .subscriptions
        .add(request, status, &Actor::console(&admin.0))
        .await?
    {
        Added::Exists(subscriber) => format!("{} is already on the list ({}).", subscriber.email, subscriber.status),
        Added::New(subscriber) if subscriber.status == SubscriberStatus::Pending => {
            format!("{} added; a confirmation mail is on its way.", subscriber.email)
        }
        Added::New(subscriber) => format!("{} added as {}.", subscriber.email, subscriber.status),
        Added::Refused(status) => format!("Nobody is added as {status}."),
        Added::Erased(at) => format!(
            "{} was erased at their request on {}; not added. Only they can subscribe again, on the form.",
            form.email.trim(),
            at.format("%Y-%m-%d")
        ),
    };
    list_page(&app, &admin, &query, with_message(Some(&message), None)).await
}

// ---- one subscriber ----

pub async fn detail(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(id): Path<i64>,
    jar: CookieJar,
) -> Result<Response> {
    let subscriber = store::subscribers::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    let (mut ctx, jar) = take_flash(&app, jar);
    ctx.insert("topics", &known_topics(&app, &subscriber.topics).await?);
    ctx.insert(
        "frequencies",
        &Frequency::ALL.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
    );
    ctx.insert("bounce_events", &app.bounces.events(id, BOUNCE_EVENTS_SHOWN).await?);
    let record = app.subscriptions.record_of(subscriber.clone()).await?;
    ctx.insert("consent", &record.consent);
    ctx.insert("history", &record.events);
    ctx.insert("subscriber", &subscriber);
    let page = page(&app, "web/admin/subscriber.html", "subscribers", &admin, ctx)?;
    Ok((jar, page).into_response())
}

/// The detail page's form: their choices (their status is theirs to change, by the links
/// they are mailed).
#[derive(Deserialize)]
pub struct EditForm {
    #[serde(default)]
    name: String,
    frequency: String,
    #[serde(default)]
    topics: Vec<String>,
}

/// Saves the choices, then back to the page, which says how it went.
pub async fn edit(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(id): Path<i64>,
    jar: CookieJar,
    Form(form): Form<EditForm>,
) -> Result<Response> {
    let back = format!("admin/subscribers/{id}");
    let current = store::subscribers::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
    let known = known_topics(&app, &current.topics).await?;
    let patch = (|| -> std::result::Result<SubscriberPatch, String> {
        let topics = parse_topics(form.topics.iter().map(String::as_str)).map_err(|e| format!("Topics: {e}."))?;
        crate::domain::check_topics(&topics, &known.iter().cloned().collect()).map_err(|e| format!("Topics: {e}."))?;
        Ok(SubscriberPatch {
            name: Some(parse_name(&form.name).map_err(|e| format!("Name: {e}"))?),
            frequency: Some(form.frequency.parse().map_err(|e: UnknownValue| e.to_string())?),
            topics: Some(topics),
        })
    })();
    let flash = match patch {
        Err(e) => Flash::Error(format!("Nothing was saved: {e}")),
        Ok(patch) => match app
            .subscriptions
            .update_preferences(id, &patch, &Actor::console(&admin.0))
            .await?
        {
            Some(s) => Flash::Notice(format!("Saved the choices of {}.", s.email)),
            None => return Err(WebError::NotFound),
        },
    };
    Ok(redirect_with_flash(&app, jar, &flash, &back))
}

/// The newest bounce events a subscriber's page shows.
const BOUNCE_EVENTS_SHOWN: u32 = 100;

/// The detail page's reactivation form.
#[derive(Deserialize)]
pub struct ReactivateForm {
    #[serde(default)]
    reason: String,
}

/// Puts a bounced or complained subscriber back on the list with the admin's reason (kept
/// with their bounce events), then back to their page.
pub async fn reactivate(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(id): Path<i64>,
    jar: CookieJar,
    Form(form): Form<ReactivateForm>,
) -> Result<Response> {
    let back = format!("admin/subscribers/{id}");
    let flash = match app
        .bounces
        .reactivate(id, &form.reason, BounceSource::Console, Some(&admin.0))
        .await
    {
        Ok(s) => Flash::Notice(format!("{} is {} again.", s.email, s.status)),
        Err(BounceError::NoSuchSubscriber(_)) => return Err(WebError::NotFound),
        Err(BounceError::Store(e)) => return Err(WebError::Internal(e)),
        Err(e) => Flash::Error(format!("Not reactivated: {e}.")),
    };
    Ok(redirect_with_flash(&app, jar, &flash, &back))
}

// ---- actions on ticked rows ----

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    Remove,
    Frequency(Frequency),
    Resend,
}

/// The bulk form: the ticked rows and what to do; without `confirm`, the confirmation page.
#[derive(Deserialize)]
pub struct BulkForm {
    #[serde(default)]
    action: String,
    /// One value per ticked row.
    #[serde(default)]
    id: Vec<i64>,
    #[serde(default)]
    frequency: String,
    #[serde(default)]
    confirm: Option<String>,
    /// The list's address to return to.
    #[serde(default)]
    back: String,
}

impl BulkForm {
    fn action(&self) -> std::result::Result<Action, String> {
        match self.action.as_str() {
            "remove" => Ok(Action::Remove),
            "resend" => Ok(Action::Resend),
            "frequency" => self
                .frequency
                .parse()
                .map(Action::Frequency)
                .map_err(|e: UnknownValue| format!("Choose a frequency: {e}")),
            "" => Err("Choose an action for the ticked subscribers.".to_owned()),
            other => Err(format!("There is no action \"{other}\".")),
        }
    }
}

fn people(n: usize) -> String {
    if n == 1 {
        "1 person".to_owned()
    } else {
        format!("{n} people")
    }
}

/// Asks first (how many people, who, what), then acts on exactly the ticked rows and
/// redirects to the list with what it did.
pub async fn bulk(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    jar: CookieJar,
    Form(form): Form<BulkForm>,
) -> Result<Response> {
    // Only back to the list itself, never to another address.
    let list = app.settings.url_for("admin/subscribers");
    let back = if form.back.starts_with(&list) {
        form.back.clone()
    } else {
        list
    };
    let back_path = back
        .strip_prefix(app.settings.site.base_url.as_str())
        .unwrap_or("admin/subscribers")
        .to_owned();
    let action = match form.action() {
        Ok(a) => a,
        Err(e) => return Ok(redirect_with_flash(&app, jar, &Flash::Error(e), &back_path)),
    };
    let mut ids = form.id.clone();
    ids.sort_unstable();
    ids.dedup();
    let chosen = store::subscribers::find_many(&app.db, &ids).await?;
    if chosen.is_empty() {
        let flash = Flash::Error("Tick at least one subscriber first.".to_owned());
        return Ok(redirect_with_flash(&app, jar, &flash, &back_path));
    }
    if form.confirm.as_deref() != Some("yes") {
        let pending = chosen.iter().filter(|s| s.status == SubscriberStatus::Pending).count();
        let (heading, what, button) = match action {
            Action::Remove => (
                format!("Remove {}?", people(chosen.len())),
                format!(
                    "This erases {} and everything stored about them: their rows, history, links and any mail queued for them. Only a keyed hash of each address is kept, so that no import adds them again by mistake. It cannot be undone.",
                    people(chosen.len())
                ),
                format!("Remove {}", people(chosen.len())),
            ),
            Action::Frequency(f) => (
                format!("Change {} to {f}?", people(chosen.len())),
                format!("{} will get mail {}.", people(chosen.len()), f.sentence()),
                format!("Change {}", people(chosen.len())),
            ),
            Action::Resend => (
                format!("Send the confirmation link again to {}?", people(pending)),
                format!(
                    "{} of the {} ticked {} pending and will get a new confirmation link (unless one went out in the last {} minutes); the others are left alone.",
                    pending,
                    chosen.len(),
                    if pending == 1 { "is" } else { "are" },
                    app.settings.subscribers.confirm_resend_minutes
                ),
                format!("Send to {}", people(pending)),
            ),
        };
        let mut ctx = with_message(None, None);
        ctx.insert("heading", &heading);
        ctx.insert("what", &what);
        ctx.insert("button", &button);
        ctx.insert("danger", &(action == Action::Remove));
        ctx.insert(
            "affected",
            &(if action == Action::Resend {
                pending
            } else {
                chosen.len()
            }),
        );
        ctx.insert("chosen", &chosen);
        ctx.insert("action", &form.action);
        ctx.insert("frequency", &form.frequency);
        ctx.insert("back", &back);
        return page(&app, "web/admin/bulk.html", "subscribers", &admin, ctx);
    }
    let mut done = 0usize;
    let by = Actor::console(&admin.0);
    let message = match action {
        Action::Remove => {
            for s in &chosen {
                done += usize::from(app.subscriptions.erase(s.id, &by).await?);
            }
            format!("Removed {}, with everything stored about them.", people(done))
        }
        Action::Frequency(f) => {
            let patch = SubscriberPatch {
                frequency: Some(f),
                ..Default::default()
            };
            for s in &chosen {
                done += usize::from(app.subscriptions.update_preferences(s.id, &patch, &by).await?.is_some());
            }
            format!("{} now get mail {}.", people(done), f.sentence())
        }
        Action::Resend => {
            let (mut too_soon, mut skipped) = (0, 0);
            for s in &chosen {
                match app.subscriptions.resend_confirmation(s.id).await? {
                    Resent::Sent => done += 1,
                    Resent::TooSoon => too_soon += 1,
                    Resent::NotPending(_) | Resent::Gone => skipped += 1,
                }
            }
            let mut message = format!("A new confirmation link went to {}.", people(done));
            if too_soon > 0 {
                message.push_str(&format!(
                    " {} had one less than {} minutes ago and got nothing now.",
                    people(too_soon),
                    app.settings.subscribers.confirm_resend_minutes
                ));
            }
            if skipped > 0 {
                message.push_str(&format!(" {} not pending: left alone.", people(skipped)));
            }
            message
        }
    };
    Ok(redirect_with_flash(&app, jar, &Flash::Notice(message), &back_path))
}

// ---- one at a time, import and export ----

/// The Remove button's form: without `confirm`, the confirmation page.
#[derive(Deserialize, Default)]
pub struct RemoveForm {
    confirm: Option<String>,
}

/// Asks first (who, and that it cannot be undone); erases only once confirmed there.
pub async fn remove_subscriber(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    Path(id): Path<i64>,
    Form(form): Form<RemoveForm>,
) -> Result<Response> {
    if form.confirm.as_deref() != Some("yes") {
        let subscriber = store::subscribers::find(&app.db, id).await?.ok_or(WebError::NotFound)?;
        let mut ctx = tera::Context::new();
        ctx.insert("subscriber", &subscriber);
        return page(&app, "web/admin/remove.html", "subscribers", &admin, ctx);
    }
    let removed = app.subscriptions.erase(id, &Actor::console(&admin.0)).await?;
    let message = if removed {
        "Removed, with everything stored about them."
    } else {
        "Already gone."
    };
    list_page(
        &app,
        &admin,
        &SubscriberQuery::default(),
        with_message(Some(message), None),
    )
    .await
}

/// An import from the console: the file's name, and the admin who sent it.
fn import_actor(file_name: Option<String>, admin: &str) -> Actor {
    let file = file_name.unwrap_or_else(|| "a file".to_owned());
    Actor::import(Some(format!("{file} (console: {admin})")))
}

pub async fn import_subscribers(
    State(app): State<AppState>,
    axum::Extension(admin): axum::Extension<Admin>,
    mut multipart: Multipart,
) -> Result<Response> {
    let (mut file, mut file_name, mut options) = (None::<Bytes>, None::<String>, ImportOptions::default());
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| WebError::Validation(e.to_string()))?
    {
        match field.name() {
            Some("file") => {
                file_name = field.file_name().map(str::to_owned);
                file = Some(field.bytes().await.map_err(|e| WebError::Validation(e.to_string()))?);
            }
            Some("confirmed") => options.confirmed = true,
            Some("force") => options.force = true,
            _ => {}
        }
    }
    let query = SubscriberQuery::default();
    let Some(file) = file else {
        return list_page(&app, &admin, &query, with_message(None, Some("Choose a CSV file."))).await;
    };
    match app
        .subscriptions
        .import(
            std::io::Cursor::new(file),
            options,
            &import_actor(file_name, &admin.0),
            |_| {},
        )
        .await
    {
        Ok(report) => {
            let mut ctx = with_message(Some("Import finished."), None);
            ctx.insert("report", &report);
            list_page(&app, &admin, &query, ctx).await
        }
        Err(e) => list_page(&app, &admin, &query, with_message(None, Some(&format!("{e:#}")))).await,
    }
}

/// The list as CSV (`?status=` to filter), for the console and `GET /admin/api/subscribers/export`.
pub async fn export_subscribers(State(app): State<AppState>, Query(query): Query<SubscriberQuery>) -> Result<Response> {
    let mut out = Vec::new();
    csv::export_csv(&app.db, query.status.parse().ok(), &mut out).await?;
    Ok((
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"subscribers.csv\""),
        ],
        out,
    )
        .into_response())
}
