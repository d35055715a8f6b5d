-- A confirmation link carries the choices it was mailed with: they are applied when
-- that link is followed, never when someone merely fills in the form. Only the newest
-- link of an address works; older ones are revoked when a new one is issued, and a
-- used one stays used.
alter table confirmations add column name text;
alter table confirmations add column frequency text;            -- null: keep the subscriber's
alter table confirmations add column topics text;               -- JSON array; null: keep the subscriber's
alter table confirmations add column revoked_at timestamptz;

-- Subscription requests from the form, stored before the form answers and worked on in
-- the background, so the answer takes the same time whatever the address's state.
create table subscription_requests (
    id              bigint generated always as identity primary key,
    email           text not null,
    name            text,
    frequency       text not null,
    topics          text not null default '[]',
    source          text not null,
    status          text not null default 'pending',   -- pending | sending (claimed by a worker)
    attempts        integer not null default 0,
    next_attempt_at timestamptz not null,
    created_at      timestamptz not null
);

create index subscription_requests_due on subscription_requests (status, next_attempt_at);
