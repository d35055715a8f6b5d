-- Every sync looks for posts that have become public since the last one. Without an index
-- it reads every post (in SQLite, through each row's HTML to reach `public_at`); this index
-- holds only the posts not public yet: drafts and scheduled posts.
create index posts_not_yet_public on posts (published_at) where public_at is null;
