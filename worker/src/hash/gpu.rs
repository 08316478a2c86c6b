//! The GPU backend: streams input through two window slots so the host reads window `i + 1` while
//! the GPU hashes window `i`, and batches many small blobs into one dispatch per tree level.
//!
//! A slot is a mappable staging buffer (the host reads input straight into it), a storage buffer the
//! kernels read, a chaining-value buffer holding every level of the window's subtree, a params
//! buffer, and a readback buffer. All are created once and reused.

mod batch;
mod device;
mod kernels;

use std::fs::File;
use std::io::Read;
use std::sync::{Mutex, MutexGuard, PoisonError};

use blake3::hazmat::ChainingValue;
use wgpu::util::DeviceExt;

use self::device::{GpuDevice, MapRequest};
use self::kernels::{Kernels, WindowPlan};
use super::source::{Filled, WindowSource};
use super::tree::{Levels, Sink, TreeAssembler, WindowOutput, chunk_count, level_sizes};
use super::{BlobDigest, BlobHasher, CHUNK_LEN, HashError, HashMode};

/// Default cap on a window: enough to keep a large GPU busy, small enough to leave a miner its
/// memory (two slots are allocated).
const DEFAULT_WINDOW: u64 = 64 << 20;
/// Windows stay below 4 GiB so byte counts fit the shader's u32s, and below the number of chunks one
/// dimension of workgroups can cover.
const MAX_WINDOW: u64 = 1 << 31;
/// Bytes per chaining value.
const CV_LEN: u64 = 32;
/// Blobs are placed in a batch at block boundaries.
const BATCH_ALIGN: u64 = 64;

/// Which adapters the GPU backend may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum AdapterPolicy {
    /// Only hardware adapters (not [`wgpu::DeviceType::Cpu`]): what `--gpu auto` wants.
    #[default]
    HardwareOnly,
    /// Any adapter, software rasterizers such as lavapipe included: what `--gpu require` wants.
    Any,
}

/// How to set up a [`GpuHasher`].
#[derive(Clone, Debug, Default)]
pub struct GpuOptions {
    pub policy: AdapterPolicy,
    /// Backends to search; `None` means `WGPU_BACKEND` when set, else every compiled-in backend.
    pub backends: Option<wgpu::Backends>,
    /// Adapters whose name contains this (case-insensitively) win over the others the policy allows.
    /// `WGPU_ADAPTER_NAME`, when set, is stricter: only matching adapters are considered at all.
    pub prefer_adapter: Option<String>,
    /// Cap on the streaming window in bytes (rounded down to a power of two of chunks). Small windows
    /// let tests cover multi-window streaming with small inputs.
    pub max_window_bytes: Option<u64>,
}

/// Hashes with the BLAKE3 kernels on a wgpu device.
pub struct GpuHasher {
    gpu: GpuDevice,
    kernels: Kernels,
    window: u64,
    slots: Mutex<Vec<Slot>>,
}

impl std::fmt::Debug for GpuHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuHasher")
            .field("adapter", &self.gpu.describe())
            .field("window", &self.window)
            .finish()
    }
}

enum Staging {
    Mapped,
    Unmapped,
    Mapping(MapRequest),
}

struct Pending {
    plan: WindowPlan,
    readback: MapRequest,
    read_len: u64,
    rooted: bool,
    keep_levels: bool,
}

struct Slot {
    staging: wgpu::Buffer,
    staging_state: Staging,
    input: wgpu::Buffer,
    cvs: wgpu::Buffer,
    params: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
    pending: Option<Pending>,
}

/// Input uploaded once and left on the device, for measuring the kernels alone.
pub struct ResidentInput {
    len: u64,
    cvs: wgpu::Buffer,
    params: wgpu::Buffer,
    readback: wgpu::Buffer,
    bind_group: wgpu::BindGroup,
}

impl std::fmt::Debug for ResidentInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResidentInput")
            .field("len", &self.len)
            .finish()
    }
}

