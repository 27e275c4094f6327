//! Link records, as the worker's sync route receives them (`PUT` of `{"key", "value"}` entries, and
//! deletes) and as it reads them back from KV: never a panic, and an accepted record survives a write
//! and a read unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use shared::LinkRecord;

fuzz_target!(|data: &[u8]| {
    let _ = edge_worker::sync::parse_writes(data);
    let _ = edge_worker::sync::parse_deletes(data);
    let Ok(input) = std::str::from_utf8(data) else { return };
    let Ok(record) = LinkRecord::from_json(input) else { return };
    let written = record.to_json();
    assert_eq!(LinkRecord::from_json(&written).expect("a written record parses"), record, "{written}");
});
