//! The `/metrics` page both binaries serve: the process's Prometheus recorder rendered in the text
//! exposition format, under the Content-Type that names the format's version.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{ALLOW, CONTENT_TYPE, HeaderValue};
use hyper::{Method, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use metrics_exporter_prometheus::{BuildError, Matcher, PrometheusBuilder, PrometheusHandle};

/// The Content-Type of the Prometheus text exposition format, version 0.0.4.
pub const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Where the page is; `/` answers the same page.
pub const PATH: &str = "/metrics";

/// How often samples recorded between scrapes are folded into the histograms, so that a process
/// nobody scrapes does not keep every sample.
const UPKEEP: Duration = Duration::from_secs(5);

/// A peer that opens a connection and sends no request head within this long is dropped.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    #[error("cannot start the metrics endpoint on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot start the metrics endpoint on {addr}: {source}")]
    Recorder {
        addr: SocketAddr,
        #[source]
        source: BuildError,
    },
}

/// Binds `addr`, installs a recorder as the process's, with `buckets` (a histogram's name and its
/// buckets' upper bounds) for every histogram, so none renders as a summary; runs `register` (which
/// creates every series the page must show from the start) and only then serves the page, from tasks
/// on the current Tokio runtime (call it from inside one), so no scrape sees a page without them.
/// Returns the address bound.
pub fn serve(
    addr: SocketAddr,
    buckets: &[(&str, &[f64])],
    register: impl FnOnce(),
) -> Result<SocketAddr, EndpointError> {
    let recorder = |source| EndpointError::Recorder { addr, source };
    let builder = buckets
        .iter()
        .try_fold(PrometheusBuilder::new(), |b, (name, bounds)| {
            b.set_buckets_for_metric(Matcher::Full((*name).to_owned()), bounds)
        })
        .map_err(recorder)?;
    let bind = |source| EndpointError::Bind { addr, source };
    let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind)?;
    let handle = builder.install_recorder().map_err(recorder)?;
    register();
    let upkeep = handle.clone();
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(UPKEEP);
        loop {
            ticks.tick().await;
            upkeep.run_upkeep();
        }
    });
    tokio::spawn(accept_forever(listener, handle));
    Ok(bound)
}

async fn accept_forever(listener: tokio::net::TcpListener, handle: PrometheusHandle) {
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors and the like: wait instead of spinning on the error.
                tracing::warn!(error = %e, "metrics endpoint cannot accept a connection");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let handle = handle.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request| {
                let page = respond(&handle, request.method(), request.uri().path());
                async move { Ok::<_, Infallible>(page) }
            });
            let served = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

/// The answer to `method path`: the page, a health line, or an error that says where the page is.
pub fn respond(handle: &PrometheusHandle, method: &Method, path: &str) -> Response<Full<Bytes>> {
    if method != Method::GET && method != Method::HEAD {
        let mut response = plain(
            StatusCode::METHOD_NOT_ALLOWED,
            format!("{method} is not served here: GET {PATH}\n"),
        );
        response
            .headers_mut()
            .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
        return response;
    }
    match path {
        PATH | "/" => {
            let mut response = Response::new(Full::new(Bytes::from(handle.render())));
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(TEXT_FORMAT));
            response
        }
        "/health" => plain(StatusCode::OK, "OK\n".to_owned()),
        other => plain(
            StatusCode::NOT_FOUND,
            format!("nothing at {other}: the metrics are at {PATH}\n"),
        ),
    }
}

fn plain(status: StatusCode, text: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(text)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn handle() -> PrometheusHandle {
        PrometheusBuilder::new().build_recorder().handle()
    }

    #[test]
    fn the_page_carries_the_versioned_content_type() {
        let response = respond(&handle(), &Method::GET, PATH);
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.headers()[CONTENT_TYPE], TEXT_FORMAT);
    }

    #[test]
    fn a_wrong_path_or_method_is_told_where_the_page_is() {
        let response = respond(&handle(), &Method::GET, "/metrix");
        assert_eq!(response.status(), StatusCode::NOT_FOUND);
        let response = respond(&handle(), &Method::POST, PATH);
        assert_eq!(response.status(), StatusCode::METHOD_NOT_ALLOWED);
        assert_eq!(response.headers()[ALLOW], "GET, HEAD");
    }
}
