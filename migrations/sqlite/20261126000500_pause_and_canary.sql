-- no-transaction
-- An edition can pause itself (the circuit breaker, or a canary sample that bounced), wait
-- for its canary sample's verdict, or be cancelled by an admin: new status words, why and
-- when it paused, and when its canary wait ends. A delivery knows whether it is in the
-- canary sample, and when it failed (so a pause can put back the failures of the window
-- that tripped it, and undo the bounces they caused).
--
-- SQLite cannot change a check constraint, so `editions` is rebuilt the documented way (see
-- 20261126000100_state_checks.sql): foreign keys off, new table, copy, drop, rename, check
-- the foreign keys, commit, foreign keys on. Its AUTOINCREMENT counter carries over.

pragma foreign_keys = off;

begin immediate;

create table editions_new (
    id            integer primary key autoincrement,
    frequency     text not null,                 -- immediate | daily | weekly
    period        text not null,                 -- post-123 | 2026-11-23 | 2026-W48 (| ...#2 for a later send)
    subject       text not null,
    status        text not null,                 -- sending | canary | paused | sent | cancelled
    recipients    integer not null default 0,
    created_at    text not null,
    completed_at  text,
    paused_cause  text,                          -- breaker | canary, while paused
    paused_reason text,                          -- for people: what tripped it
    paused_at     text,
    canary_until  text,                          -- when the canary wait ends (set once the sample is out)
    unique (frequency, period),
    constraint editions_status_check check (status in ('sending', 'canary', 'paused', 'sent', 'cancelled')),
    constraint editions_paused_cause_check check (paused_cause in ('breaker', 'canary'))
);
insert into editions_new (id, frequency, period, subject, status, recipients, created_at, completed_at)
select id, frequency, period, subject, status, recipients, created_at, completed_at
from editions;
delete from sqlite_sequence where name = 'editions_new';
insert into sqlite_sequence (name, seq) select 'editions_new', seq from sqlite_sequence where name = 'editions';
drop table editions;
alter table editions_new rename to editions;

alter table deliveries add column canary boolean not null default false;
alter table deliveries add column failed_at text;

create temp table pause_and_canary_foreign_keys (dangling integer not null check (dangling = 0));
insert into pause_and_canary_foreign_keys select count(*) from pragma_foreign_key_check;
drop table pause_and_canary_foreign_keys;

commit;

pragma foreign_keys = on;
