//! Every metric the worker records, declared in one place, and the Prometheus exporter. Each function
//! here also feeds the dashboard's state ([`crate::dashboard::status`]), so an event is recorded once,
//! where it happens.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram};

use crate::dashboard::status::{self, ScrubRun, now_unix_ms, record};

pub const JOBS: &str = "dualrig_worker_jobs_total";
pub const TRANSCODE_SECONDS: &str = "dualrig_worker_transcode_seconds";
pub const BYTES_IN: &str = "dualrig_worker_bytes_in_total";
pub const BYTES_OUT: &str = "dualrig_worker_bytes_out_total";
pub const CONNECTIONS: &str = "dualrig_worker_connections_total";
pub const TICKETS: &str = "dualrig_worker_tickets_total";
pub const REDEMPTIONS: &str = "dualrig_worker_redemptions_total";
pub const REDEEMED_VALUE: &str = "dualrig_worker_redeemed_value_total";
pub const BLOBS: &str = "dualrig_worker_blobs_total";
pub const STORE_BYTES: &str = "dualrig_worker_store_bytes";
pub const STORE_BLOBS: &str = "dualrig_worker_store_blobs";
pub const PROOFS: &str = "dualrig_worker_proofs_total";
pub const CHALLENGE_SECONDS: &str = "dualrig_worker_challenge_seconds";
pub const SCRUBBED: &str = "dualrig_worker_scrubbed_blobs_total";
pub const SESSIONS: &str = "dualrig_worker_sessions";
pub const RELOADS: &str = "dualrig_worker_config_reloads_total";
pub const SERVED_BYTES: &str = "dualrig_worker_served_bytes_total";
pub const DOWNLOAD_PAYMENTS: &str = "dualrig_worker_download_payments_total";
pub const COORDINATOR_ATTACHED: &str = "dualrig_worker_coordinator_attached";
pub const COORDINATOR_SWITCHES: &str = "dualrig_worker_coordinator_switches_total";
pub const UNDELIVERED: &str = "dualrig_worker_undelivered_outcomes_total";

/// `outcome` of [`JOBS`].
pub const JOB_OUTCOMES: &[&str] = &["done", "failed", "payment_refused", "crashed"];
/// `outcome` of [`CONNECTIONS`].
pub const CONNECTION_OUTCOMES: &[&str] = &["attached", "ended"];
/// `outcome` of [`TICKETS`].
pub const TICKET_OUTCOMES: &[&str] = &["received", "won", "refused"];
/// `outcome` of [`REDEMPTIONS`].
pub const REDEMPTION_OUTCOMES: &[&str] = &["paid", "refused", "given_up", "retry"];
/// `outcome` of [`BLOBS`].
pub const BLOB_OUTCOMES: &[&str] = &["stored", "refused", "served"];
/// `outcome` of [`SCRUBBED`].
pub const SCRUB_OUTCOMES: &[&str] = &["sound", "dropped"];
/// `outcome` of [`RELOADS`].
pub const RELOAD_OUTCOMES: &[&str] = &["applied", "refused"];
/// `payment` of [`SERVED_BYTES`].
pub const SERVED_PAYMENTS: &[&str] = &["paid", "free"];
/// `outcome` of [`DOWNLOAD_PAYMENTS`].
pub const DOWNLOAD_PAYMENT_OUTCOMES: &[&str] = &["accepted", "refused"];

/// Upper bounds of the [`TRANSCODE_SECONDS`] buckets: one segment to its whole ladder.
const TRANSCODE_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0];
/// Upper bounds of the [`CHALLENGE_SECONDS`] buckets: reading and proving the challenged chunks.
const CHALLENGE_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Starts the Prometheus endpoint on `addr`, describes every metric and registers every series, one
/// [`COORDINATOR_ATTACHED`] for each of `coordinators`. Call it from inside a Tokio runtime.
pub fn install_exporter(addr: SocketAddr, coordinators: &[String]) -> Result<(), String> {
    let buckets = [
        (TRANSCODE_SECONDS, TRANSCODE_BUCKETS),
        (CHALLENGE_SECONDS, CHALLENGE_BUCKETS),
    ];
    dualrig_proto::metrics_endpoint::serve(addr, &buckets, || {
        describe();
        register();
        for url in coordinators {
            gauge!(COORDINATOR_ATTACHED, "coordinator" => url.clone()).set(0.0);
        }
    })
    .map_err(|e| e.to_string())?;
    Ok(())
}

