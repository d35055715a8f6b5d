//! Herald: a self-hosted newsletter and syndication publisher. Posts come in
//! from Markdown files; feeds, pages and email digests go out.

pub mod auth;
pub mod bounces;
pub mod cli;
pub mod config;
pub mod content;
pub mod digest;
pub mod doctor;
pub mod domain;
pub mod feeds;
pub mod insight;
pub mod mail;
pub mod metrics;
pub mod schedule;
pub mod site;
pub mod startup;
pub mod store;
pub mod subscribers;
pub mod web;
pub mod websub;
pub mod worker;
