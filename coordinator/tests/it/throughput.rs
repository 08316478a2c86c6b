//! Jobs per second through 1, 2 and 3 coordinator binaries on one PostgreSQL database with a fixed pool
//! of three workers, and the CPU time each coordinator process spends per verified job (its
//! `/proc/<pid>/stat` user + system time), since workers, coordinators and the database share this
//! machine's cores; for a job that is all overhead (a tiny segment) and one whose verification
//! decodes real renditions. A measurement, not a check of speed: `make test` skips it, `make bench-cluster` runs
//! it and prints the table `benches/RESULTS.md` records. It fails only when a job does.

use std::time::{Duration, Instant};

use dualrig_client::DualrigClient;
use dualrig_proto::identity::PublicId;
use futures::StreamExt;

use dualrig_proto::profile::Profile;
use dualrig_worker::config::Sessions;

use crate::support::{CoordinatorProcess, RunningWorker, make_lavfi_clip, small_profile};

/// The fixed pool, spread over the coordinators in turn.
const WORKERS: usize = 3;
/// Each worker's encoder sessions, and the jobs in flight: enough to keep every core busy, fewer than
/// the pool's sessions, so no job waits for a free worker.
const SESSIONS: u32 = 8;
const IN_FLIGHT: usize = 16;
/// Jobs run first and not timed: links up, stakes read, code paged in.
const WARM_UP: usize = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a measurement: make bench-cluster"]
async fn jobs_per_second_through_one_two_and_three_coordinators() {
    let Some(server) = crate::cluster::postgres_or_rerun(
        "throughput::jobs_per_second_through_one_two_and_three_coordinators",
    ) else {
        return;
    };
    let work = tempfile::tempdir().expect("tempdir");
    let (tiny, tiny_ladder) = crate::support::tiny_job(work.path());
    let clip = make_lavfi_clip(
        work.path(),
        "360p.ts",
        "testsrc2=size=640x360:rate=30,format=yuv420p",
        2.0,
    );
    let mid = std::fs::read(&clip).expect("segment");
    let mid_ladder = vec![
        small_profile("240p", 426, 240, 400_000),
        small_profile("144p", 256, 144, 200_000),
    ];
    eprintln!(
        "{WORKERS} workers of {SESSIONS} sessions, {IN_FLIGHT} jobs in flight, jobs sent to the coordinators in turn"
    );
    eprintln!(
        "| job | coordinators | jobs | jobs/s | relayed | CPU ms/job, each coordinator | all coordinators | PostgreSQL | workers and clients |"
    );
    eprintln!("|---|---|---|---|---|---|---|---|---|");
    let kinds = [
        ("0.5 s 160x90 → 72p", &tiny, &tiny_ladder, 1_200),
        ("2 s 640x360 → 240p, 144p", &mid, &mid_ladder, 120),
    ];
    for (label, segment, ladder, jobs) in kinds {
        for n in 1..=3 {
            let name = format!("throughput{n}_{jobs}");
            let url =
                dualrig_coordinator::db::postgres::fresh_schema(&server, &name).expect("schema");
            let row = measure(&url, n, segment, ladder, jobs).await;
            eprintln!("| {label} | {row}");
        }
    }
}