impl ResidentInput {
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

fn buffer(
    device: &wgpu::Device,
    label: &str,
    size: u64,
    usage: wgpu::BufferUsages,
) -> wgpu::Buffer {
    device.create_buffer(&wgpu::BufferDescriptor {
        label: Some(label),
        size,
        usage,
        mapped_at_creation: false,
    })
}

/// Rounds up to wgpu's copy alignment.
fn copy_len(len: u64) -> u64 {
    len.next_multiple_of(wgpu::COPY_BUFFER_ALIGNMENT)
}

fn cv_at(bytes: &[u8], index: u64) -> ChainingValue {
    let at = (index * CV_LEN) as usize;
    let mut cv = [0u8; 32];
    cv.copy_from_slice(&bytes[at..at + CV_LEN as usize]);
    cv
}

impl GpuHasher {
    pub fn new(options: GpuOptions) -> Result<Self, HashError> {
        let gpu = GpuDevice::open(&options)?;
        let limits = gpu.limits();
        let largest = u64::from(limits.max_storage_buffer_binding_size)
            .min(limits.max_buffer_size)
            .min(MAX_WINDOW)
            .min(u64::from(limits.max_compute_workgroups_per_dimension) * 64 * CHUNK_LEN as u64);
        let cap = options
            .max_window_bytes
            .unwrap_or(DEFAULT_WINDOW)
            .min(largest);
        let window = prev_power_of_two(cap.max(CHUNK_LEN as u64));
        let (kernels, slots) = gpu.scoped("creating pipelines and buffers", || {
            let kernels = Kernels::new(&gpu.device);
            let slots = (0..2)
                .map(|_| new_slot(&gpu.device, &kernels, window))
                .collect();
            (kernels, slots)
        })?;
        Ok(GpuHasher {
            gpu,
            kernels,
            window,
            slots: Mutex::new(slots),
        })
    }

    /// Bytes per streaming window.
    pub fn window_bytes(&self) -> u64 {
        self.window
    }

    /// The adapter in use.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.gpu.info
    }

    fn window_chunks(&self) -> u64 {
        self.window / CHUNK_LEN as u64
    }

    fn lock_slots(&self) -> MutexGuard<'_, Vec<Slot>> {
        self.slots.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Brings a slot back to idle (no window in flight, staging mapped), discarding any result left
    /// by an operation that failed halfway.
    fn settle(&self, slot: &mut Slot) -> Result<Option<WindowOutput>, HashError> {
        let output = match slot.pending.take() {
            Some(pending) => Some(self.finish_window(slot, pending)?),
            None => None,
        };
        self.map_staging(slot)?;
        Ok(output)
    }

    fn map_staging(&self, slot: &mut Slot) -> Result<(), HashError> {
        match std::mem::replace(&mut slot.staging_state, Staging::Unmapped) {
            Staging::Mapped => {}
            Staging::Mapping(request) => self.gpu.await_map(request)?,
            Staging::Unmapped => {
                let submission = self.gpu.queue.submit([]);
                let request =
                    self.gpu
                        .request_map(&slot.staging, None, wgpu::MapMode::Write, submission);
                self.gpu.await_map(request)?;
            }
        }
        slot.staging_state = Staging::Mapped;
        Ok(())
    }

    fn finish_window(&self, slot: &mut Slot, pending: Pending) -> Result<WindowOutput, HashError> {
        self.gpu.await_map(pending.readback)?;
        let plan = &pending.plan;
        let (top, levels) = {
            let bytes = slot.readback.slice(..pending.read_len).get_mapped_range();
            if pending.keep_levels {
                let levels: Levels = plan
                    .level_sizes
                    .iter()
                    .zip(&plan.level_offsets)
                    .map(|(&size, &offset)| {
                        (offset..offset + size).map(|i| cv_at(&bytes, i)).collect()
                    })
                    .collect();
                (cv_at(&bytes, plan.top()), Some(levels))
            } else {
                (cv_at(&bytes, 0), None)
            }
        };
        slot.readback.unmap();
        Ok(if pending.rooted {
            WindowOutput::Root {
                hash: blake3::Hash::from_bytes(top),
                levels,
            }
        } else {
            WindowOutput::Subtree { cv: top, levels }
        })
    }