/// Every series at zero, so that `rate()` and alerts see it before its first event.
fn register() {
    for (name, outcomes) in [
        (JOBS, JOB_OUTCOMES),
        (CONNECTIONS, CONNECTION_OUTCOMES),
        (TICKETS, TICKET_OUTCOMES),
        (REDEMPTIONS, REDEMPTION_OUTCOMES),
        (BLOBS, BLOB_OUTCOMES),
        (SCRUBBED, SCRUB_OUTCOMES),
        (RELOADS, RELOAD_OUTCOMES),
        (DOWNLOAD_PAYMENTS, DOWNLOAD_PAYMENT_OUTCOMES),
    ] {
        for &outcome in outcomes {
            counter!(name, "outcome" => outcome).increment(0);
        }
    }
    for &payment in SERVED_PAYMENTS {
        counter!(SERVED_BYTES, "payment" => payment).increment(0);
    }
    for name in [
        BYTES_IN,
        BYTES_OUT,
        REDEEMED_VALUE,
        PROOFS,
        COORDINATOR_SWITCHES,
        UNDELIVERED,
    ] {
        counter!(name).increment(0);
    }
    // A registered handle is enough for the exporter to render the empty buckets.
    let _ = histogram!(TRANSCODE_SECONDS);
    let _ = histogram!(CHALLENGE_SECONDS);
    // The store's real figures replace these as soon as it opens.
    gauge!(STORE_BYTES).set(0.0);
    gauge!(STORE_BLOBS).set(0.0);
    // 0 until the encoder probe at start has said how many jobs run at once.
    gauge!(SESSIONS).set(0.0);
}

fn describe() {
    describe_counter!(JOBS, "Transcode jobs, by outcome");
    describe_histogram!(
        TRANSCODE_SECONDS,
        metrics::Unit::Seconds,
        "Time to transcode one segment to its whole ladder"
    );
    describe_counter!(BYTES_IN, metrics::Unit::Bytes, "Segment bytes received");
    describe_counter!(BYTES_OUT, metrics::Unit::Bytes, "Rendition bytes sent");
    describe_counter!(CONNECTIONS, "Connections to the coordinator, by outcome");
    describe_gauge!(
        COORDINATOR_ATTACHED,
        "1 for the coordinator (by URL) the worker is attached to, 0 for the others it may serve"
    );
    describe_counter!(
        COORDINATOR_SWITCHES,
        "Attaches to a coordinator other than the one attached before"
    );
    describe_counter!(
        UNDELIVERED,
        "Job outcomes dropped because the session with the coordinator that assigned the job ended"
    );
    describe_counter!(
        TICKETS,
        "Payment tickets, by outcome (received, won, refused)"
    );
    describe_counter!(REDEMPTIONS, "Ticket redemption tries, by outcome");
    describe_counter!(
        REDEEMED_VALUE,
        "Units paid to the worker by redeemed tickets"
    );
    describe_counter!(
        BLOBS,
        "Blob transfers, by outcome (stored, refused, served)"
    );
    describe_gauge!(
        STORE_BYTES,
        metrics::Unit::Bytes,
        "Bytes the blob store occupies, outboards included"
    );
    describe_gauge!(STORE_BLOBS, "Blobs in the store");
    describe_counter!(PROOFS, "Chunk proofs produced for challenges");
    describe_histogram!(
        CHALLENGE_SECONDS,
        metrics::Unit::Seconds,
        "Time to answer one challenge"
    );
    describe_counter!(
        SCRUBBED,
        "Blobs rehashed by scrubs, by outcome (sound, dropped)"
    );
    describe_gauge!(SESSIONS, "Jobs the worker runs at once");
    describe_counter!(
        SERVED_BYTES,
        metrics::Unit::Bytes,
        "Blob bytes served to downloads, by payment (paid, free)"
    );
    describe_counter!(
        DOWNLOAD_PAYMENTS,
        "Paid downloads' payments, by outcome (accepted, refused)"
    );
    describe_counter!(
        RELOADS,
        "Config reloads on SIGHUP, by outcome (applied, refused)"
    );
}

