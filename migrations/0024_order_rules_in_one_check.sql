-- The rules of an order row, in one function that one CHECK calls, in place of the ten CHECKs of
-- `conversions` (the same rules). PostgreSQL re-reads and re-plans the stored expression of every CHECK of
-- a table in each statement that writes it: the ten were 7.6 KB of stored expression for every order
-- recorded (re-reading it was about 3 % of the CPU of `bench/conversions.sh`); this one is 1.4 KB, and the
-- function's expression is planned once per session.
create function conversion_row_valid(
    order_id text, amount_minor bigint, refunded_minor bigint, currency text, link_id uuid, method text,
    click_id uuid, source text, amount_source text, status text
) returns boolean language plpgsql immutable parallel safe as $$
begin
    return length(order_id) between 1 and 128
       and amount_minor >= 0 and refunded_minor >= 0
       and currency ~ '^[A-Z]{3}$'
       and (method is null or method in ('click', 'promo_code'))
       -- Credited to a link by a method, or to nobody.
       and (link_id is null) = (method is null)
       -- A click's credit names the click.
       and (method is distinct from 'click' or click_id is not null)
       and source in ('pixel', 'shopify', 'api')
       and amount_source in ('pixel', 'shopify', 'api')
       and status in ('verified', 'pending', 'unconfirmed', 'unverified', 'disputed', 'cancelled', 'test');
end $$;

alter table conversions
    drop constraint conversions_order_id_check,
    drop constraint conversions_amount_minor_check,
    drop constraint conversions_refunded_minor_check,
    drop constraint conversions_currency_check,
    drop constraint conversions_method_check,
    drop constraint conversions_credit_complete,
    drop constraint conversions_click_credit,
    drop constraint conversions_source_check,
    drop constraint conversions_amount_source_check,
    drop constraint conversions_status_check,
    add constraint conversions_row_valid check (conversion_row_valid(
        order_id, amount_minor, refunded_minor, currency, link_id, method, click_id, source, amount_source, status));
