-- Posts and their tags. Timestamps are RFC 3339 text in UTC, written by Herald
-- (never by SQLite's own clock) so they compare correctly as text.

create table site_meta (
    key   text primary key,
    value text not null
);

create table posts (
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
    source        text not null,                   -- file:relative/path.md or feed:URL
    content_hash  text not null,
    removed_at    text,                            -- set when its source disappears
    created_at    text not null,
    changed_at    text not null                    -- last time Herald changed this row
);

create index posts_public_order on posts (published_at desc, id desc);
create index posts_source on posts (source);

create table post_tags (
    post_id integer not null references posts (id) on delete cascade,
    tag     text not null,                         -- slug form, e.g. water-quality
    name    text not null,                         -- as the author wrote it
    position integer not null,                     -- order the author gave
    primary key (post_id, tag)
);

create index post_tags_by_tag on post_tags (tag, post_id);
