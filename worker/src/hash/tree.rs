//! BLAKE3's tree on the host: merging window chaining values into the root, and keeping every level
//! when an outboard is wanted.
//!
//! Merging each level pairwise and carrying an odd last node up unchanged yields exactly BLAKE3's
//! tree (the left subtree always holds the largest power of two of chunks below the total). Because
//! windows hold a power-of-two number of chunks, pairs never straddle two windows below the windows'
//! own level, so the levels of consecutive windows simply concatenate.

use std::fs::File;
use std::os::unix::fs::FileExt;

use blake3::hazmat::{ChainingValue, merge_subtrees_non_root, merge_subtrees_root};
use rayon::prelude::*;

use super::outboard::{HEADER_LEN, PARENT_LEN, push_subtree};
use super::{CHUNK_LEN, HashMode, Outboard};

/// Levels of a (sub)tree: `levels[0]` holds chunk chaining values, each next level half as many
/// (rounded up), the last level one node.
pub(crate) type Levels = Vec<Vec<ChainingValue>>;

/// Chunks in an input of `len` bytes: an empty input is one empty chunk.
pub(crate) fn chunk_count(len: u64) -> u64 {
    len.div_ceil(CHUNK_LEN as u64).max(1)
}

/// Node counts per level for a tree over `chunks` chunks, leaves first, ending with 1.
pub(crate) fn level_sizes(chunks: u64) -> Vec<u64> {
    let mut sizes = vec![chunks];
    let mut n = chunks;
    while n > 1 {
        n = n.div_ceil(2);
        sizes.push(n);
    }
    sizes
}

/// The next level up: pairs merged as non-root parents, an odd last node carried.
pub(crate) fn merge_level(level: &[ChainingValue], mode: HashMode) -> Vec<ChainingValue> {
    let merge = |pair: &[ChainingValue]| match pair {
        [left, right] => merge_subtrees_non_root(left, right, mode.hazmat()),
        [odd] => *odd,
        _ => unreachable!("chunks(2) yields one or two nodes"),
    };
    if level.len() >= 4096 {
        level.par_chunks(2).map(merge).collect()
    } else {
        level.chunks(2).map(merge).collect()
    }
}

/// What one window of input contributed.
#[derive(Debug)]
pub(crate) enum WindowOutput {
    /// The window was the whole input and its top compression carried ROOT.
    Root {
        hash: blake3::Hash,
        levels: Option<Levels>,
    },
    /// The window is one subtree of a larger input.
    Subtree {
        cv: ChainingValue,
        levels: Option<Levels>,
    },
}

/// Where the outboard goes while the tree is assembled.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Sink<'a> {
    /// No outboard: only the root is wanted.
    None,
    /// The outboard, returned in memory.
    Memory,
    /// The outboard of an input of exactly `len` bytes, written in place into `file` window by window
    /// (positioned writes), so memory holds one window's tree whatever the input's length.
    File { file: &'a File, len: u64 },
}

impl Sink<'_> {
    /// Whether windows must keep their levels.
    pub fn wants_levels(&self) -> bool {
        !matches!(self, Sink::None)
    }
}

/// Collects window outputs in input order and finishes the tree. A window (a power-of-two run of
/// chunks, or the short last one) is a node of BLAKE3's tree, so its parents are one contiguous run of
/// the pre-order outboard; each window's run is placed as it arrives, and the few parents above the
/// windows are written at the end from the windows' chaining values.
pub(crate) struct TreeAssembler<'a> {
    mode: HashMode,
    /// log2 of the chunks in a full window.
    window_log2: u32,
    sink: Sink<'a>,
    window_cvs: Vec<ChainingValue>,
    /// `Sink::Memory`: each window's run of parents, placed once the length is known.
    runs: Vec<Vec<u8>>,
    /// The first error writing to `Sink::File`, reported by `finish`.
    write_error: Option<std::io::Error>,
    root: Option<blake3::Hash>,
}

impl<'a> TreeAssembler<'a> {
    pub fn new(mode: HashMode, window_chunks: u64, sink: Sink<'a>) -> Self {
        debug_assert!(window_chunks.is_power_of_two());
        TreeAssembler {
            mode,
            window_log2: window_chunks.trailing_zeros(),
            sink,
            window_cvs: Vec::new(),
            runs: Vec::new(),
            write_error: None,
            root: None,
        }
    }

    fn window_chunks(&self) -> u64 {
        1 << self.window_log2
    }

    pub fn push(&mut self, window: WindowOutput) {
        let index = self.window_cvs.len() as u64 + u64::from(self.root.is_some());
        let levels = match window {
            WindowOutput::Root { hash, levels } => {
                debug_assert!(self.window_cvs.is_empty() && self.root.is_none());
                self.root = Some(hash);
                levels
            }
            WindowOutput::Subtree { cv, levels } => {
                self.window_cvs.push(cv);
                levels
            }
        };
        if !self.sink.wants_levels() {
            return;
        }
        let levels = levels.unwrap_or_default();
        let chunks = levels.first().map_or(1, |l| l.len() as u64);
        let mut run = Vec::with_capacity((chunks as usize).saturating_sub(1) * PARENT_LEN);
        push_subtree(&levels, 0, chunks, &mut run);
        match self.sink {
            Sink::File { file, len } => {
                let start = index * self.window_chunks();
                let at = parent_offset(preorder_index(chunk_count(len), start, chunks));
                if self.write_error.is_none()
                    && let Err(e) = file.write_all_at(&run, at)
                {
                    self.write_error = Some(e);
                }
            }
            Sink::Memory => self.runs.push(run),
            Sink::None => {}
        }
    }

