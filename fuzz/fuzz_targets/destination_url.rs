//! Destination URLs as links are created with them: never a panic, and an accepted URL is absolute
//! http(s), has a host and no credentials, fits in 2048 bytes, is not on the tracking domain, and is
//! accepted again as it is stored.
#![no_main]

use std::sync::OnceLock;

use api::domain::DestinationUrl;
use libfuzzer_sys::fuzz_target;
use url::Url;

fn tracking() -> &'static [Url; 2] {
    static TRACKING: OnceLock<[Url; 2]> = OnceLock::new();
    TRACKING.get_or_init(|| {
        [
            Url::parse("https://trk.creatorscore.io").expect("a valid URL"),
            Url::parse("http://127.0.0.1:8787").expect("a valid URL"),
        ]
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    for tracking in tracking() {
        let Ok(destination) = DestinationUrl::parse(input, tracking) else { continue };
        let stored = destination.as_str();
        let url = Url::parse(stored).expect("an accepted destination is a URL");
        assert!(matches!(url.scheme(), "http" | "https"), "{stored}");
        assert!(url.host_str().is_some_and(|h| !h.is_empty()), "{stored}");
        assert!(url.username().is_empty() && url.password().is_none(), "{stored}");
        assert!(stored.len() <= 2048, "{} bytes", stored.len());
        let again = DestinationUrl::parse(stored, tracking).expect("a stored destination parses again");
        assert_eq!(again.as_str(), stored);
    }
});
