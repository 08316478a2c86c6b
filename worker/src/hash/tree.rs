//! BLAKE3's tree on the host: merging window chaining values into the root, and keeping every level
//! when an outboard is wanted.
//!
//! Merging each level pairwise and carrying an odd last node up unchanged yields exactly BLAKE3's
//! tree (the left subtree always holds the largest power of two of chunks below the total). Because
//! windows hold a power-of-two number of chunks, pairs never straddle two windows below the windows'
//! own level, so the levels of consecutive windows simply concatenate.

use blake3::hazmat::{ChainingValue, merge_subtrees_non_root, merge_subtrees_root};
use rayon::prelude::*;

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

/// Collects window outputs in input order and finishes the tree.
pub(crate) struct TreeAssembler {
    mode: HashMode,
    /// log2 of the chunks in a full window.
    window_log2: u32,
    keep_levels: bool,
    window_cvs: Vec<ChainingValue>,
    levels: Levels,
    root: Option<blake3::Hash>,
}

impl TreeAssembler {
    pub fn new(mode: HashMode, window_chunks: u64, keep_levels: bool) -> Self {
        debug_assert!(window_chunks.is_power_of_two());
        TreeAssembler {
            mode,
            window_log2: window_chunks.trailing_zeros(),
            keep_levels,
            window_cvs: Vec::new(),
            levels: Vec::new(),
            root: None,
        }
    }

    pub fn push(&mut self, window: WindowOutput) {
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
        if !self.keep_levels {
            return;
        }
        let Some(levels) = levels.filter(|l| !l.is_empty()) else {
            return;
        };
        // A short last window reaches one node below the full windows' level; that node is carried
        // up, so it stands in every level above its own.
        let top = levels.len().saturating_sub(1);
        let depth = (self.window_log2 as usize + 1).max(levels.len());
        if self.levels.len() < depth {
            self.levels.resize(depth, Vec::new());
        }
        for (j, level) in self.levels.iter_mut().enumerate().take(depth) {
            level.extend_from_slice(&levels[j.min(top)]);
        }
    }

    /// The root hash, and the outboard when levels were kept.
    pub fn finish(mut self, content_len: u64) -> (blake3::Hash, Option<Outboard>) {
        let hash = match self.root {
            Some(hash) => hash,
            None => {
                let mut level = std::mem::take(&mut self.window_cvs);
                while level.len() > 2 {
                    level = merge_level(&level, self.mode);
                    if self.keep_levels {
                        self.levels.push(level.clone());
                    }
                }
                match level.as_slice() {
                    [left, right] => merge_subtrees_root(left, right, self.mode.hazmat()),
                    _ => unreachable!("a one-window input is rooted by its backend"),
                }
            }
        };
        let outboard = self
            .keep_levels
            .then(|| Outboard::from_levels(content_len, &self.levels));
        (hash, outboard)
    }
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