/// Runs `jobs` jobs through `n` fresh coordinators on `url` with the fixed pool spread over them;
/// the table row it measured, from its coordinator count on.
async fn measure(url: &str, n: usize, segment: &[u8], ladder: &[Profile], jobs: usize) -> String {
    let ticks = clock_ticks();
    let dirs: Vec<tempfile::TempDir> = (0..n)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let coordinators: Vec<CoordinatorProcess> = dirs
        .iter()
        .map(|dir| {
            CoordinatorProcess::start(dir.path(), &["--database-url", url, "--round-secs", "1"])
        })
        .collect();
    let mut workers = Vec::new();
    let mut attached = Vec::new();
    for i in 0..WORKERS {
        let worker = RunningWorker::start_with(&coordinators[i % n].url, |c| {
            c.sessions = Sessions::Fixed(SESSIONS.try_into().expect("nonzero"));
        })
        .await;
        attached.push((worker.id, i % n));
        workers.push(worker);
    }
    let clients: Vec<DualrigClient> = futures::future::join_all(
        coordinators
            .iter()
            .map(|c| async { DualrigClient::connect(&c.url).await.expect("connect") }),
    )
    .await;
    for client in &clients {
        crate::relay::wait_listed(client, WORKERS).await;
    }
    let run = |range: std::ops::Range<usize>| {
        let clients = &clients;
        futures::stream::iter(range)
            .map(move |job| {
                let to = job % n;
                let client = clients[to].clone();
                let (segment, ladder) = (segment.to_vec(), ladder.to_vec());
                async move {
                    let done = tokio::time::timeout(
                        Duration::from_secs(300),
                        client.transcode_segment(segment, &ladder, &format!("bench-{job}")),
                    )
                    .await
                    .expect("nothing hangs")
                    .unwrap_or_else(|e| panic!("job {job} through coordinator {to}: {e}"));
                    (
                        to,
                        PublicId::from_slice("worker", &done.worker_id).expect("worker id"),
                    )
                }
            })
            .buffer_unordered(IN_FLIGHT)
            .collect::<Vec<_>>()
    };
    run(0..WARM_UP).await;

    let pids: Vec<u32> = coordinators.iter().map(|c| c.child.0.id()).collect();
    let before: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let (pg_before, own_before) = (postgres_ticks(), cpu_ticks(std::process::id()));
    let started = Instant::now();
    let done = run(WARM_UP..WARM_UP + jobs).await;
    let wall = started.elapsed().as_secs_f64();
    let after: Vec<u64> = pids.iter().map(|&p| cpu_ticks(p)).collect();
    let (pg_after, own_after) = (postgres_ticks(), cpu_ticks(std::process::id()));

    let relayed = done
        .iter()
        .filter(|(to, worker)| attached.iter().any(|(id, on)| id == worker && on != to))
        .count();
    let per_job = |t: u64| t as f64 * 1000.0 / ticks / jobs as f64;
    let each: Vec<String> = before
        .iter()
        .zip(&after)
        .map(|(b, a)| format!("{:.1}", per_job(a - b)))
        .collect();
    let all: u64 = before.iter().zip(&after).map(|(b, a)| a - b).sum();
    drop(clients);
    drop(workers);
    drop(coordinators);
    format!(
        "{n} | {jobs} | {:.1} | {relayed} | {} | {:.1} | {:.1} | {:.1} |",
        jobs as f64 / wall,
        each.join(" / "),
        per_job(all),
        per_job(pg_after.saturating_sub(pg_before)),
        per_job(own_after - own_before),
    )
}

/// Clock ticks a second, the unit of `/proc/<pid>/stat` times.
fn clock_ticks() -> f64 {
    let out = std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .expect("getconf CLK_TCK");
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("CLK_TCK is a number")
}

/// A process's user + system time so far, in clock ticks, and its command name.
fn stat(pid: u32) -> Option<(String, u64)> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let (head, tail) = text.rsplit_once(')')?;
    let comm = head.split_once('(')?.1.to_owned();
    // After the name: state is field 3, utime 14, stime 15.
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some((comm, utime + stime))
}

fn cpu_ticks(pid: u32) -> u64 {
    stat(pid).expect("process stat").1
}

/// The CPU time of every PostgreSQL process now running (backends that end between two readings lose
/// theirs; the coordinators keep their sessions open, so few do).
fn postgres_ticks() -> u64 {
    std::fs::read_dir("/proc")
        .expect("/proc")
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(stat)
        .filter(|(comm, _)| comm.starts_with("postgres"))
        .map(|(_, t)| t)
        .sum()
}
