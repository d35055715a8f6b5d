-- Clicks, when `[tracking] clicks = true`: the links of each edition (one row per distinct
-- URL, with the random token its tracked address carries), and each click on one. The
-- redirect only ever leads to a URL in `edition_links`. A click names its reader only when
-- clicks are not anonymous; erasing the reader leaves the click without them.

create table edition_links (
    id          integer primary key autoincrement,
    edition_id  integer not null references editions (id) on delete cascade,
    url         text not null,
    token       text not null unique,            -- 72 random bits, base64url
    created_at  text not null,
    unique (edition_id, url)
);

create table link_clicks (
    id             integer primary key autoincrement,
    link_id        integer not null references edition_links (id) on delete cascade,
    edition_id     integer not null references editions (id) on delete cascade,
    subscriber_id  integer references subscribers (id) on delete set null,
    clicked_at     text not null
);

create index link_clicks_edition on link_clicks (edition_id, subscriber_id);
create index link_clicks_link on link_clicks (link_id);
create index link_clicks_subscriber on link_clicks (subscriber_id);
