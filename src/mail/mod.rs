//! Getting mail out: the `Mailer` over lettre's transports, message composition,
//! and the worker that drains the transactional outbox.

pub mod compose;
pub mod mailer;
pub mod outbox;
pub mod retry;
pub mod smtp;

pub use compose::{Composer, Outgoing};
pub use mailer::{FileMailer, Mailer, SendError, SmtpMailer, mailer_from_settings};
pub use retry::RetryPolicy;
