//! Tracking codes, as the edge and the API parse them from a path: never a panic, and a parsed code is
//! canonical (8 characters of the alphabet, lowercase) and parses back to itself.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::{Code, CODE_ALPHABET, CODE_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else { return };
    let parsed = Code::parse(input);
    assert_eq!(parsed, input.parse::<Code>());
    if let Ok(code) = parsed {
        let text = code.as_str();
        assert_eq!(text.len(), CODE_LEN);
        assert!(text.bytes().all(|b| CODE_ALPHABET.contains(&b)), "{text}");
        assert!(text.eq_ignore_ascii_case(input), "{input:?} -> {text}");
        assert_eq!(Code::parse(text), Ok(code));
    }
});
