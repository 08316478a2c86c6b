//! swscale on one 1080p frame to 720p with the bicubic filter the transcoder uses, the per-frame cost
//! every 720p rendition pays before its encoder sees the frame; 480p and 360p alongside for scale.
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use ffmpeg_next::format::Pixel;
use ffmpeg_next::frame::Video;
use ffmpeg_next::software::scaling::{Context, Flags};

const SOURCE: (u32, u32) = (1920, 1080);

/// A 1080p yuv420p frame with a gradient in every plane, so no plane is constant.
fn source_frame() -> Video {
    let mut frame = Video::new(Pixel::YUV420P, SOURCE.0, SOURCE.1);
    for plane in 0..frame.planes() {
        let stride = frame.stride(plane);
        for (i, byte) in frame.data_mut(plane).iter_mut().enumerate() {
            *byte = ((i % stride) as u32 ^ (i / stride) as u32) as u8;
        }
    }
    frame
}

fn scale(c: &mut Criterion) {
    dualrig_media::init();
    let source = source_frame();
    let mut group = c.benchmark_group("swscale_1080p");
    group.throughput(Throughput::Elements(1));
    for (label, width, height) in [("720p", 1280, 720), ("480p", 854, 480), ("360p", 640, 360)] {
        let mut scaler = Context::get(
            Pixel::YUV420P,
            SOURCE.0,
            SOURCE.1,
            Pixel::YUV420P,
            width,
            height,
            Flags::BICUBIC,
        )
        .expect("swscale context");
        let mut out = Video::new(Pixel::YUV420P, width, height);
        group.bench_function(BenchmarkId::new("bicubic", label), |b| {
            b.iter(|| scaler.run(&source, &mut out).expect("scales"))
        });
    }
    group.finish();
}

criterion_group!(benches, scale);
criterion_main!(benches);
