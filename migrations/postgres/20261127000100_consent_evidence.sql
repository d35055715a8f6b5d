-- Consent evidence and a subscriber's history. Every change to a subscriber (a request on the
-- form, a confirmation, a change of choices, leaving, a bounce, an import row, an admin's
-- hand) is kept as an event with who or what made it; a form request keeps the version of
-- the consent wording the form showed, whose text is in `consent_texts`, and a
-- confirmation the address it came from, cut to its network (/24, /48). Erasing a person
-- deletes their events with them and keeps only a keyed hash of their address in
-- `suppressions`, so that an import cannot bring them back by mistake.

create table consent_texts (
    version       text primary key,              -- first 12 hex digits of the text's SHA-256
    text          text not null,
    created_at    timestamptz not null
);

create table subscriber_events (
    id              bigint generated always as identity primary key,
    subscriber_id   bigint not null references subscribers (id) on delete cascade,
    kind            text not null,
    source          text not null,
    actor           text,                        -- import file, API token name, admin address
    detail          text,
    wording_version text,                        -- consent_texts.version the form showed
    ip              text,                        -- truncated: 203.0.113.0, 2001:db8:1::
    at              timestamptz not null,
    constraint subscriber_events_kind_check check (kind in ('requested', 'confirmed', 'resubscribed',
        'unsubscribed', 'bounced', 'complained', 'reactivated', 'status_changed', 'preferences_changed',
        'edited', 'added', 'imported')),
    constraint subscriber_events_source_check check (source in ('form', 'link', 'import', 'api', 'console',
        'cli', 'smtp', 'ses', 'postmark', 'mailgun', 'sendgrid', 'imap', 'ingest'))
);

create index subscriber_events_subscriber on subscriber_events (subscriber_id, at, id);

create table suppressions (
    email_hash    text primary key,              -- HMAC-SHA-256 of the normalised address
    reason        text not null,                 -- erased (at the person's request)
    source        text not null,                 -- who erased them: console | api | cli
    created_at    timestamptz not null
);

-- The wording the form showed, carried from the form to the worker that acts on the request.
alter table subscription_requests add column wording_version text;
