-- Links as brands use them: their own short domains, UTM tags, expiry, destination health, and clicks
-- counted by where they came from (a link or its QR code).

-- A brand's own short domain (`go.brand.com`). One brand per hostname, forever unique while it exists.
-- `pending` until the brand proved control of it (Cloudflare for SaaS validated the custom hostname, or
-- `api domain activate` in development); only `active` domains carry links.
create table domains (
    hostname        text primary key check (length(hostname) between 1 and 253 and hostname = lower(hostname)),
    brand_id        uuid not null references brands (id),
    seq             bigint generated always as identity,
    status          text not null default 'pending' check (status in ('pending', 'active')),
    -- The custom hostname's id at Cloudflare for SaaS, when the deployment uses it.
    cloudflare_id   text,
    -- What the brand must publish to prove control (Cloudflare's ownership and certificate records), and
    -- Cloudflare's last word on it.
    verification    jsonb,
    last_error      text,
    created_at      timestamptz not null default now(),
    checked_at      timestamptz,
    activated_at    timestamptz,
    constraint domains_brand_hostname unique (brand_id, hostname),
    constraint domains_active_since check ((status = 'active') = (activated_at is not null))
);
create index domains_brand_seq on domains (brand_id, seq desc);
create index domains_pending on domains (checked_at nulls first) where status = 'pending';

alter table links
    add column domain                  text,
    add column utm_source              text check (length(utm_source) between 1 and 255),
    add column utm_medium              text check (length(utm_medium) between 1 and 255),
    add column utm_campaign            text check (length(utm_campaign) between 1 and 255),
    add column utm_term                text check (length(utm_term) between 1 and 255),
    add column utm_content             text check (length(utm_content) between 1 and 255),
    add column expires_at              timestamptz,
    add column expired_url             text check (length(expired_url) <= 2048),
    -- The last check of the destination: `ok`, `broken` (with the HTTP status), `unreachable`; null until
    -- checked. `destination_check_due_at` is when the next check is due (null: none, the link is inactive).
    add column destination_status      text check (destination_status in ('ok', 'broken', 'unreachable')),
    add column destination_http_status integer,
    add column destination_checked_at  timestamptz,
    add column destination_check_due_at timestamptz default now(),
    -- A link's domain is one of its brand's; removing the domain is refused while active links use it
    -- (the API checks), and leaves deleted links on the default domain.
    add constraint links_domain_fkey foreign key (brand_id, domain)
        references domains (brand_id, hostname) on delete set null (domain);
create index links_destination_due on links (destination_check_due_at) where active;
create index links_brand_destination_status on links (brand_id, destination_status, seq desc)
    where destination_status is not null;
create index links_domain on links (domain) where domain is not null;

-- Where a click came from: the link itself or a scan of its QR code (`?qr=1`).
alter table clicks add column source text not null default 'link' check (source in ('link', 'qr'));
-- Daily breakdowns gain dimension 4, the source (0 country, 1 device type, 2 browser, 3 OS, 4 source), written
-- for QR scans only: a link's other clicks are its clicks less its scans.
alter table link_daily_dims drop constraint link_daily_dims_dimension_check;
alter table link_daily_dims add constraint link_daily_dims_dimension_check check (dimension between 0 and 4);
