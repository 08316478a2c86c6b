//! The CPU backend: the `blake3` crate (SIMD, multithreaded with rayon) behind [`BlobHasher`].
//!
//! Files of [`MAP_MIN`] bytes and more are hashed in place, mapped under a read lease ([`mapped`]),
//! which saves the copy a read makes; others, and any file that cannot be leased or that somebody
//! wants to write while it is hashed, are read, where a file that comes up short is reported as
//! [`HashError::Truncated`].
//!
//! [`mapped`]: super::mapped

use std::fs::File;
use std::io::Read;
use std::path::Path;
use std::sync::{Mutex, PoisonError};

use blake3::hazmat::{ChainingValue, HasherExt, merge_subtrees_root};
use rayon::prelude::*;

use super::mapped::{LeasedMap, MAP_MIN};
use super::source::WindowSource;
use super::tree::{Levels, Sink, TreeAssembler, WindowOutput, chunk_count, merge_level};
use super::{BlobDigest, BlobHasher, CHUNK_LEN, HashError, HashMode, Outboard, open_regular_file};

/// Below this many bytes, spreading one hash over threads costs more than it saves.
const RAYON_MIN: usize = 128 * 1024;

/// Window over a mapped file: large, since no buffer has to stay in cache, and short enough to hash
/// that a pending lease break is seen within milliseconds.
const MAPPED_WINDOW: usize = 16 << 20;

/// Default streaming window: a power of two of chunks, enough to keep every thread busy, small
/// enough that the window just read is still in cache when it is hashed.
fn default_window() -> usize {
    (rayon::current_num_threads().next_power_of_two() * (512 << 10)).clamp(1 << 20, 16 << 20)
}

/// Hashes on the CPU with the `blake3` crate.
#[derive(Debug)]
pub struct CpuHasher {
    window: usize,
    /// Window buffers kept between calls: fresh ones cost a page fault per 4 KiB on first touch.
    spare: Mutex<Vec<Vec<u8>>>,
}

impl Default for CpuHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl CpuHasher {
    pub fn new() -> Self {
        Self::with_window(default_window())
    }

    fn with_window(window: usize) -> Self {
        CpuHasher {
            window,
            spare: Mutex::new(Vec::new()),
        }
    }

    /// A hasher that streams in windows of `chunks` chunks (rounded up to a power of two); small
    /// windows let tests exercise multi-window streaming on small inputs.
    pub fn with_window_chunks(chunks: usize) -> Self {
        Self::with_window(chunks.max(1).next_power_of_two() * CHUNK_LEN)
    }
}

fn update(hasher: &mut blake3::Hasher, data: &[u8]) {
    if data.len() >= RAYON_MIN {
        hasher.update_rayon(data);
    } else {
        hasher.update(data);
    }
}

/// Every level of the subtree over `data`, whose first chunk has index `first_chunk`. All nodes,
/// the top one included, are non-root chaining values.
fn subtree_levels(data: &[u8], first_chunk: u64, mode: HashMode) -> Levels {
    let chunk_cv = |(i, chunk): (usize, &[u8])| -> ChainingValue {
        let mut hasher = mode.hasher();
        hasher.set_input_offset((first_chunk + i as u64) * CHUNK_LEN as u64);
        hasher.update(chunk);
        hasher.finalize_non_root()
    };
    let mut level: Vec<ChainingValue> = if data.len() >= RAYON_MIN {
        data.par_chunks(CHUNK_LEN)
            .enumerate()
            .map(chunk_cv)
            .collect()
    } else {
        data.chunks(CHUNK_LEN).enumerate().map(chunk_cv).collect()
    };
    let mut levels = Vec::new();
    while level.len() > 1 {
        let next = merge_level(&level, mode);
        levels.push(level);
        level = next;
    }
    levels.push(level);
    levels
}