    /// Fills the slot's staging buffer from `source`.
    fn fill(&self, slot: &mut Slot, source: &mut WindowSource<'_>) -> Result<Filled, HashError> {
        self.map_staging(slot)?;
        let filled = {
            let mut view = slot.staging.slice(..).get_mapped_range_mut();
            source.fill(&mut view[..])?
        };
        slot.staging.unmap();
        slot.staging_state = Staging::Unmapped;
        Ok(filled)
    }

    /// Hashes the window in the slot's staging buffer; the result is collected by `settle`.
    fn submit_window(
        &self,
        slot: &mut Slot,
        plan: WindowPlan,
        len: u64,
        rooted: bool,
        keep_levels: bool,
    ) -> Result<(), HashError> {
        let (read_from, read_len) = if keep_levels {
            (0, plan.total_nodes() * CV_LEN)
        } else {
            (plan.top() * CV_LEN, CV_LEN)
        };
        let submission = self.gpu.scoped("hashing a window", || {
            let params = self.kernels.encode_params(&plan.dispatches);
            self.gpu.queue.write_buffer(&slot.params, 0, &params);
            let mut encoder =
                self.gpu
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("blake3 window"),
                    });
            if len > 0 {
                encoder.copy_buffer_to_buffer(&slot.staging, 0, &slot.input, 0, copy_len(len));
            }
            self.kernels
                .record(&mut encoder, &slot.bind_group, &plan.dispatches);
            encoder.copy_buffer_to_buffer(&slot.cvs, read_from, &slot.readback, 0, read_len);
            self.gpu.queue.submit([encoder.finish()])
        })?;
        let readback = self.gpu.request_map(
            &slot.readback,
            Some(read_len),
            wgpu::MapMode::Read,
            submission.clone(),
        );
        slot.staging_state = Staging::Mapping(self.gpu.request_map(
            &slot.staging,
            None,
            wgpu::MapMode::Write,
            submission,
        ));
        slot.pending = Some(Pending {
            plan,
            readback,
            read_len,
            rooted,
            keep_levels,
        });
        Ok(())
    }

    fn stream(
        &self,
        slots: &mut [Slot],
        source: &mut WindowSource<'_>,
        mode: HashMode,
        sink: Sink<'_>,
    ) -> Result<BlobDigest, HashError> {
        let keep_levels = sink.wants_levels();
        let mut tree = TreeAssembler::new(mode, self.window_chunks(), sink);
        let mut index = 0usize;
        loop {
            let slot = &mut slots[index % 2];
            if let Some(output) = self.settle(slot)? {
                tree.push(output);
            }
            let filled = self.fill(slot, source)?;
            let rooted = index == 0 && filled.last;
            let first_chunk = index as u64 * self.window_chunks();
            let plan = WindowPlan::new(filled.len as u64, first_chunk, rooted, mode);
            self.submit_window(slot, plan, filled.len as u64, rooted, keep_levels)?;
            if filled.last {
                break;
            }
            index += 1;
        }
        for i in [index + 1, index] {
            if let Some(output) = self.settle(&mut slots[i % 2])? {
                tree.push(output);
            }
        }
        let len = source.consumed();
        let (hash, outboard) = tree.finish(len).map_err(HashError::OutboardWrite)?;
        Ok(BlobDigest {
            hash,
            len,
            outboard,
        })
    }

    /// The largest input [`GpuHasher::upload`] accepts.
    pub fn max_resident_len(&self) -> u64 {
        self.window
    }

    /// Copies `data` (at most [`GpuHasher::max_resident_len`] bytes) to the device once, for
    /// [`GpuHasher::hash_resident`] to hash it again and again without transfers.
    pub fn upload(&self, data: &[u8]) -> Result<ResidentInput, HashError> {
        let len = data.len() as u64;
        if len > self.max_resident_len() {
            return Err(HashError::Usage(format!(
                "{len} bytes do not fit one GPU window of {} bytes",
                self.max_resident_len()
            )));
        }
        let device = &self.gpu.device;
        let nodes: u64 = level_sizes(chunk_count(len)).iter().sum();
        let resident = self.gpu.scoped("uploading resident input", || {
            let mut padded = data.to_vec();
            padded.resize(copy_len(len).max(16) as usize, 0);
            let input = device.create_buffer_init(&wgpu::util::BufferInitDescriptor {
                label: Some("blake3 resident input"),
                contents: &padded,
                usage: wgpu::BufferUsages::STORAGE,
            });
            let cvs = buffer(
                device,
                "blake3 resident cvs",
                nodes * CV_LEN,
                wgpu::BufferUsages::STORAGE | wgpu::BufferUsages::COPY_SRC,
            );
            let params = self.kernels.params_buffer(device);
            let readback = buffer(
                device,
                "blake3 resident readback",
                CV_LEN,
                wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::COPY_DST,
            );
            let bind_group = self.kernels.bind_group(device, &params, &input, &cvs, None);
            ResidentInput {
                len,
                cvs,
                params,
                readback,
                bind_group,
            }
        })?;
        Ok(resident)
    }

    /// Hashes input left on the device by [`GpuHasher::upload`]: kernels and a 32-byte readback only.
    pub fn hash_resident(
        &self,
        input: &ResidentInput,
        mode: HashMode,
    ) -> Result<blake3::Hash, HashError> {
        let plan = WindowPlan::new(input.len, 0, true, mode);
        let submission = self.gpu.scoped("hashing resident input", || {
            let params = self.kernels.encode_params(&plan.dispatches);
            self.gpu.queue.write_buffer(&input.params, 0, &params);
            let mut encoder =
                self.gpu
                    .device
                    .create_command_encoder(&wgpu::CommandEncoderDescriptor {
                        label: Some("blake3 resident"),
                    });
            self.kernels
                .record(&mut encoder, &input.bind_group, &plan.dispatches);
            encoder.copy_buffer_to_buffer(
                &input.cvs,
                plan.top() * CV_LEN,
                &input.readback,
                0,
                CV_LEN,
            );
            self.gpu.queue.submit([encoder.finish()])
        })?;
        let request = self
            .gpu
            .request_map(&input.readback, None, wgpu::MapMode::Read, submission);
        self.gpu.await_map(request)?;
        let hash = blake3::Hash::from_bytes(cv_at(&input.readback.slice(..).get_mapped_range(), 0));
        input.readback.unmap();
        Ok(hash)
    }
}

