//! Finding an adapter, opening a device, and turning every way a device can fail (validation errors,
//! out of memory, device loss, failed maps) into a [`HashError`] instead of wgpu's default panic.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::mpsc::{Receiver, TryRecvError, channel};
use std::sync::{Arc, Mutex, PoisonError};

use wgpu::{BufferAsyncError, DeviceType, ErrorFilter};

use super::{AdapterPolicy, GpuOptions};
use crate::hash::HashError;

/// A device and queue, with what went wrong on them so far.
pub(crate) struct GpuDevice {
    pub device: wgpu::Device,
    pub queue: wgpu::Queue,
    pub info: wgpu::AdapterInfo,
    lost: Arc<Mutex<Option<String>>>,
    uncaptured: Arc<Mutex<Option<String>>>,
    /// Error scopes are a stack per device, not per thread: one scoped section at a time, so an error
    /// is reported by the work that caused it.
    scopes: Mutex<()>,
}

/// A map requested after a submission; resolved by polling until that submission is done.
pub(crate) struct MapRequest {
    buffer: wgpu::Buffer,
    submission: wgpu::SubmissionIndex,
    done: Receiver<Result<(), BufferAsyncError>>,
}

fn rank(device_type: DeviceType) -> u8 {
    match device_type {
        DeviceType::DiscreteGpu => 4,
        DeviceType::IntegratedGpu => 3,
        DeviceType::VirtualGpu => 2,
        DeviceType::Other => 1,
        DeviceType::Cpu => 0,
    }
}

fn describe_info(info: &wgpu::AdapterInfo) -> String {
    format!("{} ({:?}, {:?})", info.name, info.backend, info.device_type)
}

/// Picks an adapter as `options` say. `WGPU_BACKEND` limits the backends searched (unless the options
/// name them) and `WGPU_ADAPTER_NAME` (a case-insensitive substring) limits the adapters considered.
fn choose_adapter(options: &GpuOptions) -> Result<wgpu::Adapter, HashError> {
    let mut desc = wgpu::InstanceDescriptor::from_env_or_default();
    if let Some(backends) = options.backends {
        desc.backends = backends;
    }
    let instance = wgpu::Instance::new(&desc);
    let adapters: Vec<wgpu::Adapter> = instance
        .enumerate_adapters(desc.backends)
        .into_iter()
        .filter(|a| {
            a.get_downlevel_capabilities()
                .flags
                .contains(wgpu::DownlevelFlags::COMPUTE_SHADERS)
        })
        .collect();
    if adapters.is_empty() {
        return Err(HashError::NoAdapter {
            backends: format!("{:?}", desc.backends),
        });
    }
    let found = || {
        adapters
            .iter()
            .map(|a| describe_info(&a.get_info()))
            .collect::<Vec<_>>()
            .join("; ")
    };
    let wanted = std::env::var("WGPU_ADAPTER_NAME")
        .ok()
        .filter(|name| !name.is_empty());
    let named: Vec<&wgpu::Adapter> = match &wanted {
        Some(name) => {
            let name = name.to_lowercase();
            adapters
                .iter()
                .filter(|a| a.get_info().name.to_lowercase().contains(&name))
                .collect()
        }
        None => adapters.iter().collect(),
    };
    if named.is_empty() {
        return Err(HashError::AdapterNotFound {
            wanted: wanted.unwrap_or_default(),
            found: found(),
        });
    }
    let preferred = |a: &wgpu::Adapter| {
        options.prefer_adapter.as_ref().is_some_and(|name| {
            a.get_info()
                .name
                .to_lowercase()
                .contains(&name.to_lowercase())
        })
    };
    let best = named
        .into_iter()
        .filter(|a| {
            options.policy == AdapterPolicy::Any || a.get_info().device_type != DeviceType::Cpu
        })
        .max_by_key(|a| (preferred(a), rank(a.get_info().device_type)));
    match best {
        Some(adapter) => Ok(adapter.clone()),
        None => Err(HashError::NoHardwareAdapter { found: found() }),
    }
}

impl GpuDevice {
    pub fn open(options: &GpuOptions) -> Result<Self, HashError> {
        let adapter = choose_adapter(options)?;
        let info = adapter.get_info();
        // Ask for everything the adapter offers: the larger its buffer limits, the larger the windows.
        let descriptor = wgpu::DeviceDescriptor {
            label: Some("dualrig blake3"),
            required_limits: adapter.limits(),
            memory_hints: wgpu::MemoryHints::Performance,
            ..Default::default()
        };
        let (device, queue) =
            pollster::block_on(adapter.request_device(&descriptor)).map_err(|source| {
                HashError::RequestDevice {
                    adapter: describe_info(&info),
                    source,
                }
            })?;
        let lost = Arc::new(Mutex::new(None));
        let lost_in_callback = Arc::clone(&lost);
        device.set_device_lost_callback(move |reason, message| {
            if reason != wgpu::DeviceLostReason::Destroyed {
                tracing::error!(?reason, %message, "GPU device lost");
            }
            *lost_in_callback
                .lock()
                .unwrap_or_else(PoisonError::into_inner) = Some(format!("{reason:?}: {message}"));
        });
        let uncaptured = Arc::new(Mutex::new(None));
        let uncaptured_in_handler = Arc::clone(&uncaptured);
        device.on_uncaptured_error(Arc::new(move |error: wgpu::Error| {
            tracing::error!(%error, "uncaptured GPU error");
            uncaptured_in_handler
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .get_or_insert_with(|| error.to_string());
        }));
        Ok(GpuDevice {
            device,
            queue,
            info,
            lost,
            uncaptured,
            scopes: Mutex::new(()),
        })
    }

