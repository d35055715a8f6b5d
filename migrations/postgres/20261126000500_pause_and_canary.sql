-- An edition can pause itself (the circuit breaker, or a canary sample that bounced), wait
-- for its canary sample's verdict, or be cancelled by an admin: new status words, why and
-- when it paused, and when its canary wait ends. A delivery knows whether it is in the
-- canary sample, and when it failed (so a pause can put back the failures of the window
-- that tripped it, and undo the bounces they caused).

alter table editions drop constraint editions_status_check;
alter table editions add constraint editions_status_check
    check (status in ('sending', 'canary', 'paused', 'sent', 'cancelled'));
alter table editions add column paused_cause text;
alter table editions add column paused_reason text;
alter table editions add column paused_at timestamptz;
alter table editions add column canary_until timestamptz;
alter table editions add constraint editions_paused_cause_check check (paused_cause in ('breaker', 'canary'));

alter table deliveries add column canary boolean not null default false;
alter table deliveries add column failed_at timestamptz;
