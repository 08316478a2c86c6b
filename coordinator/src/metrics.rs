//! Every metric the coordinator records, declared in one place, and the Prometheus exporter.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

pub const JOBS: &str = "dualrig_jobs_total";
pub const JOB_SECONDS: &str = "dualrig_job_duration_seconds";
pub const JOB_ATTEMPTS: &str = "dualrig_job_attempts_total";
pub const JOB_REASSIGNMENTS: &str = "dualrig_job_reassignments_total";
pub const WORKERS_CONNECTED: &str = "dualrig_workers_connected";
pub const PEER_LINKS: &str = "dualrig_peer_links";
pub const RELAYED: &str = "dualrig_relayed_total";
/// Directions of a link: opened by this coordinator, or to it.
pub const LINK_DIRECTIONS: &[&str] = &["dialed", "accepted"];
/// What crosses an accepted link: commands carried to a worker here, its answers sent back.
pub const RELAYED_KINDS: &[&str] = &["command", "answer"];
pub const BYTES_IN: &str = "dualrig_bytes_in_total";
pub const BYTES_OUT: &str = "dualrig_bytes_out_total";
pub const VERIFICATIONS: &str = "dualrig_verifications_total";
pub const REGISTRATIONS: &str = "dualrig_registrations_total";
pub const LEDGER_REQUESTS: &str = "dualrig_ledger_requests_total";
pub const LEDGER_ROUND: &str = "dualrig_ledger_round";
pub const LEDGER_GROUP: &str = "dualrig_ledger_requests_per_commit";
pub const SLASHES: &str = "dualrig_slashes_total";
pub const SLASHED_UNITS: &str = "dualrig_slashed_units_total";
pub const SUSPENSIONS: &str = "dualrig_suspensions_total";
pub const PAYMENTS: &str = "dualrig_payments_total";
pub const PAID_VALUE: &str = "dualrig_paid_expected_value_total";
pub const WORKER_STAKE: &str = "dualrig_worker_stake_units";
pub const KEPT_FRAMES_BYTES: &str = "dualrig_kept_source_frame_bytes";
pub const SIP_BALANCE: &str = "dualrig_sip_balance_units";
pub const SIP_INFLOW: &str = "dualrig_sip_inflow_units_total";
pub const SIP_WEIGHT_OUTSTANDING: &str = "dualrig_sip_weight_outstanding";

/// `outcome` of [`JOBS`] and [`JOB_SECONDS`].
pub const JOB_OUTCOMES: &[&str] = &["verified", "no_worker", "failed", "rejected"];
/// `outcome` of [`JOB_ATTEMPTS`].
pub const ATTEMPT_OUTCOMES: &[&str] = &[
    "verified",
    "rejected",
    "unchecked",
    "params_replaced",
    "payment_refused",
    "worker_error",
    "worker_lost",
    "timeout",
];
/// `kind` of [`BYTES_IN`].
pub const BYTES_IN_KINDS: &[&str] = &["segment", "rendition", "blob"];
/// `kind` of [`BYTES_OUT`].
pub const BYTES_OUT_KINDS: &[&str] = &["job", "result"];
/// (`kind`, `outcome`) pairs of [`VERIFICATIONS`]: each check has verdicts of its own.
pub const VERIFICATION_VERDICTS: &[(&str, &str)] = &[
    ("structural", "pass"),
    ("structural", "bad_signature"),
    ("structural", "bad_structure"),
    ("structural", "wrong_renditions"),
    ("structural", "error"),
    ("content", "pass"),
    ("content", "inconclusive"),
    ("content", "mismatch"),
    ("content", "error"),
];
/// `outcome` of [`REGISTRATIONS`].
pub const REGISTRATION_OUTCOMES: &[&str] = &["accepted", "refused"];
/// `operation` of [`LEDGER_REQUESTS`]: every ledger operation, and requests that decode to none.
pub const LEDGER_OPERATIONS: &[&str] = &[
    "transfer",
    "bond",
    "delegate",
    "unbond",
    "withdraw_unbonded",
    "deposit",
    "reserve",
    "unlock",
    "cancel_unlock",
    "withdraw",
    "redeem_ticket",
    "create_collective",
    "add_to_collective",
    "join_collective",
    "leave_collective",
    "buy_weight",
    "propose",
    "vote",
    "set_redirect",
    "malformed",
];
/// `outcome` of [`LEDGER_REQUESTS`].
pub const LEDGER_OUTCOMES: &[&str] = &["applied", "refused"];
/// `fault` of [`SLASHES`]: every [`crate::fault::Fault::kind`].
pub const SLASH_FAULTS: &[&str] = &[
    "forged",
    "renditions",
    "structure",
    "content",
    "storage_late",
    "storage_proof",
];
/// `outcome` of [`PAYMENTS`].
pub const PAYMENT_OUTCOMES: &[&str] = &["accepted", "quote_lost", "refused", "unfunded"];

