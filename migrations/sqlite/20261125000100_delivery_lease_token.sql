-- Each claim of a delivery carries a random token. Outcomes and lease extensions apply
-- only while the row still holds the claimer's token, so a worker whose lease ran out
-- (and whose rows another worker took over) can neither record nor extend them.
alter table deliveries add column lease_token bigint;