/// Hashes one window. `rooted` means the window is the whole input.
fn window_output(
    data: &[u8],
    first_chunk: u64,
    mode: HashMode,
    rooted: bool,
    keep_levels: bool,
) -> WindowOutput {
    if rooted && data.len() <= CHUNK_LEN {
        let mut hasher = mode.hasher();
        hasher.update(data);
        return WindowOutput::Root {
            hash: hasher.finalize(),
            levels: None,
        };
    }
    if rooted {
        let levels = subtree_levels(data, first_chunk, mode);
        let pair = &levels[levels.len() - 2];
        let hash = merge_subtrees_root(&pair[0], &pair[1], mode.hazmat());
        return WindowOutput::Root {
            hash,
            levels: keep_levels.then_some(levels),
        };
    }
    if keep_levels {
        let levels = subtree_levels(data, first_chunk, mode);
        let cv = levels[levels.len() - 1][0];
        return WindowOutput::Subtree {
            cv,
            levels: Some(levels),
        };
    }
    let mut hasher = mode.hasher();
    hasher.set_input_offset(first_chunk * CHUNK_LEN as u64);
    update(&mut hasher, data);
    WindowOutput::Subtree {
        cv: hasher.finalize_non_root(),
        levels: None,
    }
}

impl CpuHasher {
    fn take_buffer(&self) -> Vec<u8> {
        self.spare
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop()
            .unwrap_or_else(|| vec![0u8; self.window])
    }

    fn give_back(&self, buffers: [Vec<u8>; 2]) {
        let mut spare = self.spare.lock().unwrap_or_else(PoisonError::into_inner);
        for buffer in buffers {
            if spare.len() < 2 {
                spare.push(buffer);
            }
        }
    }

    /// Runs `f` with two window buffers from the spare pool.
    fn with_buffers<T>(&self, f: impl FnOnce(&mut Vec<u8>, &mut Vec<u8>) -> T) -> T {
        let mut a = self.take_buffer();
        let mut b = self.take_buffer();
        let out = f(&mut a, &mut b);
        self.give_back([a, b]);
        out
    }

    /// Streams with the crate's own incremental hasher: no tree bookkeeping needed.
    fn stream_root(
        &self,
        source: &mut WindowSource<'_>,
        mode: HashMode,
        current: &mut Vec<u8>,
        next: &mut Vec<u8>,
    ) -> Result<BlobDigest, HashError> {
        let mut hasher = mode.hasher();
        let mut filled = source.fill(current)?;
        loop {
            if filled.last {
                update(&mut hasher, &current[..filled.len]);
                break;
            }
            // Hash this window on the pool while this thread reads the next one.
            let data = &current[..filled.len];
            let hasher_ref = &mut hasher;
            let read = rayon::in_place_scope(|scope| {
                scope.spawn(move |_| update(hasher_ref, data));
                source.fill(next)
            });
            filled = read?;
            std::mem::swap(current, next);
        }
        Ok(BlobDigest {
            hash: hasher.finalize(),
            len: source.consumed(),
            outboard: None,
        })
    }

    fn stream_tree(
        &self,
        source: &mut WindowSource<'_>,
        mode: HashMode,
        current: &mut [u8],
        sink: Sink<'_>,
    ) -> Result<BlobDigest, HashError> {
        let window_chunks = (self.window / CHUNK_LEN) as u64;
        let mut tree = TreeAssembler::new(mode, window_chunks, sink);
        let mut first_chunk = 0u64;
        let mut index = 0usize;
        loop {
            let filled = source.fill(current)?;
            let rooted = index == 0 && filled.last;
            tree.push(window_output(
                &current[..filled.len],
                first_chunk,
                mode,
                rooted,
                true,
            ));
            if filled.last {
                break;
            }
            first_chunk += window_chunks;
            index += 1;
        }
        let len = source.consumed();
        let (hash, outboard) = tree.finish(len).map_err(HashError::OutboardWrite)?;
        Ok(BlobDigest {
            hash,
            len,
            outboard,
        })
    }
}

impl CpuHasher {
    /// Hashes a leased map window by window, or `None` as soon as somebody waits to write the file.
    fn hash_mapped(
        &self,
        map: &LeasedMap<'_>,
        mode: HashMode,
        with_outboard: bool,
    ) -> Option<Result<BlobDigest, HashError>> {
        let data = map.bytes();
        let len = data.len() as u64;
        let windows = data.chunks(MAPPED_WINDOW);
        if !with_outboard {
            let mut hasher = mode.hasher();
            for window in windows {
                if !map.undisturbed() {
                    return None;
                }
                update(&mut hasher, window);
            }
            return Some(Ok(BlobDigest {
                hash: hasher.finalize(),
                len,
                outboard: None,
            }));
        }
        let window_chunks = (MAPPED_WINDOW / CHUNK_LEN) as u64;
        let rooted = windows.len() == 1;
        let mut tree = TreeAssembler::new(mode, window_chunks, Sink::Memory);
        for (i, window) in windows.enumerate() {
            if !map.undisturbed() {
                return None;
            }
            tree.push(window_output(
                window,
                i as u64 * window_chunks,
                mode,
                rooted,
                true,
            ));
        }
        Some(
            tree.finish(len)
                .map_err(HashError::OutboardWrite)
                .map(|(hash, outboard)| BlobDigest {
                    hash,
                    len,
                    outboard,
                }),
        )
    }
}

