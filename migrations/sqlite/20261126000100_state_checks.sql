-- no-transaction
-- Every state column accepts only the words Herald's enums are made of (src/domain), so a
-- typo in a query or a hand-made update is refused instead of stranding a row in a state
-- nothing looks for. A post's source is a file (`file:...`) or a feed item (`feed:...`).
--
-- SQLite cannot add a constraint to a table, so each table is rebuilt the documented way
-- (https://www.sqlite.org/lang_altertable.html#otheralter): with foreign keys off (which
-- cannot change inside a transaction, hence `no-transaction` above and the explicit
-- transaction below), create the new table, copy the rows, drop the old one, rename the
-- new one, recreate its indexes, check the foreign keys, commit, and turn them back on.
-- Columns, their order, types, defaults and indexes are as before; AUTOINCREMENT counters
-- carry over so no id is ever reused.

pragma foreign_keys = off;

begin immediate;

-- A poll's outcome used to be written as 'ok' for a moment before the real one: forget any
-- that stayed (the next poll writes it again).
update sources set last_outcome = null where last_outcome not in ('changed', 'unchanged', 'failed');

-- posts

create table posts_new (
    id            integer primary key autoincrement,
    uid           text not null unique,            -- urn:uuid:..., never changes
    slug          text not null unique,
    title         text not null,
    published_at  text not null,
    updated_at    text not null,
    authors       text not null default '[]',      -- JSON array of names
    summary       text,
    content_html  text not null,                   -- sanitised, absolute URLs
    image         text,
    image_alt     text,
    draft         boolean not null default false,
    source        text not null,                   -- file:relative/path.md or feed:URL#item
    content_hash  text not null,
    removed_at    text,                            -- set when its source disappears
    created_at    text not null,
    changed_at    text not null,                   -- last time Herald changed this row
    public_at     text,
    archived      boolean not null default false,
    constraint posts_source_check check (substr(source, 1, 5) in ('file:', 'feed:'))
);
insert into posts_new (id, uid, slug, title, published_at, updated_at, authors, summary, content_html, image,
    image_alt, draft, source, content_hash, removed_at, created_at, changed_at, public_at, archived)
select id, uid, slug, title, published_at, updated_at, authors, summary, content_html, image,
    image_alt, draft, source, content_hash, removed_at, created_at, changed_at, public_at, archived
from posts;
delete from sqlite_sequence where name = 'posts_new';
insert into sqlite_sequence (name, seq) select 'posts_new', seq from sqlite_sequence where name = 'posts';
drop table posts;
alter table posts_new rename to posts;
create index posts_public_order on posts (published_at desc, id desc);
create index posts_source on posts (source);

-- subscribers

