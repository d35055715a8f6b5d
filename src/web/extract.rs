//! Extractors whose rejections are [`WebError`]s: a malformed body, path or query is answered
//! like any other error of its route (JSON in the API, a page elsewhere), naming the problem
//! and with the status the extractor chose (400, 413, 415 or 422).

use axum::extract::{FromRequest, FromRequestParts, OptionalFromRequest, Request};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde::de::DeserializeOwned;

use super::WebError;

/// A JSON request body, and a JSON answer.
#[derive(Debug, FromRequest)]
#[from_request(via(axum::Json), rejection(WebError))]
pub struct Json<T>(pub T);

impl<T: Serialize> IntoResponse for Json<T> {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

/// As `Option<Json<T>>`: none when the request has no `Content-Type`, a rejection when it has
/// one but the body is not the JSON expected.
impl<T, S> OptionalFromRequest<S> for Json<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = WebError;

    async fn from_request(request: Request, state: &S) -> Result<Option<Self>, Self::Rejection> {
        let body = <axum::Json<T> as OptionalFromRequest<S>>::from_request(request, state).await?;
        Ok(body.map(|axum::Json(value)| Json(value)))
    }
}

/// A urlencoded form body. A repeated name (checkboxes) fills a `Vec` field; a single value
/// for a non-`Vec` field; an empty value is `None` for an `Option` field.
#[derive(Debug, FromRequest)]
#[from_request(via(axum_extra::extract::Form), rejection(WebError))]
pub struct Form<T>(pub T);

/// The route's path parameters.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Path), rejection(WebError))]
pub struct Path<T>(pub T);

/// The query string.
#[derive(Debug, FromRequestParts)]
#[from_request(via(axum::extract::Query), rejection(WebError))]
pub struct Query<T>(pub T);
