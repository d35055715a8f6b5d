-- Every state column accepts only the words Herald's enums are made of (src/domain), so a
-- typo in a query or a hand-made update is refused instead of stranding a row in a state
-- nothing looks for. A post's source is a file (`file:...`) or a feed item (`feed:...`).

-- A poll's outcome used to be written as 'ok' for a moment before the real one: forget any
-- that stayed (the next poll writes it again).
update sources set last_outcome = null where last_outcome not in ('changed', 'unchanged', 'failed');

alter table posts add constraint posts_source_check
    check (substr(source, 1, 5) in ('file:', 'feed:'));
alter table subscribers add constraint subscribers_status_check
    check (status in ('pending', 'confirmed', 'unsubscribed', 'bounced', 'complained'));
alter table outbox add constraint outbox_status_check
    check (status in ('pending', 'sending', 'sent', 'failed'));
alter table editions add constraint editions_status_check
    check (status in ('sending', 'sent'));
alter table deliveries add constraint deliveries_status_check
    check (status in ('pending', 'sending', 'sent', 'failed', 'skipped'));
alter table sources add constraint sources_last_outcome_check
    check (last_outcome in ('changed', 'unchanged', 'failed'));
alter table subscription_requests add constraint subscription_requests_status_check
    check (status in ('pending', 'sending'));
