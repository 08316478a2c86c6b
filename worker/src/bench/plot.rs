//! `bench --plot FILE.svg`: encode rate (all sessions together, fps) against concurrent sessions, one line
//! per encoder, with the ffmpeg CLI's one-session rate as a marked point per encoder. Plain SVG text, so
//! it needs no plotting library and diffs readably.

use std::fmt::Write as _;

use super::report::EncodeBenchReport;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 160.0;
const TOP: f64 = 36.0;
const BOTTOM: f64 = 48.0;
const COLOURS: [&str; 5] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e"];

/// Characters SVG text cannot hold as they are.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// The chart as an SVG document.
pub fn encode_svg(report: &EncodeBenchReport) -> String {
    let max_sessions = report
        .encoders
        .iter()
        .flat_map(|e| e.sessions.iter().map(|s| s.sessions))
        .max()
        .unwrap_or(1)
        .max(2);
    let max_fps = report
        .encoders
        .iter()
        .flat_map(|e| {
            e.sessions
                .iter()
                .map(|s| s.fps)
                .chain(e.cli.as_ref().map(|c| c.fps))
        })
        .fold(1.0_f64, f64::max)
        * 1.1;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    // Sessions go 1, 2, 4 …: a log2 axis spaces them evenly.
    let span = f64::from(max_sessions).log2().max(1.0);
    let x = |sessions: u32| LEFT + f64::from(sessions).log2() / span * plot_w;
    let y = |fps: f64| TOP + plot_h - fps / max_fps * plot_h;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="20" text-anchor="middle" font-size="14">Encode rate of the {} ladder on a {}x{} clip</text>"#,
        LEFT + plot_w / 2.0,
        escape(&report.ladder.join(",")),
        report.clip.width,
        report.clip.height
    );
    // Axes, ticks and labels.
    let _ = writeln!(
        svg,
        r#"<path d="M{LEFT},{TOP} V{} H{}" fill="none" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w
    );
    let mut sessions = 1;
    while sessions <= max_sessions {
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{sessions}</text>"#,
            x(sessions),
            TOP + plot_h + 16.0
        );
        sessions *= 2;
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">concurrent sessions</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 8.0
    );
    for i in 0..=4 {
        let fps = max_fps * f64::from(i) / 4.0;
        let _ = writeln!(
            svg,
            r##"<text x="{}" y="{:.1}" text-anchor="end">{fps:.0}</text><path d="M{LEFT},{:.1} H{}" stroke="#ddd"/>"##,
            LEFT - 6.0,
            y(fps) + 4.0,
            y(fps),
            LEFT + plot_w
        );
    }
    let _ = writeln!(
        svg,
        r#"<text transform="translate(16,{}) rotate(-90)" text-anchor="middle">source frames per second, all sessions</text>"#,
        TOP + plot_h / 2.0
    );
    // One line per encoder; the CLI as a hollow marker at one session.
    let mut legend_y = TOP + 8.0;
    let legend_x = LEFT + plot_w + 16.0;
    for (i, enc) in report.encoders.iter().enumerate() {
        let colour = COLOURS[i % COLOURS.len()];
        let points: Vec<String> = enc
            .sessions
            .iter()
            .map(|s| format!("{:.1},{:.1}", x(s.sessions), y(s.fps)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline points="{}" fill="none" stroke="{colour}" stroke-width="2"/>"#,
            points.join(" ")
        );
        for s in &enc.sessions {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{colour}"/>"#,
                x(s.sessions),
                y(s.fps)
            );
        }
        let _ = writeln!(
            svg,
            r#"<path d="M{legend_x},{legend_y} h16" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">{}</text>"#,
            legend_x + 20.0,
            legend_y + 4.0,
            escape(&enc.encoder)
        );
        legend_y += 18.0;
        if let Some(cli) = &enc.cli {
            let _ = writeln!(
                svg,
                r#"<rect x="{:.1}" y="{:.1}" width="8" height="8" fill="white" stroke="{colour}" stroke-width="2"/>"#,
                x(1) - 4.0,
                y(cli.fps) - 4.0
            );
            let _ = writeln!(
                svg,
                r#"<rect x="{}" y="{}" width="8" height="8" fill="white" stroke="{colour}" stroke-width="2"/><text x="{}" y="{}">ffmpeg CLI ({})</text>"#,
                legend_x + 4.0,
                legend_y - 4.0,
                legend_x + 20.0,
                legend_y + 4.0,
                escape(&enc.encoder)
            );
            legend_y += 18.0;
        }
    }
    svg.push_str("</svg>\n");
    svg
}
