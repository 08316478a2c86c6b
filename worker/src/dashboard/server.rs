//! The dashboard's HTTP routes: the page and its script and style, built into the binary, and the JSON
//! the page polls. Read-only: every route is a `GET` of state the worker already keeps.

use std::path::PathBuf;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;

use super::status;

const PAGE: &str = include_str!("page/index.html");
const SCRIPT: &str = include_str!("page/dashboard.js");
const STYLE: &str = include_str!("page/dashboard.css");

/// The routes, reading the last bench figures from `data_dir`.
pub fn routes(data_dir: PathBuf) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/dashboard.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/dashboard.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route(
            "/api/status",
            get(move || {
                let data_dir = data_dir.clone();
                async move { status_json(data_dir).await }
            }),
        )
        .fallback(|| async {
            (
                StatusCode::NOT_FOUND,
                [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
                "not found: the dashboard serves /, /api/status and the page's assets\n",
            )
        })
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
            // Everything the page needs comes from here: no script or style from anywhere else.
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'",
            ),
        ],
        body,
    )
        .into_response()
}

async fn status_json(data_dir: PathBuf) -> Response {
    super::account::viewed();
    let bench = tokio::task::spawn_blocking(move || super::read_bench(&data_dir))
        .await
        .ok()
        .flatten();
    let mut status = status::snapshot();
    status.bench = bench;
    match serde_json::to_string(&status) {
        Ok(json) => (
            [
                (header::CONTENT_TYPE, "application/json"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            json,
        )
            .into_response(),
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot encode the status: {e}\n"),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Text from peers (slash reasons, the coordinator's errors) must reach the page as text only.
    #[test]
    fn the_script_never_writes_html() {
        for sink in [
            "innerHTML",
            "outerHTML",
            "insertAdjacentHTML",
            "document.write",
        ] {
            assert!(!SCRIPT.contains(sink), "dashboard.js uses {sink}");
        }
    }

    /// Works offline: every asset the page loads is its own.
    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        for attr in ["src=\"", "href=\""] {
            for (_, rest) in PAGE
                .match_indices(attr)
                .map(|(i, _)| PAGE.split_at(i + attr.len()))
            {
                assert!(
                    rest.starts_with('/') || rest.starts_with("data:"),
                    "index.html loads {}",
                    &rest[..rest.find('"').unwrap_or(rest.len())]
                );
            }
        }
        assert!(
            !STYLE.contains("url("),
            "dashboard.css loads an outside resource"
        );
        assert!(!SCRIPT.contains("import "), "dashboard.js imports a module");
    }
}
