-- Ownership by proof for Shopify shops, and access that can be taken back: creator tokens that expire or
-- are revoked, dashboard users that are disabled.

-- A shop connection is a brand's *claim* on a domain. Several brands may claim one domain; a claim is
-- `pending` until a delivery signed with its secret verifies, and then `active`: the domain's owner. At
-- most one claim per domain is active. `verified_at` is when the claim last proved itself (kept when its
-- brand rotates the secret or another claim's proof displaces it), so it tells a claim that never proved
-- anything, which another claim's proof ends, from a displaced owner, which stays pending.
alter table shopify_shops drop constraint shopify_shops_pkey;
alter table shopify_shops
    add column status text not null default 'pending' check (status in ('pending', 'active')),
    add column verified_at timestamptz,
    add constraint shopify_shops_active_verified check (status = 'pending' or verified_at is not null);
-- Until now the first brand to connect a domain held it alone; one that has received a verified delivery
-- (only verified deliveries are stored) has proved its secret.
update shopify_shops s set status = 'active', verified_at = d.first_at
from (select shop_domain, brand_id, min(received_at) as first_at from shopify_deliveries
      group by shop_domain, brand_id) d
where d.shop_domain = s.shop_domain and d.brand_id = s.brand_id;
alter table shopify_shops add constraint shopify_shops_pkey primary key (shop_domain, brand_id);
create unique index shopify_shops_owner on shopify_shops (shop_domain) where status = 'active';

-- Creator tokens: an optional expiry, and a sequence for listing them newest first.
alter table creator_tokens
    add column expires_at timestamptz,
    add column seq bigint generated always as identity;
create index creator_tokens_creator_seq on creator_tokens (creator_id, seq desc);

-- Dashboard users: a disabled user cannot sign in, and disabling one deletes its sessions.
alter table users add column disabled_at timestamptz;
create index users_brand on users (brand_id, email);
