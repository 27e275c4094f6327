-- The brand dashboard: a brand's people sign in with an email and a password, and get a session.

-- One row per person; a user belongs to exactly one brand and sees only its data, like its API keys.
create table users (
    id              uuid primary key,
    brand_id        uuid not null references brands (id),
    -- Stored trimmed and lowercased by the application; unique across all brands, since sign-in
    -- names only an email.
    email           text not null check (length(email) between 3 and 254 and email = lower(email)),
    -- An argon2id PHC string (`$argon2id$v=19$m=...,t=...,p=...$salt$hash`): never the password.
    password_hash   text not null,
    created_at      timestamptz not null default now(),
    constraint users_email_key unique (email)
);

-- A signed-in browser. The cookie carries a 256-bit random token; only its SHA-256 is stored, so a
-- leaked table opens no session. A session ends when it is idle too long, when it reaches its
-- absolute lifetime (both checked on every request against these timestamps), or at sign-out,
-- which deletes the row.
create table sessions (
    token_hash      bytea primary key check (length(token_hash) = 32),
    user_id         uuid not null references users (id) on delete cascade,
    brand_id        uuid not null references brands (id),
    -- The synchronizer token every form of this session carries back (random, not derived from the
    -- session token); compared in constant time.
    csrf_token      text not null,
    created_at      timestamptz not null default now(),
    last_seen_at    timestamptz not null default now()
);
create index sessions_user on sessions (user_id);
-- Expired sessions are swept by age.
create index sessions_last_seen on sessions (last_seen_at);
