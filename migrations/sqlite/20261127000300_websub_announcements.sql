-- WebSub: when Herald told the hubs about a post (`[feeds] websub_hubs`). One instance
-- claims a newly public post by setting this, and pings the hubs for its feeds.
alter table posts add column websub_announced_at text;
-- Posts public before this column existed have been seen by every reader already.
update posts set websub_announced_at = public_at where public_at is not null;
-- The posts still to announce: scheduled posts and drafts (and any just published).
create index posts_not_announced on posts (published_at) where websub_announced_at is null;
