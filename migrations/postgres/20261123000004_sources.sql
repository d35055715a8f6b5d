-- Remote feeds Herald imports posts from, and what it knows for conditional GET.
create table sources (
    url            text primary key,
    etag           text,
    last_modified  text,
    last_polled_at timestamptz,
    last_outcome   text,                 -- changed | unchanged | failed
    last_error     text,
    failures       integer not null default 0
);
