//! Every metric the worker records, declared in one place, and the Prometheus exporter.

use std::net::SocketAddr;
use std::time::Duration;

use metrics::{counter, describe_counter, describe_histogram, histogram};

pub const JOBS: &str = "dualrig_worker_jobs_total";
pub const TRANSCODE_SECONDS: &str = "dualrig_worker_transcode_seconds";
pub const BYTES_IN: &str = "dualrig_worker_bytes_in_total";
pub const BYTES_OUT: &str = "dualrig_worker_bytes_out_total";
pub const CONNECTIONS: &str = "dualrig_worker_connections_total";
pub const TICKETS: &str = "dualrig_worker_tickets_total";
pub const REDEMPTIONS: &str = "dualrig_worker_redemptions_total";
pub const REDEEMED_VALUE: &str = "dualrig_worker_redeemed_value_total";

pub fn install_exporter(addr: SocketAddr) -> Result<(), String> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| format!("cannot start the metrics endpoint on {addr}: {e}"))?;
    describe_counter!(JOBS, "Transcode jobs, by outcome");
    describe_histogram!(
        TRANSCODE_SECONDS,
        metrics::Unit::Seconds,
        "Time to transcode one segment to its whole ladder"
    );
    describe_counter!(BYTES_IN, metrics::Unit::Bytes, "Segment bytes received");
    describe_counter!(BYTES_OUT, metrics::Unit::Bytes, "Rendition bytes sent");
    describe_counter!(CONNECTIONS, "Connections to the coordinator, by outcome");
    describe_counter!(
        TICKETS,
        "Payment tickets, by outcome (received, won, refused)"
    );
    describe_counter!(REDEMPTIONS, "Ticket redemption tries, by outcome");
    describe_counter!(
        REDEEMED_VALUE,
        "Units paid to the worker by redeemed tickets"
    );
    Ok(())
}

pub fn job(outcome: &'static str) {
    counter!(JOBS, "outcome" => outcome).increment(1);
}

pub fn transcoded(elapsed: Duration, bytes_in: usize, bytes_out: usize) {
    histogram!(TRANSCODE_SECONDS).record(elapsed.as_secs_f64());
    counter!(BYTES_IN).increment(bytes_in as u64);
    counter!(BYTES_OUT).increment(bytes_out as u64);
}

pub fn connection(outcome: &'static str) {
    counter!(CONNECTIONS, "outcome" => outcome).increment(1);
}

pub fn tickets(outcome: &'static str, count: usize) {
    counter!(TICKETS, "outcome" => outcome).increment(count as u64);
}

pub fn redeemed(outcome: &'static str, amount: u64) {
    counter!(REDEMPTIONS, "outcome" => outcome).increment(1);
    counter!(REDEEMED_VALUE).increment(amount);
}
