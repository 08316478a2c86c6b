#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| dualrig_proto::fuzzing::upload_headers(data));
