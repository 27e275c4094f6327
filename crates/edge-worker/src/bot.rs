//! Telling bots and link-preview crawlers from people.
//!
//! Bots are still redirected (a preview that fails makes the creator's post look broken), but their
//! clicks are flagged so the API leaves them out of counts. The check must be cheap, since it runs on
//! every click: one pass of a case-insensitive Aho-Corasick automaton over the user agent.

use std::sync::OnceLock;

use aho_corasick::{AhoCorasick, AhoCorasickKind};

/// Substrings (matched without regard to ASCII case) that only automated clients put in their
/// user agent. Kept specific: a bare `bot` would also flag the phone brand CUBOT, and in-app browsers
/// (Instagram, TikTok, Snapchat) are people.
pub const BOT_MARKERS: &[&str] = &[
    // Link-preview crawlers of the platforms creators post on.
    "facebookexternalhit",
    "facebookcatalog",
    "meta-externalagent",
    "meta-externalfetcher",
    "twitterbot",
    "slackbot",
    "slack-imgproxy",
    "whatsapp/",
    "discordbot",
    "telegrambot",
    "linkedinbot",
    "pinterestbot",
    "redditbot",
    "skypeuripreview",
    "vkshare",
    "embedly",
    "iframely",
    "mastodon/",
    // Search engines and AI crawlers.
    "googlebot",
    "google-inspectiontool",
    "adsbot-google",
    "mediapartners-google",
    "bingbot",
    "applebot",
    "yandexbot",
    "baiduspider",
    "duckduckbot",
    "petalbot",
    "bytespider",
    "gptbot",
    "claudebot",
    "perplexitybot",
    "amazonbot",
    "ahrefsbot",
    "semrushbot",
    // Headless and automated browsers.
    "headlesschrome",
    "phantomjs",
    "puppeteer",
    "playwright",
    "selenium",
    "lighthouse",
    // HTTP libraries and command-line clients.
    "curl/",
    "wget/",
    "python-requests",
    "python-urllib",
    "aiohttp",
    "go-http-client",
    "okhttp",
    "java/",
    "apache-httpclient",
    "node-fetch",
    "axios/",
    "libwww-perl",
    "postmanruntime",
    // Generic self-descriptions: `Foobot/1.0`, `... crawler`, `(+https://example.com/bot.html)`.
    "bot/",
    "crawler",
    "spider",
    "+http",
];

/// Cloudflare bot scores below this mean "likely automated" (1 is certain; 0 means "not scored").
pub const BOT_SCORE_THRESHOLD: u32 = 30;

/// What Cloudflare's Bot Management says about a request, where the zone has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BotSignals {
    /// `cf.botManagement.score`, 1–99; `None` or 0 when not scored.
    pub score: Option<u32>,
    /// `cf.botManagement.verifiedBot`: a known good crawler.
    pub verified_bot: bool,
}

fn markers() -> &'static AhoCorasick {
    static MARKERS: OnceLock<AhoCorasick> = OnceLock::new();
    MARKERS.get_or_init(|| {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            // A DFA costs some memory once per isolate and makes every search a single table walk.
            .kind(Some(AhoCorasickKind::DFA))
            .build(BOT_MARKERS)
            // Built from the constants above, so it fails in every test or never.
            .expect("the bot markers build an automaton")
    })
}

/// Whether a click comes from a bot or a link-preview crawler. A missing or empty user agent is a
/// bot: every browser sends one.
pub fn is_bot(user_agent: Option<&str>, signals: BotSignals) -> bool {
    if signals.verified_bot || signals.score.is_some_and(|s| (1..BOT_SCORE_THRESHOLD).contains(&s)) {
        return true;
    }
    match user_agent.map(str::trim) {
        None | Some("") => true,
        Some(ua) => markers().is_match(ua),
    }
}

/// Builds the automaton ahead of the first click (for benchmarks and warm-up).
pub fn warm_up() {
    markers();
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHROME: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
    const IPHONE_INSTAGRAM: &str = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 326.0.3.26.91 (iPhone15,2; iOS 17_4; en_US; en; scale=3.00; 1179x2556; 590452540)";
    const CUBOT_PHONE: &str = "Mozilla/5.0 (Linux; Android 10; CUBOT X30) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Mobile Safari/537.36";
    const TIKTOK: &str = "Mozilla/5.0 (Linux; Android 13; SM-S908B Build/TP1A.220624.014; wv) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/119.0.6045.193 Mobile Safari/537.36 trill_320403 BytedanceWebview/d8a21c6";

    fn ua_is_bot(ua: &str) -> bool {
        is_bot(Some(ua), BotSignals::default())
    }

    #[test]
    fn people_in_browsers_and_in_app_browsers_are_not_bots() {
        for ua in [CHROME, IPHONE_INSTAGRAM, CUBOT_PHONE, TIKTOK] {
            assert!(!ua_is_bot(ua), "{ua}");
        }
    }

    #[test]
    fn link_preview_crawlers_are_bots() {
        for ua in [
            "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)",
            "Twitterbot/1.0",
            "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)",
            "WhatsApp/2.23.20.0 A",
            "Mozilla/5.0 (compatible; Discordbot/2.0; +https://discordapp.com)",
            "TelegramBot (like TwitterBot)",
            "LinkedInBot/1.0 (compatible; Mozilla/5.0; Apache-HttpClient +http://www.linkedin.com)",
        ] {
            assert!(ua_is_bot(ua), "{ua}");
        }
    }

    #[test]
    fn search_engines_headless_browsers_and_scripts_are_bots() {
        for ua in [
            "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (Linux; Android 6.0.1; Nexus 5X Build/MMB29P) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.6367.155 Mobile Safari/537.36 (compatible; GoogleBot/2.1; +http://www.google.com/bot.html)",
            "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/124.0.0.0 Safari/537.36",
            "curl/8.5.0",
            "python-requests/2.31.0",
            "SomeNewBot/0.1",
        ] {
            assert!(ua_is_bot(ua), "{ua}");
        }
    }

    #[test]
    fn a_missing_or_blank_user_agent_is_a_bot() {
        assert!(is_bot(None, BotSignals::default()));
        assert!(is_bot(Some("  "), BotSignals::default()));
    }

    #[test]
    fn cloudflare_bot_management_overrides_the_user_agent() {
        let likely_automated = BotSignals { score: Some(1), verified_bot: false };
        assert!(is_bot(Some(CHROME), likely_automated));
        let borderline = BotSignals { score: Some(29), verified_bot: false };
        assert!(is_bot(Some(CHROME), borderline));
        let verified = BotSignals { score: Some(99), verified_bot: true };
        assert!(is_bot(Some(CHROME), verified));
    }

    #[test]
    fn human_or_absent_bot_scores_leave_the_user_agent_to_decide() {
        for score in [None, Some(0), Some(30), Some(99)] {
            let signals = BotSignals { score, verified_bot: false };
            assert!(!is_bot(Some(CHROME), signals), "{score:?}");
            assert!(is_bot(Some("Twitterbot/1.0"), signals), "{score:?}");
        }
    }
}
