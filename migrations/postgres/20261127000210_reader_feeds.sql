-- A reader's private feed: the SHA-256 of the token in its address (never the token), one
-- per subscriber. Revoking deletes the row; a new feed replaces it; erasing the reader
-- removes it.

create table reader_feeds (
    subscriber_id  bigint primary key references subscribers (id) on delete cascade,
    token_hash     text not null unique,
    created_at     timestamptz not null
);
