//! Per-method message limits. Every gRPC message a peer sends is held to the limit of the method it
//! calls as soon as its 5-byte frame header arrives, before the message's bytes are buffered: a 40 MiB
//! `Register` is refused with `ResourceExhausted` after five bytes, not decoded. Only the streams that
//! carry segments, renditions and blob pieces get segment-sized limits, and a stream that opens with a
//! handshake (`Link`) is held to a handshake-sized limit until the handshake is over: a peer that has
//! proven nothing cannot make the coordinator buffer a job-sized message.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::Status;
use tonic::body::Body;

/// How large a peer's messages to one method may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// The largest message once the stream's opening messages are through.
    pub bytes: usize,
    /// How many messages open the stream (a handshake), and the largest each of them may be.
    pub opening: (u32, usize),
}

/// The limits for `method` (the last part of the gRPC path).
pub fn limit_for(method: &str) -> Limit {
    let bytes = largest_message(method);
    let opening = match method {
        // The dialer's open and proof (PROTOCOL §8.4): a key, a nonce, a signature.
        "Link" => (
            crate::relay::HANDSHAKE_MESSAGES,
            crate::relay::MAX_HANDSHAKE_MESSAGE,
        ),
        _ => (0, bytes),
    };
    Limit { bytes, opening }
}

/// The largest message a peer may send to `method` once any handshake is over.
fn largest_message(method: &str) -> usize {
    match method {
        // Results carry every rendition of a segment.
        "Attach" => dualrig_proto::MAX_MESSAGE_BYTES,
        // Relayed jobs and results, with their envelope.
        "Link" => crate::relay::MAX_LINK_MESSAGE,
        // 1 MiB chunks; a Transcode header carries up to MAX_TICKETS_PER_PAYMENT tickets, and so does
        // a paid Get.
        "Transcode" | "Put" | "Get" => 2 << 20,
        // Capabilities: names, reasons, ticket params.
        "Register" => 16 << 10,
        // A ladder of profiles; a range and its excluded holders.
        "Quote" | "DownloadQuote" => 16 << 10,
        "Hello" | "Account" | "Execute" | "ListWorkers" | "ListBlobs" | "ListSlashes" => 4 << 10,
        // Health and reflection.
        _ => 16 << 10,
    }
}

/// A tower layer that applies [`limit_for`] to every request.
#[derive(Debug, Clone, Copy, Default)]
pub struct MessageLimitLayer;

impl<S> tower_layer::Layer<S> for MessageLimitLayer {
    type Service = MessageLimit<S>;

    fn layer(&self, inner: S) -> Self::Service {
        MessageLimit { inner }
    }
}

#[derive(Debug, Clone)]
pub struct MessageLimit<S> {
    inner: S,
}

impl<S> tower_service::Service<http::Request<Body>> for MessageLimit<S>
where
    S: tower_service::Service<http::Request<Body>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<Body>) -> Self::Future {
        let method = request
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        let limit = limit_for(&method);
        let request = request.map(|body| {
            Body::new(LimitedBody {
                inner: body,
                method,
                limit,
                seen: 0,
                header: [0; 5],
                have: 0,
                remaining: 0,
            })
        });
        self.inner.call(request)
    }
}

/// A request body that fails as soon as a message's frame header declares more than its limit.
struct LimitedBody {
    inner: Body,
    method: String,
    limit: Limit,
    /// Messages whose header has arrived.
    seen: u32,
    /// The frame header being read, and how much of it has arrived.
    header: [u8; 5],
    have: usize,
    /// Bytes of the current message still to come.
    remaining: u64,
}

impl LimitedBody {
    /// Follows the gRPC framing (1 flag byte, 4-byte big-endian length, the message) through `data`.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.remaining > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.remaining).unwrap_or(usize::MAX));
                self.remaining -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(5 - self.have);
            self.header[self.have..self.have + n].copy_from_slice(&data[..n]);
            self.have += n;
            data = &data[n..];
            if self.have == 5 {
                self.have = 0;
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                let (opening, opening_bytes) = self.limit.opening;
                let (limit, which) = if self.seen < opening {
                    (opening_bytes, " before its handshake is over")
                } else {
                    (self.limit.bytes, "")
                };
                if len as usize > limit {
                    return Err(Status::resource_exhausted(format!(
                        "a {} message{which} is at most {limit} bytes; this one declares {len}",
                        self.method
                    )));
                }
                self.seen = self.seen.saturating_add(1);
                self.remaining = u64::from(len);
            }
        }
        Ok(())
    }
}

impl HttpBody for LimitedBody {
    type Data = Bytes;
    type Error = tonic::Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let frame = match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => frame,
            other => return other,
        };
        if let Some(data) = frame.data_ref() {
            let data = data.clone();
            if let Err(status) = self.scan(&data) {
                return Poll::Ready(Some(Err(status)));
            }
        }
        Poll::Ready(Some(Ok(frame)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(limit: usize) -> LimitedBody {
        with_limit(
            "Register",
            Limit {
                bytes: limit,
                opening: (0, limit),
            },
        )
    }

    fn with_limit(method: &str, limit: Limit) -> LimitedBody {
        LimitedBody {
            inner: Body::empty(),
            method: method.into(),
            limit,
            seen: 0,
            header: [0; 5],
            have: 0,
            remaining: 0,
        }
    }

    fn frame(len: u32) -> Vec<u8> {
        let mut out = vec![0];
        out.extend_from_slice(&len.to_be_bytes());
        out.extend(std::iter::repeat_n(7u8, len as usize));
        out
    }

    #[test]
    fn messages_within_the_limit_pass_in_any_split() {
        let stream: Vec<u8> = [frame(10), frame(0), frame(100)].concat();
        for split in [1, 3, 5, 7, 64, stream.len()] {
            let mut b = body(100);
            for piece in stream.chunks(split) {
                b.scan(piece).expect("within the limit");
            }
            assert_eq!((b.have, b.remaining), (0, 0));
        }
    }

    #[test]
    fn a_message_over_the_limit_fails_at_its_header() {
        let mut b = body(100);
        b.scan(&frame(100)).expect("at the limit");
        let over = frame(101);
        let err = b.scan(&over[..5]).expect_err("declares too much");
        assert_eq!(err.code(), tonic::Code::ResourceExhausted);
        assert!(err.message().contains("Register"), "{}", err.message());
        // A header split across frames is still read.
        let mut b = body(100);
        b.scan(&over[..2]).expect("half a header");
        assert!(b.scan(&over[2..5]).is_err());
    }

    #[test]
    fn a_stream_is_held_to_its_handshake_limit_until_the_handshake_is_over() {
        let limit = Limit {
            bytes: 1000,
            opening: (2, 10),
        };
        let mut b = with_limit("Link", limit);
        let err = b
            .scan(&frame(11)[..5])
            .expect_err("an opening over 10 bytes");
        assert!(err.message().contains("handshake"), "{}", err.message());
        let mut b = with_limit("Link", limit);
        b.scan(&[frame(10), frame(3)].concat())
            .expect("the handshake");
        b.scan(&frame(1000)).expect("a full message after it");
        assert!(b.scan(&frame(1001)[..5]).is_err());
        // The real Link limits: a handshake message is a few hundred bytes, a relayed job megabytes.
        let link = limit_for("Link");
        assert!(link.opening.1 < 1 << 16 && link.bytes > 1 << 20, "{link:?}");
    }
}