fn prev_power_of_two(n: u64) -> u64 {
    1 << (63 - n.leading_zeros())
}

fn new_slot(device: &wgpu::Device, kernels: &Kernels, window: u64) -> Slot {
    use wgpu::BufferUsages as U;
    // Every level of a window's subtree: fewer than two nodes per chunk.
    let cv_bytes = 2 * (window / CHUNK_LEN as u64) * CV_LEN;
    let staging = device.create_buffer(&wgpu::BufferDescriptor {
        label: Some("blake3 staging"),
        size: window,
        usage: U::MAP_WRITE | U::COPY_SRC,
        mapped_at_creation: true,
    });
    let input = buffer(device, "blake3 input", window, U::STORAGE | U::COPY_DST);
    let cvs = buffer(device, "blake3 cvs", cv_bytes, U::STORAGE | U::COPY_SRC);
    let readback = buffer(
        device,
        "blake3 readback",
        cv_bytes,
        U::MAP_READ | U::COPY_DST,
    );
    let params = kernels.params_buffer(device);
    let bind_group = kernels.bind_group(device, &params, &input, &cvs, None);
    Slot {
        staging,
        staging_state: Staging::Mapped,
        input,
        cvs,
        params,
        readback,
        bind_group,
        pending: None,
    }
}

impl GpuHasher {
    /// Streams `reader` through the two window slots into `sink`.
    fn stream_locked(
        &self,
        reader: &mut dyn Read,
        expected_len: Option<u64>,
        mode: HashMode,
        sink: Sink<'_>,
    ) -> Result<BlobDigest, HashError> {
        let mut slots = self.lock_slots();
        let mut source = WindowSource::new(reader, expected_len);
        let result = self.stream(&mut slots, &mut source, mode, sink);
        if result.is_err() {
            // Leave the slots idle for the next caller; the first error is the one worth reporting.
            for slot in slots.iter_mut() {
                let _ = self.settle(slot);
            }
        }
        result
    }
}

