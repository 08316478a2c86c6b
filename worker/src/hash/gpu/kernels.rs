//! The compute pipelines of `shaders/blake3.wgsl`, their shared bind group layout, and the plan of
//! dispatches (with one parameter block each) that hashes one window of contiguous input.

use std::num::NonZeroU64;

use crate::hash::HashMode;
use crate::hash::tree::{chunk_count, level_sizes};

/// The WGSL source of every BLAKE3 kernel.
pub const BLAKE3_WGSL: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shaders/blake3.wgsl"
));

/// Invocations per workgroup, as declared by every entry point of the shader.
pub const WORKGROUP_SIZE: u32 = 64;
/// Bytes of one `Params` block in the shader.
pub const PARAMS_LEN: u64 = 64;
/// Parameter blocks a params buffer holds: one chunk dispatch plus one per tree level.
pub const MAX_DISPATCHES: u64 = 64;

const ROOT: u32 = 1 << 3;
const KEYED_HASH: u32 = 1 << 4;

const IV: [u32; 8] = [
    0x6A09E667, 0xBB67AE85, 0x3C6EF372, 0xA54FF53A, 0x510E527F, 0x9B05688C, 0x1F83D9AB, 0x5BE0CD19,
];

/// Which entry point a dispatch runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernel {
    Chunks,
    Parents,
    BatchChunks,
    BatchParents,
}

/// One dispatch: its kernel, its parameter block, and how many invocations do work.
#[derive(Clone, Debug)]
pub struct Dispatch {
    pub kernel: Kernel,
    pub params: DispatchParams,
}

/// Mirror of the shader's `Params` struct.
#[derive(Clone, Copy, Debug, Default)]
pub struct DispatchParams {
    pub key: [u32; 8],
    pub counter: u64,
    pub input_len: u32,
    pub mode_flags: u32,
    pub src: u32,
    pub dst: u32,
    pub root: bool,
    pub count: u32,
}

impl DispatchParams {
    pub fn for_mode(mode: HashMode) -> Self {
        let (key, mode_flags) = match mode {
            HashMode::Plain => (IV, 0),
            HashMode::Keyed(key) => {
                let mut words = [0u32; 8];
                for (word, bytes) in words.iter_mut().zip(key.chunks_exact(4)) {
                    *word = u32::from_le_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]);
                }
                (words, KEYED_HASH)
            }
        };
        DispatchParams {
            key,
            mode_flags,
            ..Default::default()
        }
    }

    fn encode(&self, out: &mut [u8]) {
        let words = [
            self.key[0],
            self.key[1],
            self.key[2],
            self.key[3],
            self.key[4],
            self.key[5],
            self.key[6],
            self.key[7],
            self.counter as u32,
            (self.counter >> 32) as u32,
            self.input_len,
            self.mode_flags,
            self.src,
            self.dst,
            if self.root { ROOT } else { 0 },
            self.count,
        ];
        for (slot, word) in out.chunks_exact_mut(4).zip(words) {
            slot.copy_from_slice(&word.to_le_bytes());
        }
    }
}

/// Every dispatch for one window, and where each tree level lands in the chaining-value buffer.
#[derive(Clone, Debug)]
pub struct WindowPlan {
    pub dispatches: Vec<Dispatch>,
    /// Nodes per level, chunk level first.
    pub level_sizes: Vec<u64>,
    /// Index of each level's first node.
    pub level_offsets: Vec<u64>,
}

impl WindowPlan {
    /// The plan for `len` bytes (at most a window) whose first chunk has index `first_chunk`.
    /// `rooted` puts ROOT on the final compression: the window is the whole input.
    pub fn new(len: u64, first_chunk: u64, rooted: bool, mode: HashMode) -> Self {
        let sizes = level_sizes(chunk_count(len));
        let mut offsets = Vec::with_capacity(sizes.len());
        let mut next = 0;
        for size in &sizes {
            offsets.push(next);
            next += size;
        }
        let base = DispatchParams::for_mode(mode);
        let mut dispatches = vec![Dispatch {
            kernel: Kernel::Chunks,
            params: DispatchParams {
                counter: first_chunk,
                input_len: len as u32,
                root: rooted && sizes.len() == 1,
                count: sizes[0] as u32,
                ..base
            },
        }];
        for level in 1..sizes.len() {
            dispatches.push(Dispatch {
                kernel: Kernel::Parents,
                params: DispatchParams {
                    input_len: sizes[level - 1] as u32,
                    src: offsets[level - 1] as u32,
                    dst: offsets[level] as u32,
                    root: rooted && level == sizes.len() - 1,
                    count: sizes[level] as u32,
                    ..base
                },
            });
        }
        WindowPlan {
            dispatches,
            level_sizes: sizes,
            level_offsets: offsets,
        }
    }

    pub fn total_nodes(&self) -> u64 {
        self.level_sizes.iter().sum()
    }

    /// Index of the single top node.
    pub fn top(&self) -> u64 {
        self.total_nodes() - 1
    }
}

/// Pipelines and the layout they share.
pub struct Kernels {
    layout: wgpu::BindGroupLayout,
    chunks: wgpu::ComputePipeline,
    parents: wgpu::ComputePipeline,
    batch_chunks: wgpu::ComputePipeline,
    batch_parents: wgpu::ComputePipeline,
    /// Distance between parameter blocks: the device's uniform offset alignment.
    pub param_stride: u64,
    /// Bound as `jobs` by dispatches that take no jobs.
    no_jobs: wgpu::Buffer,
}

fn storage_entry(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: NonZeroU64::new(16),
        },
        count: None,
    }
}

