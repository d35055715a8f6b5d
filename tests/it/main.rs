//! Integration tests: a real server on port 0, a real database, real files.

mod cli;
mod common;
mod feeds;
mod pages;
mod sanitize;
mod smtp;
mod sync;
