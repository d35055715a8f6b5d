//! Herald: a self-hosted newsletter and syndication publisher. Posts come in
//! from Markdown files; feeds, pages and email digests go out.

pub mod config;
pub mod content;
pub mod domain;
pub mod feeds;
pub mod store;
pub mod app;
pub mod export;
pub mod schedule;
pub mod site;
pub mod web;
