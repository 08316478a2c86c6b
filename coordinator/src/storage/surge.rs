//! Surge pricing for hot blobs (PROTOCOL §6.8). A blob's saturation is the download demand of the last
//! `surge_window` (bytes asked by Gets that were served) over what its holders can serve in that time
//! (online verified holders × `surge_serve_bytes_per_sec` × the window). Above `surge_threshold_ppm`
//! the blob is hot: a paid download of it owes the holder's price times a multiplier (saturation over
//! the threshold, at most `surge_max_multiplier_ppm`), and repair keeps `surge_extra_replicas` more
//! copies of it. The window slides, so the multiplier falls back to ×1 as demand falls.
//!
//! Demand is counted only for Gets that got past every check (paid ones after their payment), so
//! raising a priced blob's multiplier costs real tickets.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;
use std::time::{Duration, Instant};

pub use dualrig_proto::ticket::{SURGE_UNIT_PPM as UNIT_PPM, surged_price};

/// Blobs whose demand is tracked at once; the oldest are forgotten past it.
const MAX_TRACKED: usize = 65_536;

/// The rules of surge pricing, from the coordinator's config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SurgeRules {
    pub window: Duration,
    /// Bytes one holder is taken to serve per second.
    pub serve_bytes_per_sec: u64,
    /// Saturation, in ppm of capacity, above which a blob is hot.
    pub threshold_ppm: u32,
    pub max_multiplier_ppm: u32,
    /// Copies kept on top of a hot blob's replicas.
    pub extra_replicas: u32,
}

/// The bytes asked of one blob, oldest first, with when.
type Asks = VecDeque<(Instant, u64)>;

/// Recent download demand per blob.
#[derive(Debug)]
pub struct Surge {
    rules: SurgeRules,
    demand: Mutex<HashMap<[u8; 32], Asks>>,
}

impl Surge {
    pub fn new(rules: SurgeRules) -> Self {
        Self {
            rules,
            demand: Mutex::default(),
        }
    }

    pub fn rules(&self) -> &SurgeRules {
        &self.rules
    }

    /// Counts `bytes` asked of `root` now.
    pub fn record(&self, root: [u8; 32], bytes: u64) {
        let now = Instant::now();
        let mut demand = self.demand.lock().unwrap_or_else(|p| p.into_inner());
        if demand.len() >= MAX_TRACKED && !demand.contains_key(&root) {
            self.forget_quiet(&mut demand, now);
            if demand.len() >= MAX_TRACKED {
                // Still full of live demand: drop the blob asked of longest ago.
                let oldest = demand
                    .iter()
                    .min_by_key(|(_, asks)| asks.back().map(|(at, _)| *at))
                    .map(|(root, _)| *root);
                if let Some(oldest) = oldest {
                    demand.remove(&oldest);
                }
            }
        }
        demand.entry(root).or_default().push_back((now, bytes));
    }

    fn forget_quiet(&self, demand: &mut HashMap<[u8; 32], Asks>, now: Instant) {
        let window = self.rules.window;
        demand.retain(|_, asks| {
            while asks
                .front()
                .is_some_and(|(at, _)| now.duration_since(*at) >= window)
            {
                asks.pop_front();
            }
            !asks.is_empty()
        });
    }

    /// Bytes asked of `root` within the window.
    pub fn demand(&self, root: &[u8; 32]) -> u64 {
        let now = Instant::now();
        let mut demand = self.demand.lock().unwrap_or_else(|p| p.into_inner());
        let Some(asks) = demand.get_mut(root) else {
            return 0;
        };
        while asks
            .front()
            .is_some_and(|(at, _)| now.duration_since(*at) >= self.rules.window)
        {
            asks.pop_front();
        }
        let total = asks.iter().fold(0u64, |sum, (_, b)| sum.saturating_add(*b));
        if asks.is_empty() {
            demand.remove(root);
        }
        total
    }

    /// Demand over capacity, in ppm: `u64::MAX` when the blob has demand and no holder to serve it.
    pub fn saturation_ppm(&self, root: &[u8; 32], holders: usize) -> u64 {
        let demand = self.demand(root);
        let capacity = (holders as u128)
            * u128::from(self.rules.serve_bytes_per_sec)
            * self.rules.window.as_millis()
            / 1000;
        if demand == 0 {
            return 0;
        }
        if capacity == 0 {
            return u64::MAX;
        }
        u64::try_from(u128::from(demand) * 1_000_000 / capacity).unwrap_or(u64::MAX)
    }

    /// The price multiplier for `root` served by `holders`, in ppm (×1 unless hot).
    pub fn multiplier_ppm(&self, root: &[u8; 32], holders: usize) -> u32 {
        multiplier(&self.rules, self.saturation_ppm(root, holders))
    }
}

/// ×1 up to the threshold; above it saturation ÷ threshold, capped.
pub fn multiplier(rules: &SurgeRules, saturation_ppm: u64) -> u32 {
    let threshold = u64::from(rules.threshold_ppm.max(1));
    if saturation_ppm <= threshold {
        return UNIT_PPM;
    }
    let scaled = u128::from(saturation_ppm) * u128::from(UNIT_PPM) / u128::from(threshold);
    let capped = scaled.min(u128::from(rules.max_multiplier_ppm.max(UNIT_PPM)));
    u32::try_from(capped).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules() -> SurgeRules {
        SurgeRules {
            window: Duration::from_secs(3600),
            serve_bytes_per_sec: 10,
            threshold_ppm: 1_000_000,
            max_multiplier_ppm: 4_000_000,
            extra_replicas: 1,
        }
    }

    #[test]
    fn the_multiplier_follows_saturation_over_the_threshold_and_is_capped() {
        let r = rules();
        assert_eq!(multiplier(&r, 0), UNIT_PPM);
        assert_eq!(multiplier(&r, 1_000_000), UNIT_PPM);
        assert_eq!(multiplier(&r, 1_500_000), 1_500_000);
        assert_eq!(multiplier(&r, 9_000_000), 4_000_000);
        assert_eq!(multiplier(&r, u64::MAX), 4_000_000);
        assert_eq!(surged_price(3, 1_500_000), 5);
        assert_eq!(surged_price(0, 4_000_000), 0);
        assert_eq!(surged_price(7, UNIT_PPM), 7);
    }

    #[test]
    fn saturation_is_demand_over_what_the_holders_serve_in_the_window() {
        let surge = Surge::new(rules());
        let root = [1; 32];
        // One holder serves 10 B/s × 3600 s = 36 000 bytes a window.
        assert_eq!(surge.saturation_ppm(&root, 1), 0);
        surge.record(root, 36_000);
        assert_eq!(surge.saturation_ppm(&root, 1), 1_000_000);
        assert_eq!(surge.multiplier_ppm(&root, 1), UNIT_PPM);
        surge.record(root, 36_000);
        assert_eq!(surge.multiplier_ppm(&root, 1), 2_000_000);
        // A second holder halves it.
        assert_eq!(surge.multiplier_ppm(&root, 2), UNIT_PPM);
        assert_eq!(surge.saturation_ppm(&root, 0), u64::MAX);
        assert_eq!(surge.demand(&[2; 32]), 0);
    }

    #[test]
    fn demand_older_than_the_window_no_longer_counts() {
        let surge = Surge::new(SurgeRules {
            window: Duration::ZERO,
            ..rules()
        });
        surge.record([1; 32], 1 << 40);
        assert_eq!(surge.demand(&[1; 32]), 0);
        assert_eq!(surge.multiplier_ppm(&[1; 32], 1), UNIT_PPM);
    }
}