    /// The root hash, and the outboard when `Sink::Memory` asked for one. `Sink::File` has the whole
    /// outboard written (not synced) when this returns `Ok`.
    pub fn finish(
        mut self,
        content_len: u64,
    ) -> Result<(blake3::Hash, Option<Outboard>), std::io::Error> {
        let hash = match self.root {
            Some(hash) => hash,
            None => {
                let mut level = self.window_cvs.clone();
                while level.len() > 2 {
                    level = merge_level(&level, self.mode);
                }
                match level.as_slice() {
                    [left, right] => merge_subtrees_root(left, right, self.mode.hazmat()),
                    _ => unreachable!("a one-window input is rooted by its backend"),
                }
            }
        };
        if let Some(e) = self.write_error.take() {
            return Err(e);
        }
        let chunks = chunk_count(content_len);
        match self.sink {
            Sink::None => Ok((hash, None)),
            Sink::Memory => {
                let mut parents = vec![0u8; (chunks as usize - 1) * PARENT_LEN];
                for (w, run) in self.runs.iter().enumerate() {
                    let start = w as u64 * self.window_chunks();
                    let count = (chunks - start).min(self.window_chunks());
                    let at = preorder_index(chunks, start, count) as usize * PARENT_LEN;
                    parents[at..at + run.len()].copy_from_slice(run);
                }
                if self.root.is_none() {
                    self.top_parents(0, chunks, 0, &mut |index, node| {
                        let at = index as usize * PARENT_LEN;
                        parents[at..at + PARENT_LEN].copy_from_slice(node);
                        Ok(())
                    })?;
                }
                Ok((hash, Some(Outboard::from_parents(content_len, parents))))
            }
            Sink::File { file, len } => {
                if len != content_len {
                    return Err(std::io::Error::other(format!(
                        "the outboard was laid out for {len} bytes, the input had {content_len}"
                    )));
                }
                if self.root.is_none() {
                    self.top_parents(0, chunks, 0, &mut |index, node| {
                        file.write_all_at(node, parent_offset(index))
                    })?;
                }
                file.write_all_at(&content_len.to_le_bytes(), 0)?;
                file.set_len(parent_offset(chunks - 1))?;
                Ok((hash, None))
            }
        }
    }

    /// Writes the parents of node `[start, start + count)` that lie above the windows, the node
    /// itself at pre-order position `index`, through `write(pre-order index, parent)`; returns the
    /// node's (non-root) chaining value.
    fn top_parents(
        &self,
        start: u64,
        count: u64,
        index: u64,
        write: &mut dyn FnMut(u64, &[u8]) -> std::io::Result<()>,
    ) -> std::io::Result<ChainingValue> {
        if count <= self.window_chunks() {
            return Ok(self.window_cvs[(start >> self.window_log2) as usize]);
        }
        let left_count = left_subtree_chunks(count);
        let left = self.top_parents(start, left_count, index + 1, write)?;
        let right = self.top_parents(
            start + left_count,
            count - left_count,
            index + left_count,
            write,
        )?;
        let mut node = [0u8; PARENT_LEN];
        node[..32].copy_from_slice(&left);
        node[32..].copy_from_slice(&right);
        write(index, &node)?;
        Ok(merge_subtrees_non_root(&left, &right, self.mode.hazmat()))
    }
}

/// Chunks in the left subtree of a node over `count` (> 1) chunks: the largest power of two below it.
pub(crate) fn left_subtree_chunks(count: u64) -> u64 {
    1u64 << (63 - (count - 1).leading_zeros())
}

/// Byte offset of the pre-order parent `index` in an encoded outboard.
fn parent_offset(index: u64) -> u64 {
    HEADER_LEN as u64 + index * PARENT_LEN as u64
}

/// Pre-order position of the parent entry of node `[start, start + count)` in the tree over `chunks`
/// chunks: walks from the root, counting the parents the walk passes (each node on the way, and
/// every left subtree it steps over).
fn preorder_index(chunks: u64, start: u64, count: u64) -> u64 {
    let (mut node_start, mut node_count, mut index) = (0u64, chunks, 0u64);
    while node_start != start || node_count != count {
        debug_assert!(
            node_count > count && node_count > 1,
            "not a node of the tree"
        );
        if node_count <= 1 {
            break;
        }
        let left = left_subtree_chunks(node_count);
        index += 1;
        if start < node_start + left {
            node_count = left;
        } else {
            index += left - 1;
            node_start += left;
            node_count -= left;
        }
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn level_sizes_round_up() {
        assert_eq!(level_sizes(1), vec![1]);
        assert_eq!(level_sizes(5), vec![5, 3, 2, 1]);
        assert_eq!(level_sizes(8), vec![8, 4, 2, 1]);
    }

    #[test]
    fn chunk_count_counts_the_empty_chunk() {
        assert_eq!(chunk_count(0), 1);
        assert_eq!(chunk_count(1024), 1);
        assert_eq!(chunk_count(1025), 2);
    }
}
