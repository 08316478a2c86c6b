//! Hashing a file in place, memory-mapped, without ever touching a page that could vanish.
//!
//! A mapped file that another process truncates kills the reader with SIGBUS when it touches a page
//! past the new end. A read lease (`fcntl(F_SETLEASE, F_RDLCK)`) closes that hole:
//!
//! - the kernel grants it only while nobody has the file open for writing (writable mappings
//!   included), so nothing can change the file's length or bytes when hashing starts;
//! - anyone who then opens it for writing or truncates it is made to wait until the lease is given up
//!   (or `/proc/sys/fs/lease-break-time` passes), and the lease shows the break as pending.
//!
//! [`LeasedMap::undisturbed`] is asked before every window: once a break is pending the hasher stops
//! touching the map, gives the lease up, and hashes the file again by reading it, where a file that
//! shrinks or grows is an error as it always was. Where no lease can be had (a file somebody has open
//! for writing, one the worker does not own, a file system without leases) the file is read.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::sync::Once;

use memmap2::Mmap;

/// Files smaller than this are read: mapping and leasing cost more than the copy they save.
pub(crate) const MAP_MIN: u64 = 4 << 20;

/// A break must leave at least this long before the kernel takes the lease away; a shorter
/// `lease-break-time` (seconds) means files are read instead.
const LEASE_BREAK_MIN_SECS: u64 = 5;

/// A file mapped read-only under a read lease. Dropping it unmaps the file, then gives the lease up.
pub(crate) struct LeasedMap<'f> {
    file: &'f File,
    map: Option<Mmap>,
}

impl<'f> LeasedMap<'f> {
    /// Maps `file`, which was `len` bytes long when opened, or `None` when it must be read instead:
    /// no lease could be had, or its length changed before the lease was granted.
    pub fn new(file: &'f File, len: u64) -> Option<Self> {
        if len == 0 || usize::try_from(len).is_err() || !lease_break_time_allows() {
            return None;
        }
        ignore_lease_break_signal();
        if !set_lease(file, libc::F_RDLCK) {
            return None;
        }
        let mut leased = LeasedMap { file, map: None };
        // No writer can exist now, so this length holds until a break is pending.
        if file.metadata().ok()?.len() != len {
            return None;
        }
        // SAFETY: the file is mapped read-only and, under the read lease, nobody may open it for
        // writing or truncate it while the lease is held without the break showing in
        // `undisturbed`, which every access checks first; `Drop` unmaps before the lease is given up.
        #[allow(unsafe_code)]
        let map = unsafe { Mmap::map(file) }.ok()?;
        leased.map = Some(map);
        Some(leased)
    }

    /// The file's bytes. Touch them only after [`Self::undisturbed`] said so.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or_default()
    }

    /// True while the lease is held and nobody is waiting to write or truncate the file.
    pub fn undisturbed(&self) -> bool {
        get_lease(self.file) == Some(libc::F_RDLCK)
    }
}

impl Drop for LeasedMap<'_> {
    fn drop(&mut self) {
        // Unmap first: once the lease is gone the file may shrink under any page still mapped.
        self.map = None;
        set_lease(self.file, libc::F_UNLCK);
    }
}

fn set_lease(file: &File, kind: libc::c_int) -> bool {
    // SAFETY: F_SETLEASE takes an int argument and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_SETLEASE, kind) };
    rc == 0
}

fn get_lease(file: &File) -> Option<libc::c_int> {
    // SAFETY: F_GETLEASE takes no argument and touches no memory of ours.
    #[allow(unsafe_code)]
    let rc = unsafe { libc::fcntl(file.as_raw_fd(), libc::F_GETLEASE) };
    (rc >= 0).then_some(rc)
}

fn lease_break_time_allows() -> bool {
    std::fs::read_to_string("/proc/sys/fs/lease-break-time")
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .is_some_and(|secs| secs >= LEASE_BREAK_MIN_SECS)
}

/// The kernel announces a lease break with SIGIO, whose default action ends the process. The break
/// is read back with F_GETLEASE instead, so SIGIO is ignored, unless something already handles it.
fn ignore_lease_break_signal() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // SAFETY: sigaction with a null new action only reads the current one into `current`; the
        // second call installs SIG_IGN, which runs no code of ours.
        #[allow(unsafe_code)]
        unsafe {
            let mut current: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGIO, std::ptr::null(), &mut current) == 0
                && current.sa_sigaction == libc::SIG_DFL
            {
                libc::signal(libc::SIGIO, libc::SIG_IGN);
            }
        }
    });
}

/// Truncating a leased file from another thread, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::path::PathBuf;
    use std::thread::JoinHandle;
    use std::time::{Duration, Instant};

    use super::LeasedMap;

    /// Starts a thread that opens `path` for writing and truncates it to `len`, and returns once
    /// `map` shows that writer waiting for the lease (the thread finishes once the map is dropped).
    pub fn truncate_behind(map: &LeasedMap<'_>, path: PathBuf, len: u64) -> JoinHandle<()> {
        let truncator = std::thread::spawn(move || {
            let file = std::fs::OpenOptions::new()
                .write(true)
                .open(&path)
                .expect("opens for writing once the lease is gone");
            file.set_len(len).expect("truncates");
        });
        let deadline = Instant::now() + Duration::from_secs(20);
        while map.undisturbed() {
            assert!(Instant::now() < deadline, "the break never showed");
            std::thread::sleep(Duration::from_millis(1));
        }
        truncator
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    /// A file nobody holds open.
    fn file_of(len: usize) -> tempfile::TempPath {
        let mut tmp = tempfile::NamedTempFile::new().expect("temp file");
        tmp.write_all(&vec![5u8; len]).expect("writes");
        tmp.into_temp_path()
    }

    #[test]
    fn a_file_open_for_writing_is_not_mapped() {
        let tmp = file_of(1 << 20);
        let _writer = std::fs::OpenOptions::new()
            .write(true)
            .open(&*tmp)
            .expect("opens for writing");
        let reader = File::open(&*tmp).expect("opens");
        assert!(LeasedMap::new(&reader, 1 << 20).is_none());
    }

    #[test]
    fn a_length_that_changed_since_open_is_not_mapped() {
        let tmp = file_of(1 << 20);
        let reader = File::open(&*tmp).expect("opens");
        assert!(LeasedMap::new(&reader, 1 << 19).is_none());
        // The lease was given back: a writer gets the file at once, not after the break time.
        let path = tmp.to_path_buf();
        let (opened, wait) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let writer = std::fs::OpenOptions::new().write(true).open(&path);
            let _ = opened.send(writer.is_ok());
        });
        assert_eq!(wait.recv_timeout(Duration::from_secs(10)), Ok(true));
    }

    #[test]
    fn a_writer_waits_for_the_lease_and_the_map_sees_it_waiting() {
        let tmp = file_of(1 << 20);
        let reader = File::open(&*tmp).expect("opens");
        let map = LeasedMap::new(&reader, 1 << 20).expect("maps a file nobody writes");
        assert!(map.undisturbed());
        assert_eq!(map.bytes().len(), 1 << 20);
        let truncator = testing::truncate_behind(&map, tmp.to_path_buf(), 10);
        // The writer is still waiting: the length is what it was.
        assert_eq!(reader.metadata().expect("stat").len(), 1 << 20);
        drop(map);
        truncator.join().expect("truncator");
        assert_eq!(reader.metadata().expect("stat").len(), 10);
    }
}
