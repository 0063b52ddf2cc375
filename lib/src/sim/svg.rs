//! A run as an SVG a person can open: arrivals and backlog (messages, left axis) and replicas
//! (right axis) over time. Written directly: three polylines, two axes and a legend need no
//! plotting library (plotters' text layout would need a font backend).

use std::fmt::Write as _;

use super::model::Run;

const WIDTH: f64 = 960.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 70.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 50.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// A round axis maximum at or above `value`.
fn nice(value: f64) -> f64 {
    if value <= 0.0 {
        return 1.0;
    }
    let magnitude = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * magnitude)
        .find(|m| *m >= value)
        .unwrap_or(value)
}

/// At most this many points per line: about one per horizontal pixel of the plot, beyond which
/// more points only make the file larger (a week at one sample a second is 604,800).
pub const MAX_POINTS: usize = 1_640;

/// `(index, value)` pairs to draw: all of them when few, else each bucket's lowest and highest
/// in their order, so that peaks and troughs survive.
fn downsample(values: &[f64]) -> Vec<(usize, f64)> {
    if values.len() <= MAX_POINTS {
        return values.iter().copied().enumerate().collect();
    }
    let bucket = values.len().div_ceil(MAX_POINTS / 2);
    let mut points = Vec::with_capacity(MAX_POINTS);
    for (n, chunk) in values.chunks(bucket).enumerate() {
        let start = n * bucket;
        let (mut low, mut high) = ((0, chunk[0]), (0, chunk[0]));
        for (i, value) in chunk.iter().copied().enumerate() {
            if value < low.1 {
                low = (i, value);
            }
            if value > high.1 {
                high = (i, value);
            }
        }
        let (first, second) = if low.0 <= high.0 { (low, high) } else { (high, low) };
        points.push((start + first.0, first.1));
        if second.0 != first.0 {
            points.push((start + second.0, second.1));
        }
    }
    points
}

fn polyline(svg: &mut String, points: &[(f64, f64)], color: &str) {
    let coordinates: Vec<String> = points.iter().map(|(x, y)| format!("{x:.1},{y:.1}")).collect();
    let _ = writeln!(
        svg,
        r#"<polyline fill="none" stroke="{color}" stroke-width="1.5" points="{}"/>"#,
        coordinates.join(" ")
    );
}