/// Upper bounds of the [`JOB_SECONDS`] buckets: a segment's whole round trip.
const JOB_BUCKETS: &[f64] = &[0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0];
/// Upper bounds of the [`LEDGER_GROUP`] buckets: requests in one commit.
const GROUP_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0];
/// Upper bounds of the [`PROOF_SECONDS`] buckets: a challenge's round trip, up to its deadline.
const PROOF_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Upper bounds of the [`SURGE_MULTIPLIER`] buckets: ×1 up to the default cap of ×4 and beyond.
const SURGE_BUCKETS: &[f64] = &[1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 8.0, 16.0];

/// Starts the Prometheus endpoint on `addr`, describes every metric and registers every series.
/// Call it from inside a Tokio runtime.
pub fn install_exporter(addr: SocketAddr) -> Result<(), String> {
    let buckets = [
        (JOB_SECONDS, JOB_BUCKETS),
        (LEDGER_GROUP, GROUP_BUCKETS),
        (PROOF_SECONDS, PROOF_BUCKETS),
        (SURGE_MULTIPLIER, SURGE_BUCKETS),
    ];
    dualrig_proto::metrics_endpoint::serve(addr, &buckets, || {
        describe();
        describe_storage();
        describe_collectives();
        describe_sip();
        register();
        register_collectives();
        register_sip();
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// Every series with a closed label set, at zero, so that `rate()` and alerts see it before its
/// first event. Per-worker series ([`WORKER_STAKE`], [`BYTES_PROVEN`], [`HOSTING_REWARD`], [`HOSTING_CREDITED`])
/// appear when a worker is known.
fn register() {
    for &outcome in JOB_OUTCOMES {
        counter!(JOBS, "outcome" => outcome).increment(0);
        // A registered handle is enough for the exporter to render the empty buckets.
        let _ = histogram!(JOB_SECONDS, "outcome" => outcome);
    }
    for &outcome in ATTEMPT_OUTCOMES {
        counter!(JOB_ATTEMPTS, "outcome" => outcome).increment(0);
    }
    for &kind in BYTES_IN_KINDS {
        counter!(BYTES_IN, "kind" => kind).increment(0);
    }
    for &direction in LINK_DIRECTIONS {
        gauge!(PEER_LINKS, "direction" => direction).set(0.0);
    }
    for &kind in RELAYED_KINDS {
        counter!(RELAYED, "kind" => kind).increment(0);
    }
    for &kind in BYTES_OUT_KINDS {
        counter!(BYTES_OUT, "kind" => kind).increment(0);
    }
    for &(kind, outcome) in VERIFICATION_VERDICTS {
        counter!(VERIFICATIONS, "kind" => kind, "outcome" => outcome).increment(0);
    }
    for &outcome in REGISTRATION_OUTCOMES {
        counter!(REGISTRATIONS, "outcome" => outcome).increment(0);
    }
    for &operation in LEDGER_OPERATIONS {
        for &outcome in LEDGER_OUTCOMES {
            counter!(LEDGER_REQUESTS, "operation" => operation, "outcome" => outcome).increment(0);
        }
    }
    for &fault in SLASH_FAULTS {
        counter!(SLASHES, "fault" => fault).increment(0);
    }
    for &outcome in PAYMENT_OUTCOMES {
        counter!(PAYMENTS, "outcome" => outcome).increment(0);
    }
    for &outcome in CHALLENGE_OUTCOMES {
        counter!(CHALLENGES, "outcome" => outcome).increment(0);
    }
    for &outcome in PLACEMENT_OUTCOMES {
        counter!(BLOB_PLACEMENTS, "outcome" => outcome).increment(0);
    }
    for &payment in DOWNLOAD_PAYMENTS {
        counter!(DOWNLOAD_BYTES, "payment" => payment).increment(0);
    }
    for &by in DOWNLOAD_REFUSERS {
        counter!(DOWNLOAD_REFUSALS, "by" => by).increment(0);
    }
    for name in [
        JOB_REASSIGNMENTS,
        SLASHED_UNITS,
        SUSPENSIONS,
        PAID_VALUE,
        BLOB_REPAIRS,
        BLOB_GETS,
        SCRUB_DROPS,
        HOSTING_MINTED,
        DOWNLOAD_TICKETS,
    ] {
        counter!(name).increment(0);
    }
    for &input in HOSTING_INPUTS {
        gauge!(HOSTING_PAYOUT, "input" => input).set(0.0);
    }
    let _ = histogram!(LEDGER_GROUP);
    let _ = histogram!(PROOF_SECONDS);
    let _ = histogram!(SURGE_MULTIPLIER);
    hot_blobs(0);
    puts_waiting(0);
    workers_connected(0);
    kept_frames_bytes(0);
    ledger_round(0);
    replication(std::iter::empty());
    // No rendition has passed yet: NaN, which Prometheus and Grafana read as "no value".
    gauge!(CONTENT_LOWEST_PASS).set(f64::NAN);
}

/// `value`, which debug builds check is among `known` (the values registered at start), so a new
/// label value at a call site cannot stay missing from the page until its first use.
fn listed(value: &'static str, known: &[&str]) -> &'static str {
    debug_assert!(
        known.contains(&value),
        "metric label value {value:?} is not among {known:?}: add it there"
    );
    value
}

fn describe() {
    describe_gauge!(
        HOSTING_PAYOUT,
        "The last hosting payout's inputs: ledger round, rounds covered, minted, download fees, budget (base units), credited bytes, workers paid, dust"
    );
    describe_counter!(HOSTING_MINTED, "Base units minted for hosting rewards");
    describe_counter!(
        HOSTING_REWARD,
        "Hosting rewards per worker, base units, paid at once or held back"
    );
    describe_counter!(
        HOSTING_CREDITED,
        metrics::Unit::Bytes,
        "Bytes each worker's proofs were credited for in hosting payouts (sampling-corrected, boosted)"
    );
    describe_counter!(PAYMENTS, "Job payments checked at upload, by outcome");
    describe_counter!(
        PAID_VALUE,
        "Expected value of the tickets of accepted job payments"
    );
    describe_counter!(JOBS, "Transcode jobs finished, by outcome");
    describe_histogram!(
        JOB_SECONDS,
        metrics::Unit::Seconds,
        "Time from upload to verified result"
    );
    describe_counter!(JOB_ATTEMPTS, "Job attempts on workers, by outcome");
    describe_counter!(
        JOB_REASSIGNMENTS,
        "Jobs handed to another worker after an attempt failed"
    );
    describe_gauge!(WORKERS_CONNECTED, "Workers attached right now");
    describe_gauge!(
        PEER_LINKS,
        "Links to and from the other coordinators sharing the database"
    );
    describe_counter!(
        RELAYED,
        "Messages carried for other coordinators to and from the workers attached here, by kind"
    );
    describe_gauge!(
        KEPT_FRAMES_BYTES,
        metrics::Unit::Bytes,
        "Memory budgeted for source frames kept for content checks"
    );
    describe_gauge!(
        WORKER_STAKE,
        "Stake bonded on each worker (self-bond plus delegations), base units"
    );
    describe_counter!(
        BYTES_IN,
        metrics::Unit::Bytes,
        "Bytes received, by kind (segment, rendition, blob)"
    );
    describe_counter!(
        BYTES_OUT,
        metrics::Unit::Bytes,
        "Bytes sent, by kind (job, result)"
    );
    describe_counter!(VERIFICATIONS, "Result verifications, by kind and outcome");
    describe_counter!(REGISTRATIONS, "Worker registrations, by outcome");
    describe_counter!(
        LEDGER_REQUESTS,
        "Signed ledger requests, by operation and outcome"
    );
    describe_gauge!(LEDGER_ROUND, "The ledger's current round");
    describe_histogram!(
        LEDGER_GROUP,
        "Signed ledger requests applied in one fsync'd transaction (group commit)"
    );
    describe_counter!(
        SLASHES,
        "Slashes by the kind of fault (forged, renditions, structure, content, storage_late, storage_proof)"
    );
    describe_counter!(SLASHED_UNITS, "Stake units moved to the pool by slashes");
    describe_counter!(SUSPENSIONS, "Workers suspended after a slash");
    describe_gauge!(
        CONTENT_LOWEST_PASS,
        "Lowest block PSNR (dB) of a rendition that passed the content check since start (NaN before the first)"
    );
}

pub fn ledger_group(requests: usize) {
    histogram!(LEDGER_GROUP).record(requests as f64);
}

pub fn job_finished(outcome: &'static str, elapsed: Duration) {
    let outcome = listed(outcome, JOB_OUTCOMES);
    counter!(JOBS, "outcome" => outcome).increment(1);
    histogram!(JOB_SECONDS, "outcome" => outcome).record(elapsed.as_secs_f64());
}

pub fn attempt(outcome: &'static str) {
    counter!(JOB_ATTEMPTS, "outcome" => listed(outcome, ATTEMPT_OUTCOMES)).increment(1);
}

pub fn reassigned() {
    counter!(JOB_REASSIGNMENTS).increment(1);
}

/// Stake bonded on a worker (self-bond plus delegations), by worker id.
pub fn worker_stake(worker: &dualrig_proto::identity::PublicId, units: u64) {
    gauge!(WORKER_STAKE, "worker" => worker.to_hex()).set(units as f64);
}

pub fn workers_connected(n: usize) {
    gauge!(WORKERS_CONNECTED).set(n as f64);
}

/// Links this coordinator keeps open to the others.
pub fn links_dialed(n: usize) {
    gauge!(PEER_LINKS, "direction" => "dialed").set(n as f64);
}

/// One link to this coordinator opened (`1`) or ended (`-1`).
pub fn link_accepted(change: i64) {
    gauge!(PEER_LINKS, "direction" => "accepted").increment(change as f64);
}

/// One message carried for another coordinator (`kind`: one of [`RELAYED_KINDS`]).
pub fn relayed(kind: &'static str) {
    counter!(RELAYED, "kind" => kind).increment(1);
}

pub fn kept_frames_bytes(bytes: u64) {
    gauge!(KEPT_FRAMES_BYTES).set(bytes as f64);
}

pub fn bytes_in(kind: &'static str, n: usize) {
    counter!(BYTES_IN, "kind" => listed(kind, BYTES_IN_KINDS)).increment(n as u64);
}

pub fn bytes_out(kind: &'static str, n: usize) {
    counter!(BYTES_OUT, "kind" => listed(kind, BYTES_OUT_KINDS)).increment(n as u64);
}

pub fn verification(kind: &'static str, outcome: &'static str) {
    debug_assert!(
        VERIFICATION_VERDICTS.contains(&(kind, outcome)),
        "verification {kind}/{outcome} is not among VERIFICATION_VERDICTS: add it there"
    );
    counter!(VERIFICATIONS, "kind" => kind, "outcome" => outcome).increment(1);
}

pub fn registration(outcome: &'static str) {
    counter!(REGISTRATIONS, "outcome" => listed(outcome, REGISTRATION_OUTCOMES)).increment(1);
}

pub fn ledger_request(operation: &'static str, outcome: &'static str) {
    let operation = listed(operation, LEDGER_OPERATIONS);
    let outcome = listed(outcome, LEDGER_OUTCOMES);
    counter!(LEDGER_REQUESTS, "operation" => operation, "outcome" => outcome).increment(1);
}

pub fn ledger_round(round: u64) {
    gauge!(LEDGER_ROUND).set(round as f64);
}

pub fn slashed(units: u64, fault: &'static str) {
    counter!(SLASHES, "fault" => listed(fault, SLASH_FAULTS)).increment(1);
    counter!(SLASHED_UNITS).increment(units);
}

pub fn suspended() {
    counter!(SUSPENSIONS).increment(1);
}

pub fn payment(outcome: &'static str, expected_value: u64) {
    counter!(PAYMENTS, "outcome" => listed(outcome, PAYMENT_OUTCOMES)).increment(1);
    counter!(PAID_VALUE).increment(expected_value);
}

/// Lowest block PSNR, in dB, of a rendition that passed the content check since the coordinator started.
pub const CONTENT_LOWEST_PASS: &str = "dualrig_content_check_lowest_pass_db";

pub fn content_lowest_pass(score_db: f64) {
    gauge!(CONTENT_LOWEST_PASS).set(score_db);
}

pub const HOSTING_PAYOUT: &str = "dualrig_hosting_last_payout";
pub const HOSTING_MINTED: &str = "dualrig_hosting_minted_units_total";
pub const HOSTING_REWARD: &str = "dualrig_hosting_reward_units_total";
pub const HOSTING_CREDITED: &str = "dualrig_hosting_credited_bytes_total";
/// `input` of [`HOSTING_PAYOUT`]: what the last payout was computed from, and what it split.
pub const HOSTING_INPUTS: &[&str] = &[
    "round",
    "rounds_covered",
    "minted",
    "fees",
    "budget",
    "credited_bytes",
    "workers",
    "dust",
];

/// The inputs and shares of one hosting payout (PROTOCOL §6.9). An empty one (nobody proved, or the
/// round had paid) changes only the round and the rounds it covered.
pub fn hosting_paid(payout: &crate::ledger::Payout) {
    let r = &payout.round;
    for (input, value) in HOSTING_INPUTS.iter().zip([
        r.round,
        r.rounds_covered,
        r.minted,
        r.fees,
        r.budget,
        r.credited,
        r.workers,
        r.dust,
    ]) {
        gauge!(HOSTING_PAYOUT, "input" => *input).set(value as f64);
    }
    counter!(HOSTING_MINTED).increment(r.minted);
    for share in &payout.shares {
        let worker = share.worker.to_hex();
        counter!(HOSTING_REWARD, "worker" => worker.clone(), "part" => "paid")
            .increment(share.reward - share.held);
        counter!(HOSTING_REWARD, "worker" => worker.clone(), "part" => "held")
            .increment(share.held);
        counter!(HOSTING_CREDITED, "worker" => worker).increment(share.credited);
    }
}

pub const CHALLENGES: &str = "dualrig_storage_challenges_total";
pub const BYTES_PROVEN: &str = "dualrig_storage_bytes_proven_total";
pub const PROOF_SECONDS: &str = "dualrig_storage_proof_latency_seconds";
pub const BLOBS_BY_REPLICATION: &str = "dualrig_storage_blobs";
pub const FEWEST_COPIES: &str = "dualrig_storage_fewest_copies";
pub const BLOB_PLACEMENTS: &str = "dualrig_storage_placements_total";
pub const BLOB_REPAIRS: &str = "dualrig_storage_repaired_copies_total";
pub const BLOB_GETS: &str = "dualrig_storage_gets_total";
pub const SCRUB_DROPS: &str = "dualrig_storage_scrub_dropped_total";
pub const DOWNLOAD_BYTES: &str = "dualrig_storage_download_bytes_total";
pub const DOWNLOAD_TICKETS: &str = "dualrig_storage_download_tickets_forwarded_total";
pub const DOWNLOAD_REFUSALS: &str = "dualrig_storage_download_payments_refused_total";
pub const HOT_BLOBS: &str = "dualrig_storage_hot_blobs";
pub const PUTS_WAITING: &str = "dualrig_storage_puts_waiting";
pub const SURGE_MULTIPLIER: &str = "dualrig_storage_surge_multiplier";

/// `outcome` of [`CHALLENGES`].
pub const CHALLENGE_OUTCOMES: &[&str] = &["passed", "failed", "late"];
/// `outcome` of [`BLOB_PLACEMENTS`].
pub const PLACEMENT_OUTCOMES: &[&str] = &["stored", "refused"];
/// `payment` of [`DOWNLOAD_BYTES`].
pub const DOWNLOAD_PAYMENTS: &[&str] = &["paid", "free"];
/// `by` of [`DOWNLOAD_REFUSALS`]: who refused a download's payment.
pub const DOWNLOAD_REFUSERS: &[&str] = &["coordinator", "holder"];

fn describe_storage() {
    describe_counter!(
        CHALLENGES,
        "Challenged blobs, by outcome (passed, failed, late)"
    );
    describe_counter!(
        BYTES_PROVEN,
        metrics::Unit::Bytes,
        "Bytes of blobs proven, by worker"
    );
    describe_histogram!(
        PROOF_SECONDS,
        metrics::Unit::Seconds,
        "Time from sending a challenge to its answer"
    );
    describe_gauge!(
        BLOBS_BY_REPLICATION,
        "Kept blobs by replication (replicated, under_replicated, lost)"
    );
    describe_gauge!(
        FEWEST_COPIES,
        "Fewest holders of any kept blob (0 while none is kept)"
    );
    describe_counter!(BLOB_PLACEMENTS, "Blob copies pushed to workers, by outcome");
    describe_counter!(
        BLOB_REPAIRS,
        "Copies made to bring blobs back to their replicas"
    );
    describe_counter!(BLOB_GETS, "Gets served");
    describe_counter!(
        DOWNLOAD_BYTES,
        metrics::Unit::Bytes,
        "Bytes of ranges served to Gets in full, by payment (paid, free)"
    );
    describe_gauge!(PUTS_WAITING, "Puts waiting for workers with room right now");
    describe_gauge!(
        HOT_BLOBS,
        "Blobs whose surge multiplier is above 1, as of the last repair pass"
    );
    describe_histogram!(
        SURGE_MULTIPLIER,
        "Surge multiplier of a blob each time a Get adds to its demand (1 = no surge)"
    );
    describe_counter!(
        DOWNLOAD_TICKETS,
        "Tickets forwarded to holders for paid downloads"
    );
    describe_counter!(
        DOWNLOAD_REFUSALS,
        "Paid downloads whose payment was refused, by who refused it (coordinator, holder)"
    );
    describe_counter!(
        SCRUB_DROPS,
        "Blobs workers' scrubs found damaged and dropped"
    );
}

pub fn challenge(outcome: &'static str) {
    counter!(CHALLENGES, "outcome" => listed(outcome, CHALLENGE_OUTCOMES)).increment(1);
}

pub fn bytes_proven(worker: &dualrig_proto::identity::PublicId, bytes: u64) {
    counter!(BYTES_PROVEN, "worker" => worker.to_string()).increment(bytes);
}

pub fn proof_latency(elapsed: Duration) {
    histogram!(PROOF_SECONDS).record(elapsed.as_secs_f64());
}

/// Replication of every kept blob, as (holders, replicas) pairs.
pub fn replication(blobs: impl Iterator<Item = (usize, usize)>) {
    let (mut replicated, mut under, mut lost, mut fewest) = (0u64, 0u64, 0u64, usize::MAX);
    for (holders, replicas) in blobs {
        fewest = fewest.min(holders);
        match holders {
            0 => lost += 1,
            h if h < replicas => under += 1,
            _ => replicated += 1,
        }
    }
    gauge!(BLOBS_BY_REPLICATION, "state" => "replicated").set(replicated as f64);
    gauge!(BLOBS_BY_REPLICATION, "state" => "under_replicated").set(under as f64);
    gauge!(BLOBS_BY_REPLICATION, "state" => "lost").set(lost as f64);
    let fewest = if fewest == usize::MAX { 0 } else { fewest };
    gauge!(FEWEST_COPIES).set(fewest as f64);
}

pub fn blob_placed(outcome: &'static str) {
    counter!(BLOB_PLACEMENTS, "outcome" => listed(outcome, PLACEMENT_OUTCOMES)).increment(1);
}

pub fn repaired(copies: usize) {
    counter!(BLOB_REPAIRS).increment(copies as u64);
}

/// A Get's range of `bytes` reached its reader in full, `paid` or free.
pub fn download_served(bytes: u64, paid: bool) {
    let payment = if paid { "paid" } else { "free" };
    counter!(DOWNLOAD_BYTES, "payment" => payment).increment(bytes);
}

pub fn hot_blobs(count: usize) {
    gauge!(HOT_BLOBS).set(count as f64);
}

pub fn puts_waiting(count: usize) {
    gauge!(PUTS_WAITING).set(count as f64);
}

pub fn surge_multiplier(ppm: u32) {
    histogram!(SURGE_MULTIPLIER).record(f64::from(ppm) / 1e6);
}

pub fn download_tickets_forwarded(count: usize) {
    counter!(DOWNLOAD_TICKETS).increment(count as u64);
}

/// A download's payment was refused by `by` (one of [`DOWNLOAD_REFUSERS`]).
pub fn download_refused(by: &'static str) {
    counter!(DOWNLOAD_REFUSALS, "by" => listed(by, DOWNLOAD_REFUSERS)).increment(1);
}

pub fn blob_served() {
    counter!(BLOB_GETS).increment(1);
}

pub fn scrub_reported(blobs: usize) {
    counter!(SCRUB_DROPS).increment(blobs as u64);
}

pub const COLLECTIVE_MEMBERS: &str = "dualrig_collective_members";
pub const COLLECTIVE_STAKE: &str = "dualrig_collective_access_stake_units";
pub const COLLECTIVE_GETS: &str = "dualrig_collective_gets_total";

/// `outcome` of [`COLLECTIVE_GETS`].
pub const COLLECTIVE_GET_OUTCOMES: &[&str] = &[
    "served",
    "not_member",
    "unauthenticated",
    "allotment_used",
    "error",
];

fn describe_sip() {
    describe_gauge!(
        SIP_BALANCE,
        "Base units in the service infrastructure pool (the SIP)"
    );
    describe_counter!(
        SIP_INFLOW,
        "Base units that entered the SIP since genesis, by source (fees, mint, purchases, slashes, forfeits, dust)"
    );
    describe_gauge!(
        SIP_WEIGHT_OUTSTANDING,
        "Mining weight bought from the SIP and not yet bled back"
    );
}

fn register_sip() {
    for source in crate::ledger::SipSource::ALL {
        if source != crate::ledger::SipSource::Rewards {
            counter!(SIP_INFLOW, "source" => source.name()).increment(0);
        }
    }
    gauge!(SIP_BALANCE).increment(0.0);
    gauge!(SIP_WEIGHT_OUTSTANDING).increment(0.0);
}

/// The SIP's figures as the ledger holds them: counters are set to the ledger's totals, so a restart
/// picks up where the ledger is.
pub fn sip(status: &crate::ledger::SipStatus) {
    gauge!(SIP_BALANCE).set(status.balance as f64);
    gauge!(SIP_WEIGHT_OUTSTANDING).set(status.weight_outstanding as f64);
    for (source, amount_in, _) in &status.totals {
        if *source != crate::ledger::SipSource::Rewards {
            counter!(SIP_INFLOW, "source" => source.name()).absolute(*amount_in);
        }
    }
}

fn describe_collectives() {
    describe_gauge!(
        COLLECTIVE_MEMBERS,
        "Members of every collective together (one account in two collectives counts twice)"
    );
    describe_gauge!(
        COLLECTIVE_STAKE,
        "Access stake members have locked in collectives, base units"
    );
    describe_counter!(
        COLLECTIVE_GETS,
        "Gets of collectives' blobs, by outcome (served, not_member, unauthenticated, allotment_used, error)"
    );
}

fn register_collectives() {
    for &outcome in COLLECTIVE_GET_OUTCOMES {
        counter!(COLLECTIVE_GETS, "outcome" => outcome).increment(0);
    }
    collective_totals(0, 0);
}

pub fn collective_get(outcome: &'static str) {
    counter!(COLLECTIVE_GETS, "outcome" => listed(outcome, COLLECTIVE_GET_OUTCOMES)).increment(1);
}

pub fn collective_totals(members: u64, stake: u64) {
    gauge!(COLLECTIVE_MEMBERS).set(members as f64);
    gauge!(COLLECTIVE_STAKE).set(stake as f64);
}
