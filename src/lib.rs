//! Herald: a self-hosted newsletter and syndication publisher. Posts come in
//! from Markdown files; feeds, pages and email digests go out.

pub mod admin;
pub mod app;
pub mod config;
pub mod content;
pub mod delivery;
pub mod digest;
pub mod domain;
pub mod export;
pub mod feeds;
pub mod import;
pub mod metrics;
pub mod schedule;
pub mod site;
pub mod store;
pub mod subscriptions;
pub mod web;
