#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dualrig_proto::fuzzing::ledger_request(data));
