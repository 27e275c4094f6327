-- Every process remembers the API keys it has verified (brands::KeyCache), and forgets one as soon as it
-- is revoked or deleted anywhere: each change of a key notifies the `api_keys_changed` channel with the
-- key's prefix, delivered to every listening process when the change commits. New keys need no notice:
-- a key nobody has verified is not remembered.
create function api_keys_changed() returns trigger language plpgsql as $$
begin
    perform pg_notify('api_keys_changed', old.prefix);
    return null;
end $$;

create trigger api_keys_changed after update or delete on api_keys
    for each row execute function api_keys_changed();
