-- Subscribers, their confirmation tokens, and durable transactional mail.

create table subscribers (
    id                bigint generated always as identity primary key,
    email             text not null,                 -- as the subscriber wrote it
    email_key         text not null unique,          -- lowercased, punycode domain: one row per address
    name              text,
    status            text not null,                 -- pending | confirmed | unsubscribed | bounced | complained
    frequency         text not null,                 -- immediate | daily | weekly
    topics            text not null default '[]',    -- JSON array of tag slugs; empty = everything
    source            text not null,                 -- form | import | cli | api
    manage_token      text not null unique,          -- preferences and unsubscribe links
    consent_at        timestamptz,
    confirmed_at      timestamptz,
    unsubscribed_at   timestamptz,
    bounced_at        timestamptz,
    complained_at     timestamptz,
    confirmation_sent_at timestamptz,                       -- for the per-address resend limit
    created_at        timestamptz not null,
    updated_at        timestamptz not null
);

create index subscribers_status on subscribers (status, frequency, id);

create table confirmations (
    token_hash     text primary key,                 -- SHA-256 of the token in the link
    subscriber_id  bigint not null references subscribers (id) on delete cascade,
    expires_at     timestamptz not null,
    used_at        timestamptz,
    created_at     timestamptz not null
);

create index confirmations_subscriber on confirmations (subscriber_id);

-- Transactional mail is stored before it is sent, so a crash or an SMTP outage
-- loses nothing. The message is kept whole so a retry sends the same bytes.
create table outbox (
    id              bigint generated always as identity primary key,
    kind            text not null,                   -- confirmation | test
    subscriber_id   bigint references subscribers (id) on delete cascade,
    recipient       text not null,
    message_id      text not null,
    message         bytea not null,                   -- RFC 5322 bytes; emptied once sent
    status          text not null,                   -- pending | sending | sent | failed
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null,
    last_error      text,
    created_at      timestamptz not null,
    sent_at         timestamptz
);

create index outbox_due on outbox (status, next_attempt_at);
