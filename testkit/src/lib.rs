//! What the test suites of every crate share: test video made with the FFmpeg CLI, child processes that
//! are killed when a test ends however it ends, and plain loopback helpers. A dev-dependency only; it
//! uses nothing of dualrig's, so any crate's tests may use it.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// Runs the ffmpeg CLI and fails the test with its stderr when it fails.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-loglevel", "error", "-nostdin", "-y"])
        .args(args)
        .output()
        .expect("the ffmpeg CLI is installed (make test installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Encodes `secs` of the lavfi `video` graph (and `audio`, as AAC) with libx264, a keyframe every 30
/// frames, to `path`, in the container its extension names.
pub fn lavfi_clip(path: PathBuf, video: &str, audio: Option<&str>, secs: f64) -> PathBuf {
    let duration = secs.to_string();
    let mut args = vec!["-f", "lavfi", "-i", video];
    if let Some(audio) = audio {
        args.extend(["-f", "lavfi", "-i", audio]);
    }
    args.extend([
        "-t",
        &duration,
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-g",
        "30",
        "-pix_fmt",
        "yuv420p",
    ]);
    match audio {
        Some(_) => args.extend(["-c:a", "aac", "-shortest"]),
        None => args.push("-an"),
    }
    args.push(path.to_str().expect("utf-8 path"));
    ffmpeg(&args);
    path
}

/// Frame count, width and height of the first video stream, as ffprobe reads it (playlists too).
pub fn probe_video(path: &Path) -> (u64, u32, u32) {
    let out = Command::new("ffprobe")
        .args([
            "-v",
            "error",
            "-count_frames",
            "-select_streams",
            "v:0",
            "-show_entries",
            "stream=nb_read_frames,width,height",
            "-of",
            "csv=p=0",
        ])
        .arg(path)
        .output()
        .expect("ffprobe is installed");
    assert!(
        out.status.success(),
        "ffprobe {}: {}",
        path.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let fields: Vec<&str> = text.lines().next().unwrap_or_default().split(',').collect();
    assert_eq!(
        fields.len(),
        3,
        "unexpected ffprobe output {text:?} for {}",
        path.display()
    );
    (
        fields[2].trim().parse().expect("frames"),
        fields[0].trim().parse().expect("width"),
        fields[1].trim().parse().expect("height"),
    )
}

/// A child process (a real binary), killed (SIGKILL) and reaped when dropped, so a failing test
/// leaves nothing running.
pub struct Killed(pub std::process::Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// The whole HTTP/1.1 response to `GET path` on `addr`, or `None` when nothing answers.
pub fn http_get(addr: &str, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut body = String::new();
    stream.read_to_string(&mut body).ok()?;
    Some(body)
}

/// A 200 answer to a GET: its head (status line and headers) and its body.
#[derive(Debug, Clone)]
pub struct HttpOk {
    pub head: String,
    pub body: String,
}

impl HttpOk {
    /// The value of header `name` (any case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head
            .lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, value)| value.trim())
    }
}

/// `GET path` on `addr` when it answers 200; `None` when nothing answers or it answers otherwise.
pub fn http_get_ok(addr: &str, path: &str) -> Option<HttpOk> {
    let response = http_get(addr, path)?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| HttpOk {
        head: head.to_owned(),
        body: body.to_owned(),
    })
}

/// The trimmed text of `path` once a process has written it (an address file), waiting up to two
/// minutes.
pub fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return text.trim().to_owned();
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The workspace binary `name`, built in the same target dir as `own` (a test's
/// `env!("CARGO_BIN_EXE_…")`) by `cargo build --bins`; a missing one fails the test, saying so.
pub fn binary_beside(own: &str, name: &str) -> PathBuf {
    let path = Path::new(own).parent().expect("target dir").join(name);
    assert!(
        path.exists(),
        "{} is not built: run `cargo build --bins` (`make test` builds every binary)",
        path.display()
    );
    path
}
