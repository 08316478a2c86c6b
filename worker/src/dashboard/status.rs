//! What the dashboard shows: the worker's state, updated as each event happens (by the functions of
//! [`crate::metrics`], at the same call sites as the Prometheus metrics), and a bounded history of it.
//!
//! The state is process-wide, as the metrics recorder is: one worker process, one dashboard. The history
//! keeps one point every [`SAMPLE_EVERY`] for the last [`SERIES_POINTS`] samples (an hour), so its memory
//! is bounded however long the worker runs.

use std::collections::VecDeque;
use std::sync::{LazyLock, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;

/// The `schema` of `GET /api/status`.
pub const SCHEMA: &str = "dualrig.worker.status/1";
/// Time between two points of the history.
pub const SAMPLE_EVERY: Duration = Duration::from_secs(5);
/// Points the history keeps: an hour at [`SAMPLE_EVERY`].
pub const SERIES_POINTS: usize = 720;
/// Slashes listed in full (the newest); older ones count in `slashes.count` only.
pub const SLASHES_LISTED: usize = 50;

/// The document `GET /api/status` answers; docs/DASHBOARD.md describes every field.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Status {
    pub schema: &'static str,
    pub worker_id: String,
    pub version: &'static str,
    pub started_unix_ms: u64,
    pub now_unix_ms: u64,
    pub connection: Connection,
    pub encoder: Encoder,
    pub bench: Option<BenchFigures>,
    pub jobs: Jobs,
    pub tickets: Tickets,
    pub account: Option<Account>,
    pub hosting_rewards: Option<u64>,
    pub slashes: Slashes,
    pub store: Store,
    pub challenges: Challenges,
    pub scrubs: Scrubs,
    pub series_every_secs: u64,
    pub series: Vec<Point>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Connection {
    /// `starting`, `connecting`, `attached` or `disconnected`.
    pub state: &'static str,
    /// The URL attached to or being dialled.
    pub coordinator: String,
    /// Every coordinator the worker may serve, in the order given.
    pub coordinators: Vec<String>,
    pub coordinator_id: String,
    pub since_unix_ms: u64,
    pub attaches: u64,
    /// Attaches to a coordinator other than the one attached before.
    pub switches: u64,
    pub last_error: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Encoder {
    pub name: String,
    pub hardware: bool,
    pub reason: String,
    pub sessions: u32,
    pub running: u32,
    pub hasher: String,
}

/// The figures of the last `dualrig-worker bench` saved in the data dir.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct BenchFigures {
    pub ran_unix_ms: u64,
    pub hash_gb_per_s: Option<f64>,
    pub hash_method: Option<String>,
    pub encode_fps: Option<f64>,
    pub encoder: Option<String>,
    pub hash_loss_percent: Option<f64>,
    pub encode_loss_percent: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Jobs {
    pub done: u64,
    pub failed: u64,
    pub payment_refused: u64,
    pub verified: u64,
    /// Outcomes dropped because the session with the coordinator that assigned the job had ended.
    pub undelivered: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Tickets {
    pub received: u64,
    pub refused: u64,
    pub won: u64,
    pub won_face_value: u64,
    pub redeemed: u64,
    pub redeemed_value: u64,
    pub redeem_refused: u64,
    pub given_up: u64,
    pub waiting: u64,
    pub waiting_face_value: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Account {
    pub balance: u64,
    pub bonded_to_self: u64,
    pub stake: u64,
    pub round: u64,
    pub suspended_until: u64,
    pub checked_unix_ms: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Slashes {
    pub count: u64,
    pub amount: u64,
    pub recent: Vec<Slash>,
}

#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Slash {
    pub id: u64,
    pub round: u64,
    pub amount: u64,
    pub fraction_ppm: u32,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Store {
    pub used_bytes: u64,
    pub capacity_bytes: u64,
    pub blobs: u64,
    pub stored: u64,
    pub refused: u64,
    pub served: u64,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Challenges {
    pub answered: u64,
    pub blobs_proved: u64,
    pub blobs_failed: u64,
    pub pass_rate: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct Scrubs {
    pub runs: u64,
    pub checked: u64,
    pub dropped: u64,
    pub last: Option<ScrubRun>,
}

#[derive(Debug, Clone, Default, Serialize)]
pub struct ScrubRun {
    pub at_unix_ms: u64,
    pub checked: u64,
    pub corrupt: u64,
    pub missing: u64,
    pub repaired_outboards: u64,
}

/// One sample of the history.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Point {
    pub t_unix_ms: u64,
    pub jobs_done: u64,
    pub jobs_failed: u64,
    pub jobs_verified: u64,
    pub tickets_received: u64,
    pub tickets_won: u64,
    pub tickets_redeemed: u64,
    pub redeemed_value: u64,
    pub waiting_face_value: u64,
    pub stake: u64,
    pub store_used_bytes: u64,
    pub challenges_proved: u64,
    pub challenges_failed: u64,
}

struct Board {
    status: Status,
    series: VecDeque<Point>,
    /// Verified jobs the coordinator counted on earlier connections, and on this one at the last look:
    /// its count starts again at each attach.
    verified_before: u64,
    verified_now: u64,
    verified_attach: u64,
}

static BOARD: LazyLock<Mutex<Board>> = LazyLock::new(|| {
    Mutex::new(Board {
        status: Status {
            schema: SCHEMA,
            version: env!("CARGO_PKG_VERSION"),
            started_unix_ms: now_unix_ms(),
            connection: Connection {
                state: "starting",
                ..Connection::default()
            },
            series_every_secs: SAMPLE_EVERY.as_secs(),
            ..Status::default()
        },
        series: VecDeque::with_capacity(SERIES_POINTS),
        verified_before: 0,
        verified_now: 0,
        verified_attach: 0,
    })
});

fn board() -> MutexGuard<'static, Board> {
    BOARD.lock().unwrap_or_else(PoisonError::into_inner)
}

pub fn now_unix_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Changes the state. Cheap (one uncontended lock) whether or not a dashboard is served.
pub fn record(change: impl FnOnce(&mut Status)) {
    change(&mut board().status);
}

/// The state now, with its history.
pub fn snapshot() -> Status {
    let board = board();
    let mut status = board.status.clone();
    status.now_unix_ms = now_unix_ms();
    status.series = board.series.iter().cloned().collect();
    status
}

/// Adds the state now to the history, dropping the oldest point once it holds [`SERIES_POINTS`].
pub fn sample() {
    let mut board = board();
    let s = &board.status;
    let point = Point {
        t_unix_ms: now_unix_ms(),
        jobs_done: s.jobs.done,
        jobs_failed: s.jobs.failed,
        jobs_verified: s.jobs.verified,
        tickets_received: s.tickets.received,
        tickets_won: s.tickets.won,
        tickets_redeemed: s.tickets.redeemed,
        redeemed_value: s.tickets.redeemed_value,
        waiting_face_value: s.tickets.waiting_face_value,
        stake: s.account.as_ref().map_or(0, |a| a.stake),
        store_used_bytes: s.store.used_bytes,
        challenges_proved: s.challenges.blobs_proved,
        challenges_failed: s.challenges.blobs_failed,
    };
    if board.series.len() == SERIES_POINTS {
        board.series.pop_front();
    }
    board.series.push_back(point);
}

/// The coordinator's count of this worker's verified results on its current connection; it starts
/// again at each attach, so the dashboard adds the counts of earlier connections.
pub fn record_verified_on_connection(count: u64) {
    let mut board = board();
    let attach = board.status.connection.attaches;
    if attach != board.verified_attach {
        board.verified_before += board.verified_now;
        board.verified_now = 0;
        board.verified_attach = attach;
    }
    board.verified_now = count;
    board.status.jobs.verified = board.verified_before + count;
}

/// Sets the challenge pass rate from the counts.
pub fn pass_rate(challenges: &Challenges) -> Option<f64> {
    let total = challenges.blobs_proved + challenges.blobs_failed;
    (total > 0).then(|| challenges.blobs_proved as f64 / total as f64)
}

/// The field paths of a JSON document as docs/DASHBOARD.md names them: `jobs.done`, an array as
/// `slashes.recent` and its elements' fields as `slashes.recent[].reason`.
pub fn field_paths(document: &serde_json::Value) -> std::collections::BTreeSet<String> {
    fn walk(value: &serde_json::Value, prefix: &str, out: &mut std::collections::BTreeSet<String>) {
        match value {
            serde_json::Value::Object(map) => {
                for (key, value) in map {
                    let path = if prefix.is_empty() {
                        key.clone()
                    } else {
                        format!("{prefix}.{key}")
                    };
                    out.insert(path.clone());
                    walk(value, &path, out);
                }
            }
            serde_json::Value::Array(items) => {
                for item in items {
                    walk(item, &format!("{prefix}[]"), out);
                }
            }
            _ => {}
        }
    }
    let mut out = std::collections::BTreeSet::new();
    walk(document, "", &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    const DOC: &str = include_str!("../../../docs/DASHBOARD.md");

    /// The fields docs/DASHBOARD.md's table lists.
    fn documented() -> BTreeSet<String> {
        DOC.lines()
            .filter_map(|line| line.strip_prefix("| `"))
            .filter_map(|rest| rest.split_once('`'))
            .map(|(field, _)| field.to_owned())
            .collect()
    }

    /// A status with every optional part present, so every field shows.
    fn full() -> Status {
        Status {
            connection: Connection {
                last_error: Some("coordinator closed the job stream".into()),
                ..Connection::default()
            },
            bench: Some(BenchFigures::default()),
            account: Some(Account::default()),
            hosting_rewards: Some(0),
            slashes: Slashes {
                recent: vec![Slash::default()],
                ..Slashes::default()
            },
            challenges: Challenges {
                pass_rate: Some(1.0),
                ..Challenges::default()
            },
            scrubs: Scrubs {
                last: Some(ScrubRun::default()),
                ..Scrubs::default()
            },
            series: vec![Point::default()],
            ..Status::default()
        }
    }

    #[test]
    fn every_status_field_is_documented_and_every_documented_field_exists() {
        let json = serde_json::to_value(full()).expect("status encodes");
        let fields = field_paths(&json);
        let documented = documented();
        let undocumented: Vec<_> = fields.difference(&documented).collect();
        let gone: Vec<_> = documented.difference(&fields).collect();
        assert!(
            undocumented.is_empty(),
            "fields missing from docs/DASHBOARD.md: {undocumented:?}"
        );
        assert!(
            gone.is_empty(),
            "documented fields the status lacks: {gone:?}"
        );
    }

    #[test]
    fn the_documented_example_has_exactly_the_documented_fields() {
        let example = DOC
            .split("```json")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .expect("docs/DASHBOARD.md has a ```json example");
        let example: serde_json::Value = serde_json::from_str(example).expect("the example parses");
        assert_eq!(example["schema"], SCHEMA);
        assert_eq!(field_paths(&example), documented());
    }

    #[test]
    fn the_history_keeps_at_most_an_hour_of_points() {
        for _ in 0..SERIES_POINTS + 10 {
            sample();
        }
        assert_eq!(snapshot().series.len(), SERIES_POINTS);
    }

    #[test]
    fn verified_jobs_add_up_across_connections() {
        record(|s| s.connection.attaches = 1);
        record_verified_on_connection(2);
        record_verified_on_connection(3);
        let before = snapshot().jobs.verified;
        record(|s| s.connection.attaches = 2);
        record_verified_on_connection(1);
        assert_eq!(snapshot().jobs.verified, before + 1);
    }
}
