-- Brands, their keys, creators, campaigns and tracking links: the control plane.

create table brands (
    id          uuid primary key,
    name        text not null check (length(name) between 1 and 200),
    pixel_id    text not null constraint brands_pixel_id_key unique,
    created_at  timestamptz not null default now()
);

-- API keys are stored as SHA-256 hashes of the full key; the prefix is a public handle.
create table api_keys (
    id          uuid primary key,
    brand_id    uuid not null references brands (id),
    prefix      text not null constraint api_keys_prefix_key unique,
    key_hash    bytea not null check (length(key_hash) = 32),
    created_at  timestamptz not null default now(),
    revoked_at  timestamptz
);

-- `seq` orders lists newest first and backs their cursors; ids stay random and opaque.
create table creators (
    id          uuid primary key,
    brand_id    uuid not null references brands (id),
    seq         bigint generated always as identity,
    name        text not null,
    handle      text,
    created_at  timestamptz not null default now(),
    -- Lets links reference (brand_id, id), so a link can never point at another brand's creator.
    constraint creators_brand_id_id_key unique (brand_id, id)
);
create index creators_brand_seq on creators (brand_id, seq desc);

create table campaigns (
    id          uuid primary key,
    brand_id    uuid not null references brands (id),
    seq         bigint generated always as identity,
    name        text not null,
    created_at  timestamptz not null default now(),
    constraint campaigns_brand_id_id_key unique (brand_id, id)
);
create index campaigns_brand_seq on campaigns (brand_id, seq desc);

create table links (
    id              uuid primary key,
    brand_id        uuid not null references brands (id),
    seq             bigint generated always as identity,
    -- Unique across all brands and all time: a deleted link keeps its code, so no code is reused.
    code            text not null constraint links_code_key unique,
    destination_url text not null check (length(destination_url) <= 2048),
    campaign_id     uuid,
    creator_id      uuid,
    platform        text check (platform in ('instagram', 'tiktok', 'youtube', 'x', 'facebook', 'linkedin')),
    content_type    text check (content_type in ('sponsored_post', 'story', 'reel', 'video', 'bio_link', 'affiliate')),
    promo_code      text,
    share_revenue   boolean not null default false,
    active          boolean not null default true,
    -- Bumped on every change; the edge keeps the highest version it was sent.
    version         bigint not null default 1,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now(),
    deleted_at      timestamptz,
    constraint links_active_iff_not_deleted check (active = (deleted_at is null)),
    constraint links_campaign_fkey foreign key (brand_id, campaign_id) references campaigns (brand_id, id),
    constraint links_creator_fkey foreign key (brand_id, creator_id) references creators (brand_id, id)
);
-- Promo codes are unique among a brand's active links, whatever their case.
create unique index links_promo_code_key on links (brand_id, lower(promo_code))
    where active and promo_code is not null;
create index links_brand_seq on links (brand_id, seq desc);
create index links_brand_creator_seq on links (brand_id, creator_id, seq desc) where creator_id is not null;
create index links_brand_campaign_seq on links (brand_id, campaign_id, seq desc) where campaign_id is not null;

-- One row per click recorded at the edge. No IP address and no user-agent string, by design.
create table clicks (
    id              uuid primary key,           -- the click id handed out as cs_ref
    link_id         uuid not null references links (id),
    brand_id        uuid not null references brands (id),
    occurred_at     timestamptz not null,
    visitor_id      uuid not null,
    new_visitor     boolean not null,
    bot             boolean not null,
    country         text,
    referrer_host   text,
    device_type     text,
    browser         text,
    os              text,
    received_at     timestamptz not null default now()
);
create index clicks_link_time on clicks (link_id, occurred_at);
create index clicks_brand_time on clicks (brand_id, occurred_at);