/// The plot; `title` names the settings.
#[allow(clippy::cast_precision_loss)]
pub fn plot(run: &Run, title: &str) -> String {
    let seconds = run.samples.len().max(1) as f64;
    let backlog: Vec<f64> = run
        .samples
        .iter()
        .map(|s| (s.visible + s.in_flight + s.delayed) as f64)
        .collect();
    // Arrivals per second averaged over 10 s, so bursts read as rates.
    let arrivals: Vec<f64> = (0..run.samples.len())
        .map(|i| {
            let window = &run.samples[i.saturating_sub(9)..=i];
            window.iter().map(|s| s.arrivals as f64).sum::<f64>() / window.len() as f64
        })
        .collect();
    let replicas: Vec<f64> = run.samples.iter().map(|s| f64::from(s.replicas)).collect();
    let messages_max = nice(backlog.iter().chain(&arrivals).copied().fold(0.0, f64::max));
    let replicas_max = nice(replicas.iter().copied().fold(0.0, f64::max));
    let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
    let x = |i: usize| LEFT + plot_w * i as f64 / seconds;
    let y = |value: f64, max: f64| TOP + plot_h * (1.0 - value / max);

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{LEFT}" y="24" font-size="15">{}</text>"#,
        escape(title)
    );
    for tick in 0..=5 {
        let fraction = f64::from(tick) / 5.0;
        let ty = TOP + plot_h * (1.0 - fraction);
        let _ = writeln!(
            svg,
            r##"<line x1="{LEFT}" x2="{}" y1="{ty:.1}" y2="{ty:.1}" stroke="#e5e5e5"/>"##,
            WIDTH - RIGHT
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            ty + 4.0,
            messages_max * fraction
        );
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="{:.1}">{}</text>"#,
            WIDTH - RIGHT + 6.0,
            ty + 4.0,
            replicas_max * fraction
        );
        let tx = LEFT + plot_w * fraction;
        let _ = writeln!(
            svg,
            r#"<text x="{tx:.1}" y="{}" text-anchor="middle">{:.0} s</text>"#,
            HEIGHT - BOTTOM + 18.0,
            seconds * fraction
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="14" y="{}" transform="rotate(-90 14 {})">messages</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" transform="rotate(90 {} {})">replicas</text>"#,
        WIDTH - 14.0,
        TOP + plot_h / 2.0,
        WIDTH - 14.0,
        TOP + plot_h / 2.0
    );
    let series = |values: &[f64], max: f64| -> Vec<(f64, f64)> {
        downsample(values).into_iter().map(|(i, v)| (x(i), y(v, max))).collect()
    };
    polyline(&mut svg, &series(&arrivals, messages_max), "#1f77b4");
    polyline(&mut svg, &series(&backlog, messages_max), "#ff7f0e");
    polyline(&mut svg, &series(&replicas, replicas_max), "#2ca02c");
    for (i, (label, color)) in [
        ("arrivals / s (10 s mean)", "#1f77b4"),
        ("backlog (visible + in flight + delayed)", "#ff7f0e"),
        ("replicas", "#2ca02c"),
    ]
    .iter()
    .enumerate()
    {
        let lx = LEFT + 10.0 + 260.0 * i as f64;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" x2="{}" y1="38" y2="38" stroke="{color}" stroke-width="3"/>"#,
            lx + 18.0
        );
        let _ = writeln!(svg, r#"<text x="{}" y="42">{label}</text>"#, lx + 24.0);
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::model::{Run, Sample};

    #[test]
    fn three_series_on_round_axes() {
        let run = Run {
            samples: (0..100)
                .map(|s| Sample {
                    second: s,
                    arrivals: 3,
                    visible: s,
                    replicas: u32::try_from(s / 10).unwrap(),
                    ..Sample::default()
                })
                .collect(),
            ages: vec![],
        };
        let svg = plot(&run, "queueLength <5> & more");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert!(svg.contains("queueLength &lt;5&gt; &amp; more"));
        assert!(svg.contains(">100</text>"), "messages axis rounds 99 up to 100");
        assert!(svg.contains(">10</text>"), "replicas axis rounds 9 up to 10");
        assert!(svg.trim_end().ends_with("</svg>"));
    }

    #[test]
    fn a_week_is_drawn_with_a_bounded_number_of_points_and_keeps_its_peaks() {
        let samples: Vec<Sample> = (0..604_800u64)
            .map(|s| Sample {
                second: s,
                visible: if s == 300_001 { 9_999 } else { s % 100 },
                replicas: u32::from(s % 7_000 == 0),
                ..Sample::default()
            })
            .collect();
        let svg = plot(&Run { samples, ages: vec![] }, "a week");
        for line in svg.lines().filter(|l| l.starts_with("<polyline")) {
            let points = line.matches(',').count();
            assert!(points <= MAX_POINTS, "{points} points");
        }
        assert!(svg.len() < 200_000, "{} bytes", svg.len());
        let backlog = svg
            .lines()
            .find(|l| l.contains("#ff7f0e") && l.starts_with("<polyline"))
            .unwrap();
        let top = format!(",{TOP:.1}");
        assert!(
            backlog.contains(&top),
            "the single 9,999 peak reaches the top of the axis"
        );
        let replicas = svg
            .lines()
            .find(|l| l.contains("#2ca02c") && l.starts_with("<polyline"))
            .unwrap();
        assert!(replicas.contains(&top), "one-second replica spikes survive");
    }

    #[test]
    fn nice_maxima() {
        assert!((nice(0.0) - 1.0).abs() < f64::EPSILON);
        assert!((nice(7.0) - 10.0).abs() < f64::EPSILON);
        assert!((nice(21.0) - 25.0).abs() < f64::EPSILON);
        assert!((nice(240.0) - 250.0).abs() < f64::EPSILON);
    }
}