    pub fn describe(&self) -> String {
        format!("gpu: {}", describe_info(&self.info))
    }

    pub fn limits(&self) -> wgpu::Limits {
        self.device.limits()
    }

    /// An error if the device was lost or an error escaped every error scope.
    pub fn check(&self) -> Result<(), HashError> {
        if let Some(reason) = self
            .lost
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
        {
            return Err(HashError::DeviceLost { reason });
        }
        if let Some(message) = self
            .uncaptured
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        {
            return Err(HashError::GpuInternal {
                during: "earlier GPU work",
                message,
            });
        }
        Ok(())
    }

    /// Runs `f` inside error scopes, returning the first out-of-memory, validation or internal error
    /// it caused.
    pub fn scoped<T>(&self, during: &'static str, f: impl FnOnce() -> T) -> Result<T, HashError> {
        self.check()?;
        let (oom, validation, internal, out) = {
            let _one_at_a_time = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
            self.device.push_error_scope(ErrorFilter::OutOfMemory);
            self.device.push_error_scope(ErrorFilter::Validation);
            self.device.push_error_scope(ErrorFilter::Internal);
            let out = f();
            let internal = pollster::block_on(self.device.pop_error_scope());
            let validation = pollster::block_on(self.device.pop_error_scope());
            let oom = pollster::block_on(self.device.pop_error_scope());
            (oom, validation, internal, out)
        };
        if oom.is_some() {
            return Err(HashError::GpuOutOfMemory { during });
        }
        if let Some(e) = validation {
            return Err(HashError::GpuValidation {
                during,
                message: e.to_string(),
            });
        }
        if let Some(e) = internal {
            return Err(HashError::GpuInternal {
                during,
                message: e.to_string(),
            });
        }
        self.check()?;
        Ok(out)
    }

    /// Asks for `buffer[..len]` (all of it when `len` is `None`) to be mapped once `submission` is
    /// done.
    pub fn request_map(
        &self,
        buffer: &wgpu::Buffer,
        len: Option<u64>,
        mode: wgpu::MapMode,
        submission: wgpu::SubmissionIndex,
    ) -> MapRequest {
        let (tx, done) = channel();
        let slice = match len {
            Some(len) => buffer.slice(..len),
            None => buffer.slice(..),
        };
        slice.map_async(mode, move |result| {
            // The receiver is gone only when the hasher gave up on this map; nothing to tell.
            let _ = tx.send(result);
        });
        MapRequest {
            buffer: buffer.clone(),
            submission,
            done,
        }
    }

    /// Blocks until the map is done. A map that fails is cancelled, so the buffer can be mapped
    /// again once the device recovers.
    pub fn await_map(&self, request: MapRequest) -> Result<(), HashError> {
        let result = self.wait_map(&request);
        if result.is_err() {
            self.cancel_map(&request.buffer);
        }
        result
    }

    fn wait_map(&self, request: &MapRequest) -> Result<(), HashError> {
        loop {
            match request.done.try_recv() {
                Ok(Ok(())) => return Ok(()),
                Ok(Err(e)) => {
                    self.check()?;
                    return Err(HashError::Readback(e.to_string()));
                }
                Err(TryRecvError::Disconnected) => {
                    self.check()?;
                    return Err(HashError::Readback(
                        "the map callback was dropped".to_owned(),
                    ));
                }
                Err(TryRecvError::Empty) => self.wait_for(request.submission.clone())?,
            }
        }
    }

    /// Unmaps `buffer` whatever its state; errors from doing so are of no interest.
    fn cancel_map(&self, buffer: &wgpu::Buffer) {
        let _one_at_a_time = self.scopes.lock().unwrap_or_else(PoisonError::into_inner);
        self.device.push_error_scope(ErrorFilter::Validation);
        self.device.push_error_scope(ErrorFilter::Internal);
        buffer.unmap();
        let _ = pollster::block_on(self.device.pop_error_scope());
        let _ = pollster::block_on(self.device.pop_error_scope());
    }

    /// Blocks until `submission` has finished on the GPU.
    pub fn wait_for(&self, submission: wgpu::SubmissionIndex) -> Result<(), HashError> {
        self.check()?;
        // wgpu panics when polling a lost device instead of returning an error.
        let polled = catch_unwind(AssertUnwindSafe(|| {
            self.device.poll(wgpu::PollType::Wait {
                submission_index: Some(submission),
                timeout: None,
            })
        }));
        match polled {
            Ok(Ok(_)) => self.check(),
            Ok(Err(e)) => {
                self.check()?;
                Err(HashError::Readback(e.to_string()))
            }
            Err(_) => {
                self.check()?;
                Err(HashError::DeviceLost {
                    reason: "polling the device failed".to_owned(),
                })
            }
        }
    }
}
