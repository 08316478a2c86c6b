//! VAAPI surfaces for h264_vaapi. That encoder only takes frames that live on the GPU, and ffmpeg-next has
//! no safe API for hardware devices or frame pools, so the few C calls it needs are made here, in one
//! place: open the render node, make a pool of NV12 surfaces, hand it to the encoder, upload each frame.

use std::path::Path;

use ffmpeg_next::{self as ffmpeg, encoder, ffi, format::Pixel, frame};

/// The DRM render node a VAAPI driver is reached through.
pub(crate) const RENDER_NODE: &str = "/dev/dri/renderD128";

/// Software pixel format the surfaces hold; every VAAPI H.264 encoder takes NV12.
pub(crate) const SURFACE_FORMAT: Pixel = Pixel::NV12;

/// Why VAAPI cannot be tried here, before any FFmpeg call, or `None` when the render node exists.
pub(crate) fn unavailable_reason() -> Option<String> {
    (!Path::new(RENDER_NODE).exists())
        .then(|| format!("needs a VAAPI device ({RENDER_NODE} not present)"))
}

/// A VAAPI device and a pool of surfaces of one size. Lives on the thread that made it.
pub(crate) struct SurfacePool {
    device: *mut ffi::AVBufferRef,
    frames: *mut ffi::AVBufferRef,
}

#[allow(unsafe_code)]
impl SurfacePool {
    /// Opens the render node and a pool of `width`x`height` NV12 surfaces.
    pub(crate) fn open(width: u32, height: u32) -> Result<Self, ffmpeg::Error> {
        let node = std::ffi::CString::new(RENDER_NODE).map_err(|_| ffmpeg::Error::InvalidData)?;
        let mut pool = SurfacePool {
            device: std::ptr::null_mut(),
            frames: std::ptr::null_mut(),
        };
        // SAFETY: av_hwdevice_ctx_create writes a new reference into `pool.device` only on success; on
        // failure it stays null, which Drop tolerates. `node` outlives the call.
        let ret = unsafe {
            ffi::av_hwdevice_ctx_create(
                &mut pool.device,
                ffi::AVHWDeviceType::AV_HWDEVICE_TYPE_VAAPI,
                node.as_ptr(),
                std::ptr::null_mut(),
                0,
            )
        };
        if ret < 0 {
            return Err(ffmpeg::Error::from(ret));
        }
        // SAFETY: `pool.device` is a valid device reference (checked above). av_hwframe_ctx_alloc returns
        // a new frames reference or null; its `data` points to an AVHWFramesContext we may fill in before
        // av_hwframe_ctx_init, as the FFmpeg documentation prescribes.
        unsafe {
            pool.frames = ffi::av_hwframe_ctx_alloc(pool.device);
            if pool.frames.is_null() {
                return Err(ffmpeg::Error::Other {
                    errno: ffmpeg::util::error::ENOMEM,
                });
            }
            let ctx = (*pool.frames).data as *mut ffi::AVHWFramesContext;
            (*ctx).format = ffi::AVPixelFormat::AV_PIX_FMT_VAAPI;
            (*ctx).sw_format = SURFACE_FORMAT.into();
            (*ctx).width = width as i32;
            (*ctx).height = height as i32;
            (*ctx).initial_pool_size = 20;
            let ret = ffi::av_hwframe_ctx_init(pool.frames);
            if ret < 0 {
                return Err(ffmpeg::Error::from(ret));
            }
        }
        Ok(pool)
    }

    /// Makes `encoder` take frames from this pool. Call before opening it.
    pub(crate) fn attach(&self, encoder: &mut encoder::video::Video) {
        encoder.set_format(Pixel::VAAPI);
        // SAFETY: `self.frames` is a valid, initialised frames reference; the encoder context takes its
        // own new reference (av_buffer_ref) and releases it when the context is freed.
        unsafe {
            let ctx = encoder.as_mut_ptr();
            (*ctx).hw_frames_ctx = ffi::av_buffer_ref(self.frames);
        }
    }

    /// Copies an NV12 frame of the pool's size onto a fresh surface, keeping its timestamps.
    pub(crate) fn upload(&self, source: &frame::Video) -> Result<frame::Video, ffmpeg::Error> {
        let mut surface = frame::Video::empty();
        // SAFETY: `surface` is a fresh, empty AVFrame owned by us; av_hwframe_get_buffer attaches a
        // surface from the valid pool to it; av_hwframe_transfer_data reads `source` (a valid software
        // frame, not modified) into it; av_frame_copy_props copies pts and the other properties.
        unsafe {
            let ret = ffi::av_hwframe_get_buffer(self.frames, surface.as_mut_ptr(), 0);
            if ret < 0 {
                return Err(ffmpeg::Error::from(ret));
            }
            let ret = ffi::av_hwframe_transfer_data(surface.as_mut_ptr(), source.as_ptr(), 0);
            if ret < 0 {
                return Err(ffmpeg::Error::from(ret));
            }
            let ret = ffi::av_frame_copy_props(surface.as_mut_ptr(), source.as_ptr());
            if ret < 0 {
                return Err(ffmpeg::Error::from(ret));
            }
        }
        Ok(surface)
    }
}

#[allow(unsafe_code)]
impl Drop for SurfacePool {
    fn drop(&mut self) {
        // SAFETY: both fields are either null or references this pool owns; av_buffer_unref accepts null
        // targets and nulls the pointer after releasing.
        unsafe {
            ffi::av_buffer_unref(&mut self.frames);
            ffi::av_buffer_unref(&mut self.device);
        }
    }
}
