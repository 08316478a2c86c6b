//! The worker dashboard (`--dashboard-addr`): one page, built into the binary, that shows what the
//! worker is doing and has earned, and `GET /api/status`, the JSON the page polls (docs/DASHBOARD.md).
//!
//! [`status`] holds the state, fed by [`crate::metrics`] as events happen; [`account`] asks the
//! coordinator for what only it knows (stake, slashes, verified results); [`server`] serves both.
//! Nothing here is written to: the dashboard only reads.

pub mod account;
pub mod server;
pub mod status;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::coordinators::Coordinators;
use dualrig_proto::identity::PublicId;
use serde_json::Value;
use tokio::net::TcpListener;

use status::BenchFigures;

/// The file in the data dir that holds the dashboard's bound address, for `--dashboard-addr` with
/// port 0.
pub const ADDR_FILE: &str = "dashboard.addr";
/// The file in the data dir where `dualrig-worker bench --data-dir` saves its JSON document.
pub const BENCH_FILE: &str = "bench.json";

/// Why the dashboard cannot start.
#[derive(Debug, thiserror::Error)]
pub enum DashboardError {
    #[error("cannot serve the dashboard on {addr}: {source} (is another process using it?)")]
    Bind {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("cannot write the dashboard's address to {path}: {source}")]
    AddrFile {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// A dashboard bound to its address, not serving yet.
#[derive(Debug)]
pub struct Dashboard {
    listener: TcpListener,
    addr: SocketAddr,
    data_dir: PathBuf,
    coordinators: Arc<Coordinators>,
    id: PublicId,
}

impl Dashboard {
    /// Binds `addr` and writes the bound address to `DATA_DIR/dashboard.addr`.
    pub async fn bind(
        addr: SocketAddr,
        data_dir: &Path,
        coordinators: Arc<Coordinators>,
        id: PublicId,
    ) -> Result<Self, DashboardError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| DashboardError::Bind { addr, source })?;
        let bound = listener
            .local_addr()
            .map_err(|source| DashboardError::Bind { addr, source })?;
        let path = data_dir.join(ADDR_FILE);
        std::fs::write(&path, format!("{bound}\n"))
            .map_err(|source| DashboardError::AddrFile { path, source })?;
        Ok(Self {
            listener,
            addr: bound,
            data_dir: data_dir.to_owned(),
            coordinators,
            id,
        })
    }

    /// The address it serves on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves the page and the JSON, keeps the history and asks the coordinator, until dropped.
    pub async fn serve(self) {
        let sampler = async {
            let mut tick = tokio::time::interval(status::SAMPLE_EVERY);
            loop {
                tick.tick().await;
                status::sample();
            }
        };
        let watch = account::watch(self.coordinators, self.id);
        let http = axum::serve(self.listener, server::routes(self.data_dir));
        tokio::select! {
            () = sampler => {}
            () = watch => std::future::pending().await,
            served = http => if let Err(e) = served {
                tracing::warn!(error = %e, "the dashboard stopped serving");
            },
        }
    }
}

/// The figures of the bench document saved in `data_dir`, or `None` when there is none (or it cannot be
/// read: the page then asks for a bench run).
pub fn read_bench(data_dir: &Path) -> Option<BenchFigures> {
    let path = data_dir.join(BENCH_FILE);
    let text = std::fs::read_to_string(&path).ok()?;
    let ran_unix_ms = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_millis() as u64);
    let document: Value = serde_json::from_str(&text).ok()?;
    let mut figures = bench_figures(&document)?;
    figures.ran_unix_ms = ran_unix_ms;
    Some(figures)
}

/// The headline figures of a `dualrig.bench/1` or `dualrig.bench.hash/1` document: the fastest hash
/// rate at the largest size measured, the fastest whole-ladder encode rate, and the dual-running losses.
pub fn bench_figures(document: &Value) -> Option<BenchFigures> {
    let hash = match document["schema"].as_str()? {
        "dualrig.bench/1" => &document["hash"],
        "dualrig.bench.hash/1" => document,
        _ => return None,
    };
    let mut figures = BenchFigures::default();
    let largest = hash["sizes"]
        .as_array()
        .into_iter()
        .flatten()
        .max_by_key(|size| size["bytes"].as_u64().unwrap_or(0));
    if let Some(fastest) = largest
        .and_then(|size| size["rows"].as_array())
        .into_iter()
        .flatten()
        .filter(|row| row["gb_per_s"].is_number())
        .max_by(|a, b| number(&a["gb_per_s"]).total_cmp(&number(&b["gb_per_s"])))
    {
        figures.hash_gb_per_s = fastest["gb_per_s"].as_f64();
        figures.hash_method = fastest["name"].as_str().map(str::to_owned);
    }
    if let Some(fastest) = document["encode"]["encoders"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|e| e["ladder"]["fps"].is_number())
        .max_by(|a, b| number(&a["ladder"]["fps"]).total_cmp(&number(&b["ladder"]["fps"])))
    {
        figures.encode_fps = fastest["ladder"]["fps"].as_f64();
        figures.encoder = fastest["encoder"].as_str().map(str::to_owned);
    }
    figures.hash_loss_percent = document["dual"]["hash_loss_percent"].as_f64();
    figures.encode_loss_percent = document["dual"]["encode_loss_percent"].as_f64();
    Some(figures)
}

fn number(value: &Value) -> f64 {
    value.as_f64().unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_figures_come_from_the_largest_size_and_the_fastest_encoder() {
        let document = serde_json::json!({
            "schema": "dualrig.bench/1",
            "hash": {"schema": "dualrig.bench.hash/1", "sizes": [
                {"bytes": 1024, "rows": [{"name": "gpu", "gb_per_s": 9.0}]},
                {"bytes": 1048576, "rows": [
                    {"name": "cpu", "gb_per_s": 2.5}, {"name": "b3sum", "gb_per_s": 2.0}]}
            ]},
            "encode": {"encoders": [
                {"encoder": "libx264", "ladder": {"fps": 40.5}},
                {"encoder": "h264_nvenc", "ladder": {"fps": 400.0}}
            ]},
            "dual": {"hash_loss_percent": 3.5, "encode_loss_percent": 1.25}
        });
        let figures = bench_figures(&document).expect("figures");
        assert_eq!(figures.hash_gb_per_s, Some(2.5));
        assert_eq!(figures.hash_method.as_deref(), Some("cpu"));
        assert_eq!(figures.encode_fps, Some(400.0));
        assert_eq!(figures.encoder.as_deref(), Some("h264_nvenc"));
        assert_eq!(figures.hash_loss_percent, Some(3.5));
        assert_eq!(figures.encode_loss_percent, Some(1.25));
    }

    #[test]
    fn a_document_of_another_kind_has_no_figures() {
        assert_eq!(bench_figures(&serde_json::json!({"schema": "x"})), None);
        assert_eq!(bench_figures(&serde_json::json!([1, 2])), None);
    }
}
