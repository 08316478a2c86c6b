//! What clients may make the coordinator hold while their uploads arrive: bytes reserved from a budget
//! before they are taken (in total and per client address), a disk reserve that Put staging never
//! eats into, and deadlines (idle and total) on every upload. A stalled or oversized upload is refused
//! with `ResourceExhausted` or `DeadlineExceeded` and gives its reservation back at once.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use crate::error::CoordinatorError;

/// A budget of bytes shared by every upload of one kind (segments in memory, blobs on disk).
#[derive(Debug)]
pub struct StagingBudget {
    what: &'static str,
    total: u64,
    per_client: u64,
    used: Mutex<Used>,
    /// Published with the bytes in use after every change.
    in_use_gauge: Option<fn(u64)>,
}

#[derive(Debug, Default)]
struct Used {
    total: u64,
    by_client: HashMap<IpAddr, u64>,
}

/// Bytes held for one upload; given back when dropped.
#[derive(Debug)]
pub struct Reservation {
    budget: Arc<StagingBudget>,
    client: Option<IpAddr>,
    bytes: u64,
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut used = self.budget.lock();
        used.total -= self.bytes;
        self.budget.publish(used.total);
        if let Some(client) = self.client
            && let Some(held) = used.by_client.get_mut(&client)
        {
            *held -= self.bytes;
            if *held == 0 {
                used.by_client.remove(&client);
            }
        }
    }
}

impl StagingBudget {
    pub fn new(what: &'static str, total: u64, per_client: u64) -> Arc<Self> {
        Self::build(what, total, per_client, None)
    }

    /// [`Self::new`] that publishes the bytes in use through `gauge` after every change.
    pub fn with_gauge(
        what: &'static str,
        total: u64,
        per_client: u64,
        gauge: fn(u64),
    ) -> Arc<Self> {
        Self::build(what, total, per_client, Some(gauge))
    }

    fn build(
        what: &'static str,
        total: u64,
        per_client: u64,
        in_use_gauge: Option<fn(u64)>,
    ) -> Arc<Self> {
        Arc::new(Self {
            what,
            total,
            per_client,
            used: Mutex::default(),
            in_use_gauge,
        })
    }

    fn publish(&self, in_use: u64) {
        if let Some(gauge) = self.in_use_gauge {
            gauge(in_use);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Used> {
        self.used.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Reserves `bytes` for an upload from `client` (its address; `None` when unknown, which counts
    /// against the total only).
    pub fn reserve(
        self: &Arc<Self>,
        client: Option<IpAddr>,
        bytes: u64,
    ) -> Result<Reservation, CoordinatorError> {
        let mut used = self.lock();
        let held = client
            .and_then(|c| used.by_client.get(&c).copied())
            .unwrap_or(0);
        if held.saturating_add(bytes) > self.per_client {
            return Err(CoordinatorError::Busy(format!(
                "this client already has {held} bytes of {} uploads in progress; at most {} at once \
                 from one address: wait for them to finish",
                self.what, self.per_client
            )));
        }
        if used.total.saturating_add(bytes) > self.total {
            return Err(CoordinatorError::Busy(format!(
                "{} bytes of {} uploads are in progress, at most {} at once; try again shortly",
                used.total, self.what, self.total
            )));
        }
        used.total += bytes;
        self.publish(used.total);
        if let Some(c) = client {
            *used.by_client.entry(c).or_default() += bytes;
        }
        Ok(Reservation {
            budget: Arc::clone(self),
            client,
            bytes,
        })
    }

    /// Bytes reserved right now.
    pub fn in_use(&self) -> u64 {
        self.lock().total
    }
}

/// Refuses to stage `bytes` in `dir` when the disk would keep less than `reserve` free afterwards.
pub fn check_disk(dir: &Path, bytes: u64, reserve: u64) -> Result<(), CoordinatorError> {
    let free = fs4::available_space(dir)?;
    if free.saturating_sub(bytes) < reserve {
        return Err(CoordinatorError::Busy(format!(
            "the coordinator's disk has {free} bytes free; staging {bytes} more would leave less \
             than its {reserve}-byte reserve"
        )));
    }
    Ok(())
}

/// The deadlines of one upload: each message within `idle` of the last, all within `total`.
#[derive(Debug, Clone, Copy)]
pub struct UploadDeadlines {
    pub idle: Duration,
    pub total: Duration,
    until: tokio::time::Instant,
}

impl UploadDeadlines {
    pub fn new(idle: Duration, total: Duration) -> Self {
        Self {
            idle,
            total,
            until: tokio::time::Instant::now() + total,
        }
    }

    /// Waits for `next` within both deadlines.
    pub async fn next<T>(
        &self,
        what: &'static str,
        received: u64,
        next: impl std::future::Future<Output = T>,
    ) -> Result<T, CoordinatorError> {
        let idle_until = tokio::time::Instant::now() + self.idle;
        let idle = idle_until < self.until;
        let deadline = if idle { idle_until } else { self.until };
        tokio::time::timeout_at(deadline, next)
            .await
            .map_err(|_| CoordinatorError::UploadStalled {
                what,
                received,
                idle,
                limit: if idle { self.idle } else { self.total },
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_are_bounded_per_client_and_in_total_and_given_back() {
        let budget = StagingBudget::new("segment", 100, 60);
        let a = IpAddr::from([127, 0, 0, 2]);
        let b = IpAddr::from([127, 0, 0, 3]);
        let first = budget.reserve(Some(a), 50).expect("within both");
        assert!(budget.reserve(Some(a), 20).is_err(), "over a's share");
        let second = budget.reserve(Some(b), 50).expect("b has its own share");
        assert!(budget.reserve(Some(b), 1).is_err(), "over the total");
        assert_eq!(budget.in_use(), 100);
        drop(first);
        drop(second);
        assert_eq!(budget.in_use(), 0);
        budget.reserve(Some(a), 60).expect("given back");
    }
}
