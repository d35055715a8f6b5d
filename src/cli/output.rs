//! What the commands share in how they answer: tables, the usage error (exit status 2), and
//! a quiet end when the reader of their output goes away.

/// A value on the command line that clap accepted but the command cannot use (an address
/// that is no address, a topic that is no tag): exit status 2, as clap gives for its own.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// A table for the terminal: no borders, columns two spaces apart, every row's cells
/// starting where their heading does.
pub fn table<const N: usize>(header: [&str; N]) -> comfy_table::Table {
    let mut table = comfy_table::Table::new();
    table.load_style(comfy_table::presets::NOTHING).set_header(header);
    for (i, column) in table.column_iter_mut().enumerate() {
        column.set_padding((0, if i + 1 == N { 0 } else { 2 }));
    }
    table
}

/// Output into a pipe whose reader has gone (`herald status | head -1`) ends the command
/// quietly, as it does git: the default action of SIGPIPE, which Rust's runtime replaces with
/// "ignore" so that writes fail and `println!` panics. The shell then reports status 141
/// (128 + SIGPIPE). Not for `herald serve`, which must outlive any peer that hangs up; socket
/// writes never raise SIGPIPE anyway (the standard library sends with `MSG_NOSIGNAL`).
pub fn quiet_on_closed_output() {
    #[cfg(unix)]
    // SAFETY: restoring a signal's default disposition, before any output is written.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
