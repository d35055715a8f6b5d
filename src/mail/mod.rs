//! Getting mail out: the `Mailer` over lettre's transports, message composition,
//! and the worker that drains the transactional outbox.
//! Transport only; uses `domain`, `config` and `store` (the outbox's rows).

pub mod compose;
pub mod imap;
pub mod mailer;
pub mod outbox;
pub mod reports;
pub mod retry;
pub mod smtp;
pub mod wire;

pub use compose::{Composer, Outgoing};
pub use mailer::{FileMailer, Mailer, SendError};
pub use retry::RetryPolicy;
pub use smtp::SmtpMailer;

use std::sync::Arc;

use crate::config::{MailTransport, Settings};

/// Builds the mailer `[mail] transport` names.
pub fn mailer_from_settings(settings: &Settings) -> anyhow::Result<Arc<dyn Mailer>> {
    Ok(match settings.mail.transport {
        MailTransport::File => Arc::new(FileMailer::new(settings.outbox_dir())?),
        MailTransport::Smtp => Arc::new(SmtpMailer::new(settings)?),
    })
}
