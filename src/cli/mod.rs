//! The subcommands that do more than call one library function.

pub mod send;
pub mod subscribers;