impl BlobHasher for GpuHasher {
    fn describe(&self) -> String {
        self.gpu.describe()
    }

    fn hash_bytes(
        &self,
        data: &[u8],
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        let mut reader = data;
        self.hash_reader(&mut reader, Some(data.len() as u64), mode, with_outboard)
    }

    fn hash_reader(
        &self,
        reader: &mut dyn Read,
        expected_len: Option<u64>,
        mode: HashMode,
        with_outboard: bool,
    ) -> Result<BlobDigest, HashError> {
        let sink = if with_outboard {
            Sink::Memory
        } else {
            Sink::None
        };
        self.stream_locked(reader, expected_len, mode, sink)
    }

    fn hash_reader_to_file(
        &self,
        reader: &mut dyn Read,
        len: u64,
        mode: HashMode,
        outboard: &File,
    ) -> Result<BlobDigest, HashError> {
        let sink = Sink::File {
            file: outboard,
            len,
        };
        self.stream_locked(reader, Some(len), mode, sink)
    }

    fn hash_batch(&self, blobs: &[&[u8]], mode: HashMode) -> Result<Vec<blake3::Hash>, HashError> {
        self.batch(blobs, mode)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Any adapter, Vulkan unless `WGPU_BACKEND` says otherwise, llvmpipe first: what CI has.
    pub(crate) fn test_gpu() -> GpuHasher {
        GpuHasher::new(GpuOptions {
            policy: AdapterPolicy::Any,
            backends: std::env::var_os("WGPU_BACKEND")
                .is_none()
                .then_some(wgpu::Backends::VULKAN),
            prefer_adapter: Some("llvmpipe".to_owned()),
            max_window_bytes: Some(16 * CHUNK_LEN as u64),
        })
        .unwrap_or_else(|e| panic!("GPU tests need a wgpu adapter (lavapipe will do): {e}"))
    }

    impl GpuHasher {
        /// Destroys the device under the hasher, as a driver reset would.
        pub(crate) fn lose_device(&self) {
            self.gpu.device.destroy();
        }
    }

    #[test]
    fn validation_errors_come_back_as_hash_errors() {
        let hasher = test_gpu();
        let err = hasher
            .gpu
            .scoped("creating a buffer no device allows", || {
                hasher.gpu.device.create_buffer(&wgpu::BufferDescriptor {
                    label: None,
                    size: 16,
                    usage: wgpu::BufferUsages::MAP_READ | wgpu::BufferUsages::MAP_WRITE,
                    mapped_at_creation: false,
                })
            })
            .expect_err("MAP_READ with MAP_WRITE is invalid");
        assert!(matches!(err, HashError::GpuValidation { .. }), "{err}");
        let data = vec![7u8; 40_000];
        let digest = hasher
            .hash_bytes(&data, HashMode::Plain, false)
            .expect("the device is still usable");
        assert_eq!(digest.hash, blake3::hash(&data));
    }

    #[test]
    fn a_lost_device_is_an_error_not_a_panic() {
        let hasher = test_gpu();
        let data = vec![3u8; 100_000];
        assert_eq!(
            hasher
                .hash_bytes(&data, HashMode::Plain, true)
                .expect("hashes")
                .hash,
            blake3::hash(&data)
        );
        hasher.lose_device();
        let err = hasher
            .hash_bytes(&data, HashMode::Plain, false)
            .expect_err("no device, no hash");
        assert!(err.is_gpu_failure(), "{err}");
        let err = hasher
            .hash_batch(&[b"abc".as_slice()], HashMode::Plain)
            .expect_err("no device, no hash");
        assert!(err.is_gpu_failure(), "{err}");
    }
}
