//! How many transcodes run at once: the job slots every job waits for, resized live by a reload
//! without touching the jobs that hold one, and the encoder probe that sizes them for `sessions = auto`.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use dualrig_media::EncoderSelection;
use tokio::sync::{Notify, watch};
use tracing::info;

use crate::config::Sessions;

/// Most 1080p encoder sessions a probe opens.
const SESSION_PROBE_CAP: u32 = 32;

/// The gate jobs pass before they transcode. A shrink takes effect as running jobs finish (none is
/// stopped); a growth lets waiting jobs start at once.
#[derive(Debug)]
pub struct JobSlots {
    state: Mutex<SlotState>,
    /// Woken when a slot frees, the size changes or a probe ends.
    changed: Notify,
    /// The size, for the session that tells the coordinator.
    size: watch::Sender<u32>,
}

#[derive(Debug)]
struct SlotState {
    size: u32,
    running: u32,
    /// Encoder sessions the running jobs hold: one per rendition.
    encoders: u32,
    /// A re-probe is opening encoder sessions: no job starts until it has closed them.
    probing: bool,
}

/// One job's slot, given back when dropped.
#[derive(Debug)]
pub struct JobSlot {
    slots: Arc<JobSlots>,
    encoders: u32,
}

impl JobSlots {
    pub fn new(size: u32) -> Arc<Self> {
        let size = size.max(1);
        crate::metrics::sessions(size);
        Arc::new(Self {
            state: Mutex::new(SlotState {
                size,
                running: 0,
                encoders: 0,
                probing: false,
            }),
            changed: Notify::new(),
            size: watch::Sender::new(size),
        })
    }

    fn lock(&self) -> MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Jobs allowed at once.
    pub fn size(&self) -> u32 {
        self.lock().size
    }

    /// Jobs holding a slot now.
    pub fn running(&self) -> u32 {
        self.lock().running
    }

    /// The size now and every later change.
    pub fn subscribe(&self) -> watch::Receiver<u32> {
        self.size.subscribe()
    }

    /// Sets how many jobs run at once and returns the old size. Running jobs keep their slots.
    pub fn resize(&self, size: u32) -> u32 {
        let size = size.max(1);
        let old = std::mem::replace(&mut self.lock().size, size);
        self.size.send_replace(size);
        crate::metrics::sessions(size);
        self.changed.notify_waiters();
        old
    }

    /// Waits for a slot for a job of `encoders` renditions.
    pub async fn acquire(self: &Arc<Self>, encoders: u32) -> JobSlot {
        loop {
            // Registered before the check, so a slot freed in between still wakes this job.
            let changed = self.changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            if let Some(slot) = self.try_acquire(encoders) {
                return slot;
            }
            changed.await;
        }
    }

    /// A slot if one is free now.
    pub fn try_acquire(self: &Arc<Self>, encoders: u32) -> Option<JobSlot> {
        let mut state = self.lock();
        if state.probing || state.running >= state.size {
            return None;
        }
        state.running += 1;
        state.encoders += encoders;
        Some(JobSlot {
            slots: Arc::clone(self),
            encoders,
        })
    }

    /// Holds new jobs back and returns the encoder sessions the running ones hold.
    fn begin_probe(&self) -> u32 {
        let mut state = self.lock();
        state.probing = true;
        state.encoders
    }

    fn end_probe(&self) {
        self.lock().probing = false;
        self.changed.notify_waiters();
    }
}

impl Drop for JobSlot {
    fn drop(&mut self) {
        let mut state = self.slots.lock();
        state.running -= 1;
        state.encoders -= self.encoders;
        drop(state);
        self.slots.changed.notify_waiters();
    }
}

/// Jobs to run at once for `sessions` at start-up, probing the encoder for `auto`. Blocking: the
/// probe opens encoder sessions.
pub fn initial_sessions(sessions: Sessions, encoder: &EncoderSelection) -> u32 {
    match sessions {
        Sessions::Fixed(n) => n.get(),
        Sessions::Auto => probed_sessions(encoder, 0),
    }
}