/// What the worker runs with, once it is prepared; it serves `coordinators`, from `first`.
pub fn started(
    id: &str,
    coordinators: &[String],
    first: &str,
    capabilities: &dualrig_proto::v1::Capabilities,
    hardware: bool,
) {
    record(|s| {
        s.worker_id = id.to_owned();
        s.connection.coordinator = first.to_owned();
        s.connection.coordinators = coordinators.to_vec();
        s.encoder.name = capabilities.selected_encoder.clone();
        s.encoder.hardware = hardware;
        s.encoder.reason = capabilities.encoder_reason.clone();
        s.encoder.sessions = capabilities.sessions;
        s.encoder.hasher = capabilities.hasher.clone();
    });
}

pub fn job(outcome: &'static str) {
    counter!(JOBS, "outcome" => outcome).increment(1);
    record(|s| match outcome {
        "done" => s.jobs.done += 1,
        "payment_refused" => s.jobs.payment_refused += 1,
        _ => s.jobs.failed += 1,
    });
}

/// A job took (`true`) or gave back (`false`) one of the encoder sessions.
pub fn job_running(running: bool) {
    record(|s| {
        s.encoder.running = if running {
            s.encoder.running.saturating_add(1)
        } else {
            s.encoder.running.saturating_sub(1)
        }
    });
}

pub fn transcoded(elapsed: Duration, bytes_in: usize, bytes_out: usize) {
    histogram!(TRANSCODE_SECONDS).record(elapsed.as_secs_f64());
    counter!(BYTES_IN).increment(bytes_in as u64);
    counter!(BYTES_OUT).increment(bytes_out as u64);
}

/// Dialling the coordinator at `url`.
pub fn connecting(url: &str) {
    record(|s| {
        s.connection.state = "connecting";
        s.connection.coordinator = url.to_owned();
        s.connection.since_unix_ms = now_unix_ms();
    });
}

/// Attached to the coordinator at `url` whose id starts with `coordinator_id` (hex); `switched`: it
/// is not the one attached before.
pub fn attached(url: &str, coordinator_id: &str, switched: bool) {
    counter!(CONNECTIONS, "outcome" => "attached").increment(1);
    gauge!(COORDINATOR_ATTACHED, "coordinator" => url.to_owned()).set(1.0);
    if switched {
        counter!(COORDINATOR_SWITCHES).increment(1);
    }
    record(|s| {
        if switched {
            s.connection.switches += 1;
        }
        s.connection.state = "attached";
        s.connection.coordinator_id = coordinator_id.to_owned();
        s.connection.since_unix_ms = now_unix_ms();
        s.connection.attaches += 1;
    });
}

/// The session with the coordinator at `url` ended, for `error`.
pub fn disconnected(url: &str, error: &str) {
    counter!(CONNECTIONS, "outcome" => "ended").increment(1);
    gauge!(COORDINATOR_ATTACHED, "coordinator" => url.to_owned()).set(0.0);
    record(|s| {
        s.connection.state = "disconnected";
        s.connection.since_unix_ms = now_unix_ms();
        s.connection.last_error = Some(error.to_owned());
    });
}

/// A job's outcome (its result or its failure) was dropped: the session with the coordinator that
/// assigned the job ended before it could be sent.
pub fn undelivered() {
    counter!(UNDELIVERED).increment(1);
    record(|s| s.jobs.undelivered += 1);
}

pub fn tickets(outcome: &'static str, count: usize) {
    counter!(TICKETS, "outcome" => outcome).increment(count as u64);
    let count = count as u64;
    record(|s| match outcome {
        "received" => s.tickets.received += count,
        "won" => s.tickets.won += count,
        _ => s.tickets.refused += count,
    });
}

