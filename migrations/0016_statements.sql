-- Signed ROI statements a creator asks for: the exact JSON document served (so every download is
-- byte-identical to what was signed), and its revocation by the brand.
create table statements (
    -- Unguessable: `st_` and 128 random bits, base64url; it is the statement's public page address.
    id              text primary key,
    seq             bigint generated always as identity,
    brand_id        uuid not null references brands (id),
    creator_id      uuid not null,
    period_from     timestamptz not null,
    period_to       timestamptz not null,
    document        text not null,
    issued_at       timestamptz not null,
    revoked_at      timestamptz,
    revoked_reason  text check (length(revoked_reason) <= 500),
    constraint statements_creator_fkey foreign key (brand_id, creator_id) references creators (brand_id, id),
    constraint statements_period check (period_from < period_to)
);
create index statements_brand_creator_seq on statements (brand_id, creator_id, seq desc);
