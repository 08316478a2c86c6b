//! Many small blobs in one submission: every chunk of every blob in one dispatch, then one dispatch
//! per tree level, driven by job tables instead of contiguous input.

use wgpu::util::DeviceExt;

use super::kernels::{Dispatch, DispatchParams, Kernel};
use super::{BATCH_ALIGN, CV_LEN, GpuHasher, Slot, Staging, copy_len, cv_at};
use crate::hash::tree::chunk_count;
use crate::hash::{BlobHasher, CHUNK_LEN, HashError, HashMode};

impl GpuHasher {
    /// Packs small blobs into window-sized batches; blobs above a quarter window are streamed alone.
    pub(super) fn batch(
        &self,
        blobs: &[&[u8]],
        mode: HashMode,
    ) -> Result<Vec<blake3::Hash>, HashError> {
        // A blob bigger than a quarter window is worth a window of its own.
        let limit = self.window / 4;
        let mut hashes = vec![None; blobs.len()];
        for (i, blob) in blobs.iter().enumerate() {
            if blob.len() as u64 > limit {
                hashes[i] = Some(self.hash_bytes(blob, mode, false)?.hash);
            }
        }
        let mut slots = self.lock_slots();
        let small: Vec<usize> = (0..blobs.len()).filter(|&i| hashes[i].is_none()).collect();
        let mut group: Vec<usize> = Vec::new();
        let (mut bytes, mut chunks) = (0u64, 0u64);
        for (n, &i) in small.iter().enumerate() {
            let len = blobs[i].len() as u64;
            bytes += len.next_multiple_of(BATCH_ALIGN);
            chunks += chunk_count(len);
            group.push(i);
            let full = small.get(n + 1).is_none_or(|&next| {
                let next_len = blobs[next].len() as u64;
                bytes + next_len.next_multiple_of(BATCH_ALIGN) > self.window
                    || chunks + chunk_count(next_len) > self.window_chunks()
            });
            if full {
                let members: Vec<&[u8]> = group.iter().map(|&i| blobs[i]).collect();
                let result = self.run_batch(&mut slots[0], &members, mode);
                let group_hashes = match result {
                    Ok(h) => h,
                    Err(e) => {
                        let _ = self.settle(&mut slots[0]);
                        return Err(e);
                    }
                };
                for (&i, hash) in group.iter().zip(group_hashes) {
                    hashes[i] = Some(hash);
                }
                group.clear();
                bytes = 0;
                chunks = 0;
            }
        }
        Ok(hashes.into_iter().flatten().collect())
    }

    /// Hashes blobs that together fit one window, each placed at a block boundary of the staging
    /// buffer: one dispatch for every chunk of every blob, then one per tree level.
    fn run_batch(
        &self,
        slot: &mut Slot,
        blobs: &[&[u8]],
        mode: HashMode,
    ) -> Result<Vec<blake3::Hash>, HashError> {
        self.settle(slot)?;
        let mut offsets = Vec::with_capacity(blobs.len());
        let mut end = 0u64;
        {
            let mut view = slot.staging.slice(..).get_mapped_range_mut();
            for blob in blobs {
                let at = end as usize;
                view[at..at + blob.len()].copy_from_slice(blob);
                offsets.push(end);
                end = (end + blob.len() as u64).next_multiple_of(BATCH_ALIGN);
            }
        }
        slot.staging.unmap();
        slot.staging_state = Staging::Unmapped;

        let plan = BatchPlan::new(blobs, &offsets, mode);
        let read_len = plan.nodes * CV_LEN;
        let jobs = plan.jobs;
        let submission = self.gpu.scoped("hashing a batch", || {
            let device = &self.gpu.device;
            let jobs_bytes: Vec<u8> = jobs.iter().flat_map(|w| w.to_le_bytes()).collect();
            let jobs_buffer = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("blake3 batch jobs"),
                contents: &jobs_bytes,
                usage: wgpu::BufferUsages::STORAGE,
            });
            let bind_group = self.kernels.bind_group(
                device,
                &slot.params,
                &slot.input,
                &slot.cvs,
                Some(&jobs_buffer),
            );
            let params = self.kernels.encode_params(&plan.dispatches);
            self.gpu.queue.write_buffer(&slot.params, 0, &params);
            let mut encoder = device.create_command_encoder(&wgpu::CommandEncoderDescriptor {
                label: Some("blake3 batch"),
            });
            if end > 0 {
                encoder.copy_buffer_to_buffer(&slot.staging, 0, &slot.input, 0, copy_len(end));
            }
            self.kernels
                .record(&mut encoder, &bind_group, &plan.dispatches);
            encoder.copy_buffer_to_buffer(&slot.cvs, 0, &slot.readback, 0, read_len);
            self.gpu.queue.submit([encoder.finish()])
        })?;
        slot.staging_state = Staging::Mapping(self.gpu.request_map(
            &slot.staging,
            None,
            wgpu::MapMode::Write,
            submission.clone(),
        ));
        let request = self.gpu.request_map(
            &slot.readback,
            Some(read_len),
            wgpu::MapMode::Read,
            submission,
        );
        self.gpu.await_map(request)?;
        let hashes = {
            let bytes = slot.readback.slice(..read_len).get_mapped_range();
            plan.roots
                .iter()
                .map(|&root| blake3::Hash::from_bytes(cv_at(&bytes, root)))
                .collect()
        };
        slot.readback.unmap();
        Ok(hashes)
    }
}