/// Jobs to run at once for `sessions` on a running worker. For `auto` the encoder is probed again
/// while running jobs carry on: no new job starts during the probe (so none finds the encoder full),
/// and the sessions running jobs hold count as the encoder's.
pub async fn current_sessions(
    sessions: Sessions,
    encoder: &Arc<EncoderSelection>,
    slots: &Arc<JobSlots>,
) -> u32 {
    let Sessions::Auto = sessions else {
        return initial_sessions(sessions, encoder);
    };
    if !encoder.hardware {
        return probed_sessions(encoder, 0);
    }
    struct Probing<'a>(&'a JobSlots);
    impl Drop for Probing<'_> {
        fn drop(&mut self) {
            self.0.end_probe();
        }
    }
    let held = slots.begin_probe();
    let _probing = Probing(slots);
    let encoder = Arc::clone(encoder);
    tokio::task::spawn_blocking(move || probed_sessions(&encoder, held))
        .await
        // A probe that panicked leaves the sessions as they are.
        .unwrap_or_else(|_| slots.size())
}

/// libx264 already uses every core, so 1; a hardware encoder, as many jobs as its sessions hold
/// (those it opens now plus `held` by running jobs), each job opening one session per rendition of
/// the default ladder; at least 1.
fn probed_sessions(encoder: &EncoderSelection, held: u32) -> u32 {
    if !encoder.hardware {
        return 1;
    }
    let renditions = dualrig_proto::profile::DEFAULT_LADDER.len() as u32;
    let opened = dualrig_media::probe_sessions(encoder, SESSION_PROBE_CAP.saturating_sub(held));
    info!(encoder = %encoder.name, opened, held, "encoder sessions probed");
    ((opened + held) / renditions).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn growing_lets_a_waiting_job_start() {
        let slots = JobSlots::new(1);
        let first = slots.try_acquire(3).expect("a free slot");
        assert!(slots.try_acquire(3).is_none());
        let waiting = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire(2).await }
        });
        assert_eq!(slots.resize(2), 1);
        let second = waiting.await.expect("the waiting job starts");
        assert_eq!(slots.running(), 2);
        drop((first, second));
        assert_eq!(slots.running(), 0);
    }

    #[tokio::test]
    async fn shrinking_keeps_running_jobs_and_holds_new_ones_until_they_finish() {
        let slots = JobSlots::new(2);
        let a = slots.try_acquire(1).expect("slot a");
        let b = slots.try_acquire(1).expect("slot b");
        assert_eq!(slots.resize(1), 2);
        assert_eq!(slots.running(), 2, "running jobs keep their slots");
        drop(a);
        assert!(slots.try_acquire(1).is_none(), "one still runs: full");
        drop(b);
        let c = slots.try_acquire(1).expect("free once both finished");
        assert!(slots.try_acquire(1).is_none());
        drop(c);
    }

    #[tokio::test]
    async fn no_job_starts_during_a_probe_and_running_jobs_count_as_held() {
        let slots = JobSlots::new(4);
        let a = slots.try_acquire(3).expect("slot");
        assert_eq!(slots.begin_probe(), 3);
        assert!(slots.try_acquire(1).is_none(), "held back while probing");
        let waiting = tokio::spawn({
            let slots = Arc::clone(&slots);
            async move { slots.acquire(1).await }
        });
        slots.end_probe();
        let b = waiting.await.expect("starts after the probe");
        assert_eq!(slots.begin_probe(), 4);
        slots.end_probe();
        drop((a, b));
    }

    #[tokio::test]
    async fn the_size_is_published_to_subscribers() {
        let slots = JobSlots::new(1);
        let mut size = slots.subscribe();
        assert_eq!(*size.borrow_and_update(), 1);
        slots.resize(3);
        size.changed().await.expect("changed");
        assert_eq!(*size.borrow_and_update(), 3);
        assert_eq!(slots.size(), 3);
    }
}
