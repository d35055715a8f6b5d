-- Digest editions and their delivery queue.

-- When Herald first saw a post public; posts already public at Herald's first sync
-- are its archive and are never mailed as new.
alter table posts add column public_at timestamptz;
alter table posts add column archived boolean not null default false;

create table editions (
    id            bigint generated always as identity primary key,
    frequency     text not null,                 -- immediate | daily | weekly
    period        text not null,                 -- post-123 | 2026-11-23 | 2026-W48 (| ...#2 for a later send)
    subject       text not null,
    status        text not null,                 -- sending | sent
    recipients    bigint not null default 0,
    created_at    timestamptz not null,
    completed_at  timestamptz,
    unique (frequency, period)
);

create table edition_posts (
    edition_id  bigint not null references editions (id) on delete cascade,
    frequency   text not null,
    post_id     bigint not null references posts (id) on delete cascade,
    position    integer not null,
    primary key (edition_id, post_id),
    unique (frequency, post_id)                  -- a post goes out once per frequency
);

-- One row per edition and subscriber: the promise of exactly one message each.
create table deliveries (
    id               bigint generated always as identity primary key,
    edition_id       bigint not null references editions (id) on delete cascade,
    subscriber_id    bigint not null references subscribers (id) on delete cascade,
    status           text not null,              -- pending | sending | sent | failed | skipped
    attempts         integer not null default 0,
    next_attempt_at  timestamptz not null,              -- for sending rows: when the lease runs out
    last_error       text,
    sent_at          timestamptz,
    unique (edition_id, subscriber_id)
);

create index deliveries_due on deliveries (status, next_attempt_at, id);
create index deliveries_by_edition on deliveries (edition_id, status);