/// Jobs for a batch: one chunk job per chunk of every blob, then for each tree level one parent job
/// per pair. Nodes are numbered in the order the jobs create them.
struct BatchPlan {
    jobs: Vec<u32>,
    dispatches: Vec<Dispatch>,
    /// Node holding each blob's root hash.
    roots: Vec<u64>,
    nodes: u64,
}

const CHUNK_JOB_WORDS: u32 = 8;
const PARENT_JOB_WORDS: u32 = 4;

impl BatchPlan {
    fn new(blobs: &[&[u8]], offsets: &[u64], mode: HashMode) -> Self {
        let base = DispatchParams::for_mode(mode);
        let mut jobs = Vec::new();
        let mut nodes = 0u64;
        // The current top level of every blob's tree, as node indices.
        let mut tops: Vec<Vec<u64>> = Vec::with_capacity(blobs.len());
        for (blob, &offset) in blobs.iter().zip(offsets) {
            let len = blob.len() as u64;
            let chunks = chunk_count(len);
            let mut level = Vec::with_capacity(chunks as usize);
            for c in 0..chunks {
                let start = c * CHUNK_LEN as u64;
                let chunk_len = len.saturating_sub(start).min(CHUNK_LEN as u64);
                jobs.extend_from_slice(&[
                    ((offset + start) / 16) as u32,
                    chunk_len as u32,
                    c as u32,
                    (c >> 32) as u32,
                    u32::from(chunks == 1) << 3,
                    nodes as u32,
                    0,
                    0,
                ]);
                level.push(nodes);
                nodes += 1;
            }
            tops.push(level);
        }
        let mut dispatches = vec![Dispatch {
            kernel: Kernel::BatchChunks,
            params: DispatchParams {
                src: 0,
                count: (jobs.len() as u32) / CHUNK_JOB_WORDS,
                ..base
            },
        }];
        while tops.iter().any(|level| level.len() > 1) {
            let start = jobs.len() as u32;
            for level in tops.iter_mut().filter(|level| level.len() > 1) {
                let root = level.len() == 2;
                let next = level
                    .chunks(2)
                    .map(|pair| match pair {
                        [left, right] => {
                            jobs.extend_from_slice(&[
                                *left as u32,
                                *right as u32,
                                nodes as u32,
                                u32::from(root) << 3,
                            ]);
                            nodes += 1;
                            nodes - 1
                        }
                        [odd] => *odd,
                        _ => unreachable!("chunks(2) yields one or two nodes"),
                    })
                    .collect();
                *level = next;
            }
            dispatches.push(Dispatch {
                kernel: Kernel::BatchParents,
                params: DispatchParams {
                    src: start,
                    count: (jobs.len() as u32 - start) / PARENT_JOB_WORDS,
                    ..base
                },
            });
        }
        BatchPlan {
            jobs,
            dispatches,
            roots: tops.into_iter().map(|level| level[0]).collect(),
            nodes,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_plan_roots_each_blob_once() {
        let blobs: [&[u8]; 3] = [&[], &[1; 3000], &[2; 1024]];
        let plan = BatchPlan::new(&blobs, &[0, 0, 3008], HashMode::Plain);
        // 1 + 3 + 1 chunks, then (0,1) of the 3-chunk blob, then the root over it and chunk 2.
        assert_eq!(plan.nodes, 7);
        assert_eq!(plan.roots, vec![0, 6, 4]);
        assert_eq!(plan.dispatches.len(), 3);
    }
}
