//! Two real `api` processes on one PostgreSQL database (the second `--no-background`), each remembering the
//! API keys it verified: a key revoked with the command line stops working in both, long before a
//! remembered key would expire (a minute), because each forgets it when the notice of its revocation
//! arrives; another key of the brand keeps working.

use std::time::Duration;

use e2e::api::{ApiOptions, ApiProcess};
use e2e::wait_until;

const LIMIT: Duration = Duration::from_secs(30);

/// Waits until the process has subscribed to the changes of keys (from then on it remembers them).
fn subscribed(api: &ApiProcess) {
    wait_until("the API subscribes to API key changes", LIMIT, || {
        api.logs().contains("subscribed to API key changes").then_some(())
    });
}

#[test]
fn a_key_revoked_with_the_command_line_stops_working_in_every_process() {
    let first = ApiProcess::start(ApiOptions::default());
    let second =
        first.start_beside(ApiOptions { serve_args: vec!["--no-background".to_owned()], ..ApiOptions::default() });
    subscribed(&first);
    subscribed(&second);
    let brand = first.create_brand("Keys");
    let other = first.run(&["key", "create", "--brand", &brand.id]);
    let other = other
        .lines()
        .find_map(|l| l.strip_prefix("api_key: "))
        .unwrap_or_else(|| panic!("no api_key line in {other}"))
        .to_owned();
    // Verified, and so remembered, by both.
    for api in [&first, &second] {
        for key in [&brand.api_key, &other] {
            assert_eq!(api.call("GET", "/v1/links", key, None).0, 200, "{}", api.logs());
        }
    }

    first.run(&["key", "revoke", &brand.api_key[..12]]);
    for api in [&first, &second] {
        wait_until("the revoked key is refused", LIMIT, || {
            (api.call("GET", "/v1/links", &brand.api_key, None).0 == 401).then_some(())
        });
        assert_eq!(api.call("GET", "/v1/links", &other, None).0, 200);
    }
}