/// A winning ticket of `face_value` waits for redemption (won now, or left by an earlier run).
pub fn winner_queued(face_value: u64, won_now: bool) {
    record(|s| {
        if won_now {
            s.tickets.won_face_value = s.tickets.won_face_value.saturating_add(face_value);
        }
        s.tickets.waiting += 1;
        s.tickets.waiting_face_value = s.tickets.waiting_face_value.saturating_add(face_value);
    });
}

/// A redemption try of a winning ticket of `face_value` ended with `outcome`, paying `amount`.
pub fn redeemed(outcome: &'static str, amount: u64, face_value: u64) {
    counter!(REDEMPTIONS, "outcome" => outcome).increment(1);
    counter!(REDEEMED_VALUE).increment(amount);
    record(|s| {
        match outcome {
            "paid" => {
                s.tickets.redeemed += 1;
                s.tickets.redeemed_value = s.tickets.redeemed_value.saturating_add(amount);
            }
            "refused" => s.tickets.redeem_refused += 1,
            "given_up" => s.tickets.given_up += 1,
            // Still waiting.
            _ => return,
        }
        s.tickets.waiting = s.tickets.waiting.saturating_sub(1);
        s.tickets.waiting_face_value = s.tickets.waiting_face_value.saturating_sub(face_value);
    });
}

/// A client download's payment was accepted or refused.
pub fn download_payment(outcome: &'static str) {
    counter!(DOWNLOAD_PAYMENTS, "outcome" => outcome).increment(1);
}

/// `bytes` of a download's range were served, `paid` or free.
pub fn served(bytes: u64, paid: bool) {
    let payment = if paid { "paid" } else { "free" };
    counter!(SERVED_BYTES, "payment" => payment).increment(bytes);
}

pub fn blob(outcome: &'static str) {
    counter!(BLOBS, "outcome" => outcome).increment(1);
    record(|s| match outcome {
        "stored" => s.store.stored += 1,
        "refused" => s.store.refused += 1,
        _ => s.store.served += 1,
    });
}

pub fn store_usage(bytes: u64, blobs: usize, capacity: u64) {
    gauge!(STORE_BYTES).set(bytes as f64);
    gauge!(STORE_BLOBS).set(blobs as f64);
    record(|s| {
        s.store.used_bytes = bytes;
        s.store.blobs = blobs as u64;
        s.store.capacity_bytes = capacity;
    });
}

/// A challenge answered with `proofs` chunk proofs: `proved` of its blobs proven, `failed` not.
pub fn challenge_answered(proofs: usize, proved: usize, failed: usize, elapsed: Duration) {
    counter!(PROOFS).increment(proofs as u64);
    histogram!(CHALLENGE_SECONDS).record(elapsed.as_secs_f64());
    record(|s| {
        s.challenges.answered += 1;
        s.challenges.blobs_proved += proved as u64;
        s.challenges.blobs_failed += failed as u64;
        s.challenges.pass_rate = status::pass_rate(&s.challenges);
    });
}

/// A scrub rehashed `checked` blobs and dropped the `corrupt` and `missing` ones.
pub fn scrubbed(checked: usize, corrupt: usize, missing: usize, repaired_outboards: usize) {
    let dropped = corrupt + missing;
    counter!(SCRUBBED, "outcome" => "sound").increment(checked.saturating_sub(dropped) as u64);
    counter!(SCRUBBED, "outcome" => "dropped").increment(dropped as u64);
    record(|s| {
        s.scrubs.runs += 1;
        s.scrubs.checked += checked as u64;
        s.scrubs.dropped += dropped as u64;
        s.scrubs.last = Some(ScrubRun {
            at_unix_ms: now_unix_ms(),
            checked: checked as u64,
            corrupt: corrupt as u64,
            missing: missing as u64,
            repaired_outboards: repaired_outboards as u64,
        });
    });
}

pub fn sessions(sessions: u32) {
    gauge!(SESSIONS).set(f64::from(sessions));
}

pub fn reload(outcome: &'static str) {
    counter!(RELOADS, "outcome" => outcome).increment(1);
}
