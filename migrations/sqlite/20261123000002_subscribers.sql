-- Subscribers, their confirmation tokens, and durable transactional mail.

create table subscribers (
    id                integer primary key autoincrement,
    email             text not null,                 -- as the subscriber wrote it
    email_key         text not null unique,          -- lowercased, punycode domain: one row per address
    name              text,
    status            text not null,                 -- pending | confirmed | unsubscribed | bounced | complained
    frequency         text not null,                 -- immediate | daily | weekly
    topics            text not null default '[]',    -- JSON array of tag slugs; empty = everything
    source            text not null,                 -- form | import | cli | api
    manage_token      text not null unique,          -- preferences and unsubscribe links
    consent_at        text,
    confirmed_at      text,
    unsubscribed_at   text,
    bounced_at        text,
    complained_at     text,
    confirmation_sent_at text,                       -- for the per-address resend limit
    created_at        text not null,
    updated_at        text not null
);

create index subscribers_status on subscribers (status, frequency, id);

create table confirmations (
    token_hash     text primary key,                 -- SHA-256 of the token in the link
    subscriber_id  integer not null references subscribers (id) on delete cascade,
    expires_at     text not null,
    used_at        text,
    created_at     text not null
);

create index confirmations_subscriber on confirmations (subscriber_id);

-- Transactional mail is stored before it is sent, so a crash or an SMTP outage
-- loses nothing. The message is kept whole so a retry sends the same bytes.
create table outbox (
    id              integer primary key autoincrement,
    kind            text not null,                   -- confirmation | test
    subscriber_id   integer references subscribers (id) on delete cascade,
    recipient       text not null,
    message_id      text not null,
    message         blob not null,                   -- RFC 5322 bytes; emptied once sent
    status          text not null,                   -- pending | sending | sent | failed
    attempts        integer not null default 0,
    next_attempt_at text not null,
    last_error      text,
    created_at      text not null,
    sent_at         text
);

create index outbox_due on outbox (status, next_attempt_at);
