//! FFmpeg's log, routed into `tracing` and, on request, captured: FFmpeg often says why something failed
//! ("Cannot load libcuda.so.1") only in its log while the call itself returns a generic error code.

use std::cell::RefCell;

/// Most messages kept by one [`capture`]; the first ones explain a failure, the rest repeat it.
const MAX_CAPTURED: usize = 8;

thread_local! {
    static CAPTURED: RefCell<Option<Vec<String>>> = const { RefCell::new(None) };
}

/// Runs `f` and returns, with its result, the warnings and errors FFmpeg logged on this thread meanwhile.
pub(crate) fn capture<T>(f: impl FnOnce() -> T) -> (T, Vec<String>) {
    let outer = CAPTURED.with(|c| c.borrow_mut().replace(Vec::new()));
    let out = f();
    let lines = CAPTURED.with(|c| std::mem::replace(&mut *c.borrow_mut(), outer));
    (out, lines.unwrap_or_default())
}

/// `msgs` joined into one clause, or `fallback` when FFmpeg said nothing.
pub(crate) fn explain(msgs: &[String], fallback: impl std::fmt::Display) -> String {
    if msgs.is_empty() {
        fallback.to_string()
    } else {
        msgs.join("; ")
    }
}

fn deliver(level: i32, line: &str) {
    let line = strip_context_address(line.trim());
    if line.is_empty() {
        return;
    }
    if level <= ffmpeg_next::ffi::AV_LOG_WARNING {
        // try_borrow: a log line emitted while this thread already holds the buffer is dropped, not a panic.
        CAPTURED.with(|c| {
            if let Ok(mut slot) = c.try_borrow_mut()
                && let Some(lines) = slot.as_mut()
                && lines.len() < MAX_CAPTURED
                && !lines.contains(&line)
            {
                lines.push(line.clone());
            }
        });
    }
    tracing::debug!(target: "ffmpeg", level, "{line}");
}

/// "[h264 @ 0x55d0c0] error while decoding" → "[h264] error while decoding": the address is noise.
fn strip_context_address(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut rest = line;
    while let Some(at) = rest.find(" @ 0x") {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 5..];
        let hex_len = tail
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(tail.len());
        rest = &tail[hex_len..];
    }
    out.push_str(rest);
    out
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn install() {
    hook::install();
}

/// On other architectures FFmpeg's `va_list` has another shape; FFmpeg keeps its own stderr log there
/// (quiet below errors) and failure reasons fall back to FFmpeg's error codes.
#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn install() {}

#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod hook {
    use std::ffi::{CStr, c_char, c_int, c_void};

    use ffmpeg_next::ffi;

    pub(super) fn install() {
        // SAFETY: `forward` has exactly the signature FFmpeg expects for a log callback and is valid for
        // the life of the process; FFmpeg may call it from any thread, and it touches only thread-locals
        // and `tracing`, both thread-safe.
        unsafe { ffi::av_log_set_callback(Some(forward)) };
    }

    unsafe extern "C" fn forward(
        avcl: *mut c_void,
        level: c_int,
        fmt: *const c_char,
        vl: *mut ffi::__va_list_tag,
    ) {
        // Higher numbers are chattier; info and below are not worth formatting.
        if level > ffi::AV_LOG_WARNING {
            return;
        }
        let mut buf = [0 as c_char; 1024];
        let mut print_prefix: c_int = 1;
        // SAFETY: `avcl`, `fmt` and `vl` come straight from FFmpeg's av_vlog and are passed on unchanged;
        // av_log_format_line2 writes at most `buf.len()` bytes, always NUL-terminated, into `buf`.
        let written = unsafe {
            ffi::av_log_format_line2(
                avcl,
                level,
                fmt,
                vl,
                buf.as_mut_ptr(),
                buf.len() as c_int,
                &mut print_prefix,
            )
        };
        if written < 0 {
            return;
        }
        // SAFETY: `buf` is NUL-terminated by av_log_format_line2 (it zero-fills on truncation too).
        let line = unsafe { CStr::from_ptr(buf.as_ptr()) }.to_string_lossy();
        super::deliver(level, &line);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn context_addresses_are_dropped() {
        assert_eq!(
            strip_context_address("[h264_nvenc @ 0x5647ab] Cannot load libcuda.so.1"),
            "[h264_nvenc] Cannot load libcuda.so.1"
        );
        assert_eq!(strip_context_address("plain"), "plain");
    }

    #[test]
    fn capture_nests_and_restores() {
        let ((), outer) = capture(|| {
            deliver(ffmpeg_next::ffi::AV_LOG_ERROR, "outer one");
            let ((), inner) = capture(|| deliver(ffmpeg_next::ffi::AV_LOG_ERROR, "inner"));
            assert_eq!(inner, vec!["inner".to_string()]);
            deliver(ffmpeg_next::ffi::AV_LOG_ERROR, "outer two");
        });
        assert_eq!(
            outer,
            vec!["outer one".to_string(), "outer two".to_string()]
        );
    }
}
