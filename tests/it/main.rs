//! Integration tests: a real server on port 0, a real database, real files.

mod admin_api;
mod admin_browser;
mod browser;
mod cli;
mod common;
mod crash;
mod digests;
mod feeds;
mod import;
mod instances;
mod login_flood;
mod observability;
mod pages;
mod readiness;
mod sanitize;
mod schedule;
mod server;
mod smtp;
mod sources;
mod subscribers;
mod sync;
