//! Places that peers hold while the coordinator waits on them: at most a few from one address and a
//! bounded number in all, so a peer with a throwaway key (or many of them on one host) cannot make the
//! coordinator hold an unbounded number of half-done things. A place is given back when its [`Slot`] is
//! dropped.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, MutexGuard};

/// Held places by the address holding them, and who is told their number when it changes.
#[derive(Debug)]
struct Shared {
    counts: Mutex<HashMap<Option<IpAddr>, usize>>,
    report: fn(usize),
}

#[derive(Debug)]
pub struct Slots {
    shared: Arc<Shared>,
    per_host: usize,
    all: usize,
}

/// One held place, given back on drop.
#[derive(Debug)]
pub struct Slot {
    shared: Arc<Shared>,
    from: Option<IpAddr>,
}

/// No place was free: `here` are held by the asking address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Full {
    pub here: usize,
}

impl Slots {
    pub fn new(per_host: usize, all: usize) -> Self {
        Self::reporting(per_host, all, |_| {})
    }

    /// Slots whose number held is given to `report` (a gauge) at every change, under the lock that
    /// changes it, so the last report is always the number held.
    pub fn reporting(per_host: usize, all: usize, report: fn(usize)) -> Self {
        Self {
            shared: Arc::new(Shared {
                counts: Mutex::default(),
                report,
            }),
            per_host,
            all,
        }
    }

    /// Places held now, from all addresses.
    pub fn held(&self) -> usize {
        self.shared.lock().values().sum()
    }

    /// A place for `from`, when it holds fewer than `per_host` and fewer than `all` are held.
    pub fn take(&self, from: Option<IpAddr>) -> Result<Slot, Full> {
        let mut held = self.shared.lock();
        let all: usize = held.values().sum();
        let here = held.get(&from).copied().unwrap_or(0);
        if all >= self.all || here >= self.per_host {
            return Err(Full { here });
        }
        *held.entry(from).or_default() += 1;
        (self.shared.report)(all + 1);
        Ok(Slot {
            shared: Arc::clone(&self.shared),
            from,
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut held = self.shared.lock();
        if let Some(n) = held.get_mut(&self.from) {
            *n -= 1;
            if *n == 0 {
                held.remove(&self.from);
            }
        }
        (self.shared.report)(held.values().sum());
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, HashMap<Option<IpAddr>, usize>> {
        // Counts stay consistent under a panic elsewhere: each change is one statement.
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn places_are_bounded_per_host_and_in_all_and_come_back_on_drop() {
        static REPORTED: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let reported = || REPORTED.load(std::sync::atomic::Ordering::SeqCst);
        let slots = Slots::reporting(2, 3, |n| {
            REPORTED.store(n, std::sync::atomic::Ordering::SeqCst)
        });
        let a = Some(IpAddr::from([10, 0, 0, 1]));
        let b = Some(IpAddr::from([10, 0, 0, 2]));
        let first = slots.take(a).expect("first");
        let _second = slots.take(a).expect("second");
        assert_eq!(
            slots.take(a).expect_err("a third from one host"),
            Full { here: 2 }
        );
        let _other = slots.take(b).expect("another host");
        assert_eq!(
            slots.take(b).expect_err("a fourth in all"),
            Full { here: 1 },
            "all 3 held"
        );
        assert_eq!(reported(), 3);
        drop(first);
        assert_eq!(reported(), 2, "a place given back is reported");
        let _again = slots.take(b).expect("a place came back");
        assert_eq!(slots.held(), 3);
        assert_eq!(reported(), 3);
    }
}
