//! Integration tests: a real server on port 0, a real database, real files.

mod admin_api;
mod admin_browser;
mod browser;
mod cli;
mod common;
mod confirmations;
mod crash;
mod digests;
mod feed_check;
mod feeds;
mod import;
mod instances;
mod logs;
mod observability;
mod pages;
mod sanitize;
mod schedule;
mod serve;
mod smtp;
mod sources;
mod subscriber_model;
mod subscribers;
mod sync;
mod timing;
