-- Creators' own accounts for the portal at /creator: a person signs up through a brand's invitation
-- and sees, per brand, the creator records linked to the account. One account may be linked to a
-- creator record of several brands; a brand unlinks its record whenever it wants.

create table creator_accounts (
    id              uuid primary key,
    -- Stored trimmed and lowercased by the application, like dashboard users' (a separate namespace:
    -- the same person may be a brand's user and a creator).
    email           text not null check (length(email) between 3 and 254 and email = lower(email)),
    -- An argon2id PHC string: never the password.
    password_hash   text not null,
    created_at      timestamptz not null default now(),
    constraint creator_accounts_email_key unique (email)
);

-- The account a creator record is linked to, and since when; null: not joined.
alter table creators
    add column account_id uuid references creator_accounts (id),
    add column joined_at timestamptz,
    add constraint creators_joined check ((account_id is null) = (joined_at is null));
create index creators_account on creators (account_id) where account_id is not null;

-- One-time invitations a brand hands to a creator: the link carries 256 random bits, only their
-- SHA-256 is kept. Accepting one links the creator record to the account that accepted it.
create table creator_invitations (
    token_hash      bytea primary key check (length(token_hash) = 32),
    brand_id        uuid not null,
    creator_id      uuid not null,
    created_at      timestamptz not null default now(),
    expires_at      timestamptz not null,
    -- Set when used (accepted) or withdrawn (the brand unlinked the creator meanwhile).
    used_at         timestamptz,
    account_id      uuid references creator_accounts (id),
    constraint creator_invitations_creator_fkey foreign key (brand_id, creator_id) references creators (brand_id, id)
);
create index creator_invitations_creator on creator_invitations (brand_id, creator_id) where used_at is null;

-- A signed-in portal browser, as dashboard sessions are: the cookie's token is only stored hashed.
create table creator_sessions (
    token_hash      bytea primary key check (length(token_hash) = 32),
    account_id      uuid not null references creator_accounts (id) on delete cascade,
    csrf_token      text not null,
    created_at      timestamptz not null default now(),
    last_seen_at    timestamptz not null default now()
);
create index creator_sessions_account on creator_sessions (account_id);
create index creator_sessions_last_seen on creator_sessions (last_seen_at);

-- An account stands for one creator record per brand: the portal shows a brand's links of that record.
create unique index creators_brand_account on creators (brand_id, account_id) where account_id is not null;
