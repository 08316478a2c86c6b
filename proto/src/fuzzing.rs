//! Entry points for fuzzing every decoder of bytes a peer sends (the `fuzz/` crate calls these, and
//! `proto/tests/fuzz_corpus.rs` replays the kept corpus through them in every test run). Each one must
//! return for any input; the assertions are properties a decoder must keep: what decodes re-encodes to
//! something that decodes to the same value, and a refusal is an error, never a panic.

use prost::Message;

use crate::holdings::Claims;
use crate::ledger_request::{Operation, SignedRequest};
use crate::profile::{check_ladder_floor, job_units, ladder_from_wire};
use crate::proof::ChunkProof;
use crate::ticket::{SignedTicket, TicketParams};
use crate::v1;

/// One fuzz target: it takes any bytes and must return.
pub type Target = fn(&[u8]);

/// The fuzz targets, by the name of their corpus directory.
pub const TARGETS: &[(&str, Target)] = &[
    ("ticket", ticket),
    ("proof", proof),
    ("ledger_request", ledger_request),
    ("ladder", ladder),
    ("worker_event", worker_event),
    ("upload_headers", upload_headers),
    ("slice", slice),
];

/// A signed ticket and ticket params as a client or worker sends them.
pub fn ticket(data: &[u8]) {
    if let Ok(wire) = v1::SignedTicket::decode(data)
        && let Ok(ticket) = SignedTicket::try_from(&wire)
    {
        let _ = ticket.verify();
        let _ = ticket.ticket.expected_value();
        let _ = ticket
            .ticket
            .check_live(u64::from(data.first().copied().unwrap_or(0)));
        let again = SignedTicket::try_from(&v1::SignedTicket::from(&ticket))
            .expect("a ticket's own wire form decodes");
        assert_eq!(again, ticket);
    }
    if let Ok(wire) = v1::TicketParams::decode(data)
        && let Ok(params) = TicketParams::try_from(&wire)
    {
        let _ = params.amount_owed(u64::from_le_bytes(pad(data)));
        let _ = params.expected_value();
        let again = TicketParams::try_from(&v1::TicketParams::from(&params))
            .expect("params' own wire form decode");
        assert_eq!(again, params);
    }
}

/// A chunk proof in a challenge answer, checked against a root and length taken from the input.
pub fn proof(data: &[u8]) {
    let (head, body) = data.split_at(data.len().min(40));
    let Ok(proof) = ChunkProof::from_bytes(body) else {
        return;
    };
    let mut root = [0u8; 32];
    root[..head.len().min(32)].copy_from_slice(&head[..head.len().min(32)]);
    let len = u64::from_le_bytes(pad(head.get(32..).unwrap_or(&[])));
    let _ = proof.verify(&blake3::Hash::from_bytes(root), len);
    if let Ok(bytes) = proof.to_bytes() {
        assert_eq!(ChunkProof::from_bytes(&bytes).expect("re-decodes"), proof);
    }
}

/// A signed ledger request (`Execute`), its operation included.
pub fn ledger_request(data: &[u8]) {
    if let Ok(operation) = Operation::decode(data) {
        assert_eq!(
            Operation::decode(&operation.encode()).expect("re-decodes"),
            operation
        );
    }
    let Ok(wire) = v1::LedgerRequest::decode(data) else {
        return;
    };
    let Ok(account) = crate::identity::PublicId::from_slice("account", &wire.account) else {
        return;
    };
    if let Ok(request) = SignedRequest::from_parts(account, wire.nonce, wire.operation, &wire.sig) {
        let _ = request.verify();
    }
}

/// A ladder as `Quote` and `Transcode` carry it, checked the way the coordinator checks it.
pub fn ladder(data: &[u8]) {
    let Ok(quote) = v1::QuoteRequest::decode(data) else {
        return;
    };
    if let Ok(profiles) = ladder_from_wire(&quote.profiles) {
        let rate = f64::from(u32::from_le_bytes(pad(data))) / 1000.0;
        let _ = check_ladder_floor(&profiles, rate);
        let _ = job_units(&profiles, quote.segment_size);
        let wire: Vec<v1::Profile> = profiles
            .iter()
            .map(crate::profile::Profile::to_wire)
            .collect();
        assert_eq!(ladder_from_wire(&wire).expect("re-validates"), profiles);
    }
}

/// Anything a worker sends on its Attach stream, holdings read as claims.
pub fn worker_event(data: &[u8]) {
    let Ok(event) = v1::WorkerEvent::decode(data) else {
        return;
    };
    match event.event {
        Some(v1::worker_event::Event::Holdings(report)) => {
            let claims = Claims::from_report(&report);
            assert!(claims.added.len() <= report.added.len());
            assert!(claims.removed.len() <= report.removed.len());
        }
        Some(v1::worker_event::Event::Params(params)) => {
            let _ = TicketParams::try_from(&params);
        }
        Some(v1::worker_event::Event::Answer(answer)) => {
            for proof in answer.blobs.iter().flat_map(|b| &b.proofs) {
                let _ = ChunkProof::from_bytes(proof);
            }
        }
        Some(v1::worker_event::Event::Result(result)) => {
            if let Ok(id) =
                crate::identity::PublicId::from_slice("worker", &data[..data.len().min(32)])
            {
                let _ = crate::result::verify_result(
                    &id,
                    &result.job_id,
                    &result.renditions,
                    &result.signature,
                );
            }
        }
        _ => {}
    }
}

/// The first message of a `Transcode` or `Put` upload: the header a client sends before any byte.
pub fn upload_headers(data: &[u8]) {
    if let Ok(v1::TranscodeUpload {
        part: Some(v1::transcode_upload::Part::Header(header)),
    }) = v1::TranscodeUpload::decode(data)
    {
        if let Ok(profiles) = ladder_from_wire(&header.profiles) {
            let _ = job_units(&profiles, header.segment_size);
        }
        for ticket in &header.payment {
            if let Ok(ticket) = SignedTicket::try_from(ticket) {
                let _ = ticket.verify();
            }
        }
    }
    if let Ok(v1::PutUpload {
        part: Some(v1::put_upload::Part::Header(header)),
    }) = v1::PutUpload::decode(data)
    {
        let _ = <[u8; 32]>::try_from(header.root.as_slice());
        let _ = crate::proof::chunk_count(header.size);
        let _ = crate::proof::outboard_len(header.size);
    }
}

/// A bao slice a holder serves for a `Get`, decoded against a root and range from the input: only
/// bytes that hash into the root come out.
pub fn slice(data: &[u8]) {
    use std::io::Read;

    let (head, body) = data.split_at(data.len().min(48));
    let mut root = [0u8; 32];
    root[..head.len().min(32)].copy_from_slice(&head[..head.len().min(32)]);
    let start = u64::from_le_bytes(pad(head.get(32..40).unwrap_or(&[]))) % (1 << 20);
    let len = u64::from_le_bytes(pad(head.get(40..).unwrap_or(&[]))) % (1 << 20);
    let root = blake3::Hash::from_bytes(root);
    let mut reader = crate::proof::slice::verified_reader(body, &root, start, len);
    let mut out = Vec::new();
    if reader.read_to_end(&mut out).is_ok() {
        assert!(out.len() as u64 <= len, "a slice yields at most its range");
    }
}

/// The first bytes of `data` as a fixed array, zero-padded.
fn pad<const N: usize>(data: &[u8]) -> [u8; N] {
    let mut out = [0u8; N];
    let n = data.len().min(N);
    out[..n].copy_from_slice(&data[..n]);
    out
}
