-- Every bounce, complaint and reactivation reported for an address, whoever reported it (an
-- SMTP reply during a send, a provider's webhook, a delivery status notification), kept for
-- the subscriber's page and for counting soft bounces. `external_id` is the provider's own
-- id of the event, so a webhook that is retried is recorded once.

create table bounce_events (
    id            bigint generated always as identity primary key,
    subscriber_id bigint references subscribers (id) on delete set null,
    address       text not null,                 -- lowercased as reported
    kind          text not null,                 -- hard | soft | complaint | reactivated
    diagnostic    text,                          -- provider/DSN text, at most 1000 chars; for 'reactivated' the admin's reason
    source        text not null,                 -- smtp | ses | postmark | mailgun | sendgrid | imap | ingest | console | api
    edition_id    bigint references editions (id) on delete set null,
    external_id   text unique,                   -- provider's event id
    occurred_at   timestamptz not null,
    recorded_at   timestamptz not null,
    constraint bounce_events_kind_check check (kind in ('hard', 'soft', 'complaint', 'reactivated')),
    constraint bounce_events_source_check
        check (source in ('smtp', 'ses', 'postmark', 'mailgun', 'sendgrid', 'imap', 'ingest', 'console', 'api'))
);

create index bounce_events_subscriber on bounce_events (subscriber_id, occurred_at);
create index bounce_events_edition on bounce_events (edition_id, kind);
