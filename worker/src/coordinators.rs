//! The coordinators a worker may serve (`--coordinator`, one URL or several over one ledger) and which
//! one it serves now: the session attaches to one at a time ([`crate::session`]), and the calls beside
//! the session (ticket redemption, pulls, the dashboard's questions) go to that one first and, while it
//! cannot be reached, to each other one in turn.

use std::future::Future;
use std::net::IpAddr;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dualrig_proto::identity::PublicId;
use dualrig_proto::v1::coordinator_client::CoordinatorClient;
use tonic::Code;
use tonic::transport::{Channel, Endpoint};
use tracing::debug;

/// The coordinators of one network, in the order given, and the one served now.
#[derive(Debug)]
pub struct Coordinators {
    urls: Vec<String>,
    endpoints: Vec<Endpoint>,
    /// One channel per URL for the calls beside the session, made on first use (inside the runtime,
    /// which a channel needs) and dialled then.
    channels: Vec<OnceLock<Channel>>,
    current: AtomicUsize,
}

impl Coordinators {
    /// `urls` (checked by the config already), served first from `start` (modulo their count).
    pub fn new(
        urls: Vec<String>,
        start: usize,
        source_addr: Option<IpAddr>,
    ) -> Result<Self, String> {
        if urls.is_empty() {
            return Err("no coordinator URL given".into());
        }
        let endpoints = urls
            .iter()
            .map(|url| {
                Endpoint::from_shared(url.clone())
                    .map(|endpoint| {
                        endpoint
                            .connect_timeout(Duration::from_secs(5))
                            .local_address(source_addr)
                    })
                    .map_err(|e| format!("--coordinator {url:?}: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let channels = urls.iter().map(|_| OnceLock::new()).collect();
        let current = AtomicUsize::new(start % urls.len());
        Ok(Self {
            urls,
            endpoints,
            channels,
            current,
        })
    }

    /// Where worker `id` starts among `count` coordinators: its key's hash modulo `count`, so a fleet
    /// spreads over the coordinators instead of piling onto the first, and each worker starts at the
    /// same one every time.
    pub fn rotation_start(id: &PublicId, count: usize) -> usize {
        let hash = blake3::hash(id.as_bytes());
        let mut first = [0; 8];
        first.copy_from_slice(&hash.as_bytes()[..8]);
        (u64::from_le_bytes(first) % count.max(1) as u64) as usize
    }

    pub fn urls(&self) -> &[String] {
        &self.urls
    }

    pub fn len(&self) -> usize {
        self.urls.len()
    }

    pub fn is_empty(&self) -> bool {
        self.urls.is_empty()
    }

    /// The index of the coordinator served now (attached, or being dialled).
    pub fn current(&self) -> usize {
        self.current.load(Ordering::Relaxed)
    }

    pub fn current_url(&self) -> &str {
        &self.urls[self.current()]
    }

    pub fn url(&self, index: usize) -> &str {
        &self.urls[index % self.urls.len()]
    }

    /// Moves on to the next coordinator in the list (after the last, the first); returns its index.
    pub fn advance(&self) -> usize {
        let next = (self.current() + 1) % self.urls.len();
        self.current.store(next, Ordering::Relaxed);
        next
    }

    /// A client of the coordinator served now. Call from inside the Tokio runtime.
    pub fn client(&self) -> CoordinatorClient<Channel> {
        self.client_at(self.current())
    }

    /// Call from inside the Tokio runtime.
    fn client_at(&self, index: usize) -> CoordinatorClient<Channel> {
        let index = index % self.urls.len();
        let channel = self.channels[index]
            .get_or_init(|| self.endpoints[index].connect_lazy())
            .clone();
        CoordinatorClient::new(channel)
            .max_decoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES)
            .max_encoding_message_size(dualrig_proto::MAX_MESSAGE_BYTES)
    }

    /// Runs `call` against the coordinator served now and, while the answer is that it could not be
    /// reached ([`unreachable`]), against each other one in turn; returns the first real answer, or
    /// the last failure. Only for calls that are safe to repeat at another coordinator of the same
    /// ledger (reads, and signed ledger requests, which the ledger applies once).
    pub async fn call<T, F, Fut>(&self, mut call: F) -> Result<T, tonic::Status>
    where
        F: FnMut(CoordinatorClient<Channel>) -> Fut,
        Fut: Future<Output = Result<T, tonic::Status>>,
    {
        let start = self.current();
        let mut last = None;
        for step in 0..self.urls.len() {
            let index = (start + step) % self.urls.len();
            match call(self.client_at(index)).await {
                Err(status) if unreachable(&status) => {
                    debug!(coordinator = %self.urls[index], error = %status.message(), "coordinator not reached; trying the next");
                    last = Some(status);
                }
                answer => return answer,
            }
        }
        Err(last.unwrap_or_else(|| tonic::Status::unavailable("no coordinator")))
    }
}

/// Whether `status` says the coordinator was not reached or went away mid-call (refused connection,
/// broken stream, no answer in time), rather than being its answer.
pub fn unreachable(status: &tonic::Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::Unknown | Code::Cancelled | Code::DeadlineExceeded
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn workers_spread_over_the_coordinators_and_each_starts_at_the_same_one_every_time() {
        let mut seen = [0usize; 3];
        for seed in 0..60u8 {
            let id = dualrig_proto::identity::Identity::from_secret([seed; 32]).id();
            let start = Coordinators::rotation_start(&id, 3);
            assert_eq!(start, Coordinators::rotation_start(&id, 3));
            seen[start] += 1;
        }
        assert!(
            seen.iter().all(|n| *n > 0),
            "every coordinator is someone's first: {seen:?}"
        );
        let id = dualrig_proto::identity::Identity::from_secret([1; 32]).id();
        assert_eq!(Coordinators::rotation_start(&id, 1), 0);
    }

    #[tokio::test]
    async fn the_list_goes_round_from_its_start() {
        let urls = vec![
            "http://127.0.0.1:1".to_owned(),
            "http://127.0.0.1:2".to_owned(),
            "http://127.0.0.1:3".to_owned(),
        ];
        let coordinators = Coordinators::new(urls, 4, None).expect("coordinators");
        assert_eq!(coordinators.current_url(), "http://127.0.0.1:2");
        assert_eq!(coordinators.advance(), 2);
        assert_eq!(coordinators.advance(), 0);
        assert_eq!(coordinators.current_url(), "http://127.0.0.1:1");
    }
}
