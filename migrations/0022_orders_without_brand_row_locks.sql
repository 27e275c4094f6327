-- Orders are written by many concurrent requests of one brand: its Conversions API, its pixel, its Shopify
-- webhooks. A foreign key to `brands` makes every one of those writes lock the brand's single row (`for key
-- share`, until the transaction ends), so all of a brand's concurrent orders lock one tuple, and PostgreSQL
-- builds a new multixact, WAL-logged, for every locker that joins. Measured with bench/conversions.sh (16
-- concurrent requests of one brand): about 35 µs of PostgreSQL's CPU per order, 4 % of the orders a second.
--
-- The three tables every new order writes (the order, its click ids, the Conversions API's idempotency key)
-- keep `brand_id` without that key. It never needed one to be right: every brand_id written there comes from
-- an authenticated brand (its API key, its pixel id, its verified Shopify shop), and a brand is never deleted,
-- which the trigger below now makes a rule of the schema (it was the keys' only other effect). The credited
-- link keeps its key: an order locks its link's row only when it credits one, and links are many.

alter table conversions drop constraint conversions_brand_id_fkey;
alter table order_refs drop constraint order_refs_brand_id_fkey;
alter table idempotency_keys drop constraint idempotency_keys_brand_id_fkey;

create function brands_are_kept() returns trigger language plpgsql as $$
begin
    raise exception 'brand % cannot be deleted: brands are kept with their orders', old.id
        using errcode = 'restrict_violation';
end $$;

create trigger brands_are_kept before delete on brands for each row execute function brands_are_kept();