create table subscribers_new (
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
    updated_at        text not null,
    constraint subscribers_status_check
        check (status in ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained'))
);
insert into subscribers_new (id, email, email_key, name, status, frequency, topics, source, manage_token,
    consent_at, confirmed_at, unsubscribed_at, bounced_at, complained_at, confirmation_sent_at, created_at,
    updated_at)
select id, email, email_key, name, status, frequency, topics, source, manage_token,
    consent_at, confirmed_at, unsubscribed_at, bounced_at, complained_at, confirmation_sent_at, created_at,
    updated_at
from subscribers;
delete from sqlite_sequence where name = 'subscribers_new';
insert into sqlite_sequence (name, seq) select 'subscribers_new', seq from sqlite_sequence where name = 'subscribers';
drop table subscribers;
alter table subscribers_new rename to subscribers;
create index subscribers_status on subscribers (status, frequency, id);

-- outbox

create table outbox_new (
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
    sent_at         text,
    constraint outbox_status_check check (status in ('pending', 'sending', 'sent', 'failed'))
);
insert into outbox_new (id, kind, subscriber_id, recipient, message_id, message, status, attempts,
    next_attempt_at, last_error, created_at, sent_at)
select id, kind, subscriber_id, recipient, message_id, message, status, attempts,
    next_attempt_at, last_error, created_at, sent_at
from outbox;
delete from sqlite_sequence where name = 'outbox_new';
insert into sqlite_sequence (name, seq) select 'outbox_new', seq from sqlite_sequence where name = 'outbox';
drop table outbox;
alter table outbox_new rename to outbox;
create index outbox_due on outbox (status, next_attempt_at);

-- editions

create table editions_new (
    id            integer primary key autoincrement,
    frequency     text not null,                 -- immediate | daily | weekly
    period        text not null,                 -- post-123 | 2026-11-23 | 2026-W48 (| ...#2 for a later send)
    subject       text not null,
    status        text not null,                 -- sending | sent
    recipients    integer not null default 0,
    created_at    text not null,
    completed_at  text,
    unique (frequency, period),
    constraint editions_status_check check (status in ('sending', 'sent'))
);
insert into editions_new (id, frequency, period, subject, status, recipients, created_at, completed_at)
select id, frequency, period, subject, status, recipients, created_at, completed_at
from editions;
delete from sqlite_sequence where name = 'editions_new';
insert into sqlite_sequence (name, seq) select 'editions_new', seq from sqlite_sequence where name = 'editions';
drop table editions;
alter table editions_new rename to editions;

-- deliveries

create table deliveries_new (
    id               integer primary key autoincrement,
    edition_id       integer not null references editions (id) on delete cascade,
    subscriber_id    integer not null references subscribers (id) on delete cascade,
    status           text not null,              -- pending | sending | sent | failed | skipped
    attempts         integer not null default 0,
    next_attempt_at  text not null,              -- for sending rows: when the lease runs out
    last_error       text,
    sent_at          text,
    lease_token      bigint,                     -- the claim that holds a sending row
    unique (edition_id, subscriber_id),
    constraint deliveries_status_check check (status in ('pending', 'sending', 'sent', 'failed', 'skipped'))
);
insert into deliveries_new (id, edition_id, subscriber_id, status, attempts, next_attempt_at, last_error,
    sent_at, lease_token)
select id, edition_id, subscriber_id, status, attempts, next_attempt_at, last_error,
    sent_at, lease_token
from deliveries;
delete from sqlite_sequence where name = 'deliveries_new';
insert into sqlite_sequence (name, seq) select 'deliveries_new', seq from sqlite_sequence where name = 'deliveries';
drop table deliveries;
alter table deliveries_new rename to deliveries;
create index deliveries_due on deliveries (status, next_attempt_at, id);
create index deliveries_by_edition on deliveries (edition_id, status);

-- sources

create table sources_new (
    url            text primary key,
    etag           text,
    last_modified  text,
    last_polled_at text,
    last_outcome   text,                 -- changed | unchanged | failed
    last_error     text,
    failures       integer not null default 0,
    constraint sources_last_outcome_check check (last_outcome in ('changed', 'unchanged', 'failed'))
);
insert into sources_new (url, etag, last_modified, last_polled_at, last_outcome, last_error, failures)
select url, etag, last_modified, last_polled_at, last_outcome, last_error, failures
from sources;
drop table sources;
alter table sources_new rename to sources;

-- subscription_requests

create table subscription_requests_new (
    id              integer primary key autoincrement,
    email           text not null,
    name            text,
    frequency       text not null,
    topics          text not null default '[]',
    source          text not null,
    status          text not null default 'pending',   -- pending | sending (claimed by a worker)
    attempts        integer not null default 0,
    next_attempt_at text not null,
    created_at      text not null,
    constraint subscription_requests_status_check check (status in ('pending', 'sending'))
);
insert into subscription_requests_new (id, email, name, frequency, topics, source, status, attempts,
    next_attempt_at, created_at)
select id, email, name, frequency, topics, source, status, attempts,
    next_attempt_at, created_at
from subscription_requests;
delete from sqlite_sequence where name = 'subscription_requests_new';
insert into sqlite_sequence (name, seq)
    select 'subscription_requests_new', seq from sqlite_sequence where name = 'subscription_requests';
drop table subscription_requests;
alter table subscription_requests_new rename to subscription_requests;
create index subscription_requests_due on subscription_requests (status, next_attempt_at);

-- No row may point at one that is not there (`pragma foreign_key_check` only lists them,
-- so a count that is not zero is made to fail this table's check).
create temp table state_checks_foreign_keys (dangling integer not null check (dangling = 0));
insert into state_checks_foreign_keys select count(*) from pragma_foreign_key_check;
drop table state_checks_foreign_keys;

commit;

pragma foreign_keys = on;
