-- Posts and their tags.

create table site_meta (
    key   text primary key,
    value text not null
);

create table posts (
    id            bigint generated always as identity primary key,
    uid           text not null unique,
    slug          text not null unique,
    title         text not null,
    published_at  timestamptz not null,
    updated_at    timestamptz not null,
    authors       text not null default '[]',
    summary       text,
    content_html  text not null,
    image         text,
    image_alt     text,
    draft         boolean not null default false,
    source        text not null,
    content_hash  text not null,
    removed_at    timestamptz,
    created_at    timestamptz not null,
    changed_at    timestamptz not null
);

create index posts_public_order on posts (published_at desc, id desc);
create index posts_source on posts (source);

create table post_tags (
    post_id bigint not null references posts (id) on delete cascade,
    tag     text not null,
    name    text not null,
    position integer not null,
    primary key (post_id, tag)
);

create index post_tags_by_tag on post_tags (tag, post_id);