impl BlobHasher for CpuHasher {
    fn describe(&self) -> String {
        format!(
            "cpu: blake3 rayon, {} threads",
            rayon::current_num_threads()
        )
    }

    fn hash_bytes(
        &self,
        data: &[u8],
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        let len = data.len() as u64;
        if !with_outboard {
            let mut hasher = mode.hasher();
            update(&mut hasher, data);
            return Ok(BlobDigest {
                hash: hasher.finalize(),
                len,
                outboard: None,
            });
        }
        let (hash, levels) = match window_output(data, 0, mode, true, true) {
            WindowOutput::Root { hash, levels } => (hash, levels.unwrap_or_default()),
            WindowOutput::Subtree { .. } => unreachable!("a rooted window yields the root"),
        };
        debug_assert!(chunk_count(len) == 1 || !levels.is_empty());
        Ok(BlobDigest {
            hash,
            len,
            outboard: Some(Outboard::from_levels(len, &levels)),
        })
    }

    fn hash_reader(
        &self,
        reader: &mut dyn Read,
        expected_len: Option<u64>,
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        let mut source = WindowSource::new(reader, expected_len);
        self.with_buffers(|current, next| {
            if with_outboard {
                self.stream_tree(&mut source, mode, current, Sink::Memory)
            } else {
                self.stream_root(&mut source, mode, current, next)
            }
        })
    }

    fn hash_reader_to_file(
        &self,
        reader: &mut dyn Read,
        len: u64,
        mode: HashMode,
        outboard: &File,
    ) -> Result<BlobDigest, HashError> {
        let mut source = WindowSource::new(reader, Some(len));
        self.with_buffers(|current, _| {
            self.stream_tree(
                &mut source,
                mode,
                current,
                Sink::File {
                    file: outboard,
                    len,
                },
            )
        })
    }

    fn hash_file(
        &self,
        path: &Path,
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        let (mut file, len) = open_regular_file(path)?;
        if len >= MAP_MIN
            && let Some(map) = LeasedMap::new(&file, len)
            && let Some(digest) = self.hash_mapped(&map, mode, with_outboard)
        {
            return digest.map_err(|e| e.for_input(path));
        }
        // Not leased, or somebody wants to write it: read it, from the start (the map never moved
        // the file's position).
        self.hash_reader(&mut file, Some(len), mode, with_outboard)
            .map_err(|e| e.for_input(path))
    }

    fn hash_batch(&self, blobs: &[&[u8]], mode: HashMode) -> Result<Vec<blake3::Hash>, HashError> {
        Ok(blobs
            .par_iter()
            .map(|blob| {
                let mut hasher = mode.hasher();
                update(&mut hasher, blob);
                hasher.finalize()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn a_writer_waiting_stops_the_mapped_hash_and_the_file_is_read_instead() {
        let data: Vec<u8> = (0..(MAP_MIN as usize) * 2)
            .map(|i| (i % 253) as u8)
            .collect();
        let mut tmp = tempfile::NamedTempFile::new().expect("temp file");
        tmp.write_all(&data).expect("writes");
        let path = tmp.into_temp_path();
        let hasher = CpuHasher::new();
        let reader = File::open(&path).expect("opens");
        let map = LeasedMap::new(&reader, data.len() as u64).expect("maps a file nobody writes");
        let whole = hasher
            .hash_mapped(&map, HashMode::Plain, true)
            .expect("undisturbed")
            .expect("hashes");
        assert_eq!(whole.hash, blake3::hash(&data));

        let truncator =
            crate::hash::mapped::testing::truncate_behind(&map, path.to_path_buf(), 5000);
        for outboard in [false, true] {
            assert!(
                hasher
                    .hash_mapped(&map, HashMode::Plain, outboard)
                    .is_none(),
                "a pending break stops the mapped hash before it touches a page"
            );
        }
        drop(map);
        truncator.join().expect("truncator");
        let digest = hasher
            .hash_file(&path, HashMode::Plain, false)
            .expect("hashes what is left");
        assert_eq!(digest.hash, blake3::hash(&data[..5000]));
    }
}
