-- People who run Herald, their sessions, and API tokens. Secrets are stored only as hashes:
-- passwords with argon2id, session and API tokens (256 random bits) with SHA-256.
create table admin_users (
    id            integer primary key autoincrement,
    email         text not null unique,          -- lowercased
    password_hash text not null,                 -- PHC string, $argon2id$...
    created_at    text not null,
    last_login_at text
);

create table admin_sessions (
    token_hash  text primary key,
    user_id     integer not null references admin_users (id) on delete cascade,
    created_at  text not null,
    expires_at  text not null
);

create table api_tokens (
    id           integer primary key autoincrement,
    name         text not null,
    token_hash   text not null unique,
    created_at   text not null,
    last_used_at text
);
