//! The fuzzing corpus (`fuzz/corpus/<target>/`) replayed through every fuzz target as an ordinary test:
//! each input the fuzzer kept (seeds, coverage it found, and any crash it found, once fixed) must go
//! through its decoder without a panic. `write_seed_corpus` (ignored; run by hand) writes the valid
//! messages the fuzzer starts from.

use std::path::{Path, PathBuf};

use dualrig_proto::fuzzing::TARGETS;
use prost::Message;

fn corpus_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/corpus")
        .join(target)
}

#[test]
fn the_kept_corpus_replays_through_every_target() {
    for (target, run) in TARGETS {
        let dir = corpus_dir(target);
        let inputs: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{target}: no corpus at {}: {e}", dir.display()))
            .map(|e| e.expect("corpus entry").path())
            .collect();
        assert!(!inputs.is_empty(), "{target}: empty corpus");
        for input in &inputs {
            let data = std::fs::read(input).expect("corpus input");
            run(&data);
        }
        eprintln!("{target}: {} inputs", inputs.len());
    }
}

#[test]
#[ignore = "writes the seed corpus into fuzz/corpus; run by hand before fuzzing"]
fn write_seed_corpus() {
    use dualrig_proto::identity::Identity;
    use dualrig_proto::ledger_request::{Operation, SignedRequest};
    use dualrig_proto::profile::{DEFAULT_LADDER, Profile};
    use dualrig_proto::proof::ChunkProof;
    use dualrig_proto::ticket::{SignedTicket, TicketTerms, TicketValidator};
    use dualrig_proto::v1;

    let sender = Identity::generate();
    let worker = Identity::generate();
    let mut validator = TicketValidator::with_random_secret(worker.id(), 1);
    let params = validator
        .issue_random(TicketTerms {
            face_value: 1_000_000,
            win_prob: u64::MAX / 100,
            expiration_round: 10,
            price_per_unit: 3,
            price_per_byte: 0,
        })
        .expect("params");
    let ticket = SignedTicket::sign(params.ticket(sender.id(), 7), &sender);
    let wire_ticket = v1::SignedTicket::from(&ticket);
    let wire_params = v1::TicketParams::from(&params);

    let blob: Vec<u8> = (0..5000u32).map(|i| (i * 7 % 251) as u8).collect();
    let (outboard, root) = bao::encode::outboard(&blob);
    let proof = ChunkProof::from_outboard(&outboard, 2, blob[2048..3072].to_vec()).expect("proof");
    let proof_bytes = proof.to_bytes().expect("encodes");
    let mut proof_input = root.as_bytes().to_vec();
    proof_input.extend_from_slice(&(blob.len() as u64).to_le_bytes());
    proof_input.extend_from_slice(&proof_bytes);

    let (encoded, _) = bao::encode::encode(&blob);
    let mut slice = Vec::new();
    std::io::Read::read_to_end(
        &mut bao::encode::SliceExtractor::new(std::io::Cursor::new(&encoded), 1000, 2000),
        &mut slice,
    )
    .expect("slice");
    let mut slice_input = root.as_bytes().to_vec();
    slice_input.extend_from_slice(&1000u64.to_le_bytes());
    slice_input.extend_from_slice(&2000u64.to_le_bytes());
    slice_input.extend_from_slice(&slice);

    let ladder: Vec<v1::Profile> = Profile::parse_list(&DEFAULT_LADDER.join(","))
        .expect("ladder")
        .iter()
        .map(Profile::to_wire)
        .collect();
    let operation = Operation::Transfer {
        to: worker.id(),
        amount: 5,
    };
    let request = SignedRequest::sign(&sender, 3, &operation);
    let redeem = Operation::Bond { amount: 9 };

    let seeds: Vec<(&str, &str, Vec<u8>)> = vec![
        ("ticket", "signed-ticket", wire_ticket.encode_to_vec()),
        ("ticket", "params", wire_params.encode_to_vec()),
        ("proof", "chunk-2-of-5", proof_input),
        ("ledger_request", "operation-transfer", operation.encode()),
        ("ledger_request", "operation-bond", redeem.encode()),
        (
            "ledger_request",
            "signed-transfer",
            v1::LedgerRequest {
                account: sender.id().as_bytes().to_vec(),
                nonce: request.nonce,
                operation: request.operation.clone(),
                sig: request.sig.to_vec(),
            }
            .encode_to_vec(),
        ),
        (
            "ladder",
            "default-ladder",
            v1::QuoteRequest {
                profiles: ladder.clone(),
                segment_size: 1 << 20,
            }
            .encode_to_vec(),
        ),
        (
            "worker_event",
            "holdings",
            v1::WorkerEvent {
                event: Some(v1::worker_event::Event::Holdings(v1::Holdings {
                    full: true,
                    added: vec![v1::BlobRef {
                        root: root.as_bytes().to_vec(),
                        size: 5000,
                    }],
                    removed: vec![vec![9; 32]],
                    free_bytes: 1 << 30,
                    capacity_bytes: 1 << 31,
                    corrupt: Vec::new(),
                })),
            }
            .encode_to_vec(),
        ),
        (
            "worker_event",
            "answer",
            v1::WorkerEvent {
                event: Some(v1::worker_event::Event::Answer(v1::ChallengeAnswer {
                    challenge_id: "c1".into(),
                    blobs: vec![v1::BlobProofs {
                        root: root.as_bytes().to_vec(),
                        proofs: vec![proof_bytes.clone()],
                        error: String::new(),
                    }],
                })),
            }
            .encode_to_vec(),
        ),
        (
            "worker_event",
            "params",
            v1::WorkerEvent {
                event: Some(v1::worker_event::Event::Params(wire_params.clone())),
            }
            .encode_to_vec(),
        ),
        (
            "upload_headers",
            "transcode-header",
            v1::TranscodeUpload {
                part: Some(v1::transcode_upload::Part::Header(v1::TranscodeHeader {
                    profiles: ladder,
                    segment_size: 1 << 20,
                    label: "movie.mp4#3".into(),
                    quote_id: "q".into(),
                    payment: vec![wire_ticket],
                })),
            }
            .encode_to_vec(),
        ),
        (
            "upload_headers",
            "put-header",
            v1::PutUpload {
                part: Some(v1::put_upload::Part::Header(v1::PutHeader {
                    collective: String::new(),
                    root: root.as_bytes().to_vec(),
                    size: 5000,
                    replicas: 3,
                })),
            }
            .encode_to_vec(),
        ),
        ("slice", "range-1000-2000-of-5000", slice_input),
    ];
    for (target, name, bytes) in seeds {
        let dir = corpus_dir(target);
        std::fs::create_dir_all(&dir).expect("corpus dir");
        std::fs::write(dir.join(format!("seed-{name}")), bytes).expect("seed");
    }
}