impl Kernels {
    pub fn new(device: &wgpu::Device) -> Self {
        let module = device.create_shader_module(wgpu::ShaderModuleDescriptor {
            label: Some("blake3.wgsl"),
            source: wgpu::ShaderSource::Wgsl(BLAKE3_WGSL.into()),
        });
        let layout = device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
            label: Some("blake3"),
            entries: &[
                wgpu::BindGroupLayoutEntry {
                    binding: 0,
                    visibility: wgpu::ShaderStages::COMPUTE,
                    ty: wgpu::BindingType::Buffer {
                        ty: wgpu::BufferBindingType::Uniform,
                        has_dynamic_offset: true,
                        min_binding_size: NonZeroU64::new(PARAMS_LEN),
                    },
                    count: None,
                },
                storage_entry(1, true),
                storage_entry(2, false),
                storage_entry(3, true),
            ],
        });
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some("blake3"),
            bind_group_layouts: &[&layout],
            push_constant_ranges: &[],
        });
        let pipeline = |entry: &str| {
            device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
                label: Some(entry),
                layout: Some(&pipeline_layout),
                module: &module,
                entry_point: Some(entry),
                compilation_options: wgpu::PipelineCompilationOptions::default(),
                cache: None,
            })
        };
        let no_jobs = device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("blake3 no jobs"),
            size: 16,
            usage: wgpu::BufferUsages::STORAGE,
            mapped_at_creation: false,
        });
        Kernels {
            chunks: pipeline("chunk_cvs"),
            parents: pipeline("parent_cvs"),
            batch_chunks: pipeline("batch_chunk_cvs"),
            batch_parents: pipeline("batch_parent_cvs"),
            layout,
            param_stride: u64::from(device.limits().min_uniform_buffer_offset_alignment)
                .max(PARAMS_LEN),
            no_jobs,
        }
    }

    /// A params buffer for up to [`MAX_DISPATCHES`] dispatches.
    pub fn params_buffer(&self, device: &wgpu::Device) -> wgpu::Buffer {
        device.create_buffer(&wgpu::BufferDescriptor {
            label: Some("blake3 params"),
            size: self.param_stride * MAX_DISPATCHES,
            usage: wgpu::BufferUsages::UNIFORM | wgpu::BufferUsages::COPY_DST,
            mapped_at_creation: false,
        })
    }

    pub fn bind_group(
        &self,
        device: &wgpu::Device,
        params: &wgpu::Buffer,
        input: &wgpu::Buffer,
        cvs: &wgpu::Buffer,
        jobs: Option<&wgpu::Buffer>,
    ) -> wgpu::BindGroup {
        device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some("blake3"),
            layout: &self.layout,
            entries: &[
                wgpu::BindGroupEntry {
                    binding: 0,
                    resource: wgpu::BindingResource::Buffer(wgpu::BufferBinding {
                        buffer: params,
                        offset: 0,
                        size: NonZeroU64::new(PARAMS_LEN),
                    }),
                },
                wgpu::BindGroupEntry {
                    binding: 1,
                    resource: input.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 2,
                    resource: cvs.as_entire_binding(),
                },
                wgpu::BindGroupEntry {
                    binding: 3,
                    resource: jobs.unwrap_or(&self.no_jobs).as_entire_binding(),
                },
            ],
        })
    }

    /// The bytes to write at offset 0 of a params buffer for `dispatches`.
    pub fn encode_params(&self, dispatches: &[Dispatch]) -> Vec<u8> {
        assert!(
            dispatches.len() as u64 <= MAX_DISPATCHES,
            "too many dispatches"
        );
        let mut bytes = vec![0u8; dispatches.len() * self.param_stride as usize];
        for (block, dispatch) in bytes.chunks_mut(self.param_stride as usize).zip(dispatches) {
            dispatch.params.encode(&mut block[..PARAMS_LEN as usize]);
        }
        bytes
    }

    /// Records `dispatches` in order; wgpu puts a barrier between dispatches that touch the same
    /// storage buffer, so each level sees the one below it complete.
    pub fn record(
        &self,
        encoder: &mut wgpu::CommandEncoder,
        bind_group: &wgpu::BindGroup,
        dispatches: &[Dispatch],
    ) {
        let mut pass = encoder.begin_compute_pass(&wgpu::ComputePassDescriptor {
            label: Some("blake3"),
            timestamp_writes: None,
        });
        for (i, dispatch) in dispatches.iter().enumerate() {
            let pipeline = match dispatch.kernel {
                Kernel::Chunks => &self.chunks,
                Kernel::Parents => &self.parents,
                Kernel::BatchChunks => &self.batch_chunks,
                Kernel::BatchParents => &self.batch_parents,
            };
            pass.set_pipeline(pipeline);
            pass.set_bind_group(0, bind_group, &[(i as u64 * self.param_stride) as u32]);
            pass.dispatch_workgroups(dispatch.params.count.div_ceil(WORKGROUP_SIZE), 1, 1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_roots_only_the_final_compression() {
        let plan = WindowPlan::new(5 * 1024, 0, true, HashMode::Plain);
        let roots: Vec<bool> = plan.dispatches.iter().map(|d| d.params.root).collect();
        assert_eq!(roots, vec![false, false, false, true]);
        assert_eq!(plan.level_offsets, vec![0, 5, 8, 10]);
        assert_eq!(plan.top(), 10);
        let single = WindowPlan::new(1024, 0, true, HashMode::Plain);
        assert!(single.dispatches[0].params.root);
        let inner = WindowPlan::new(4096, 8, false, HashMode::Plain);
        assert!(inner.dispatches.iter().all(|d| !d.params.root));
    }
}
