//! SVG line plots of the measurements.

use std::fmt::Write as _;

use crate::report::{fmt_ms, fmt_n};
use crate::results::Method;

pub(crate) fn svg_plot(title: &str, xlabel: &str, series: &[(Method, Vec<(f64, f64)>)]) -> String {
    let (w, h) = (820.0, 440.0);
    let (l, r, t, b) = (70.0, 330.0, 40.0, 50.0);
    let pw = w - l - r;
    let ph = h - t - b;
    let pts: Vec<(f64, f64)> = series
        .iter()
        .flat_map(|(_, v)| v.iter().copied())
        .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
        .collect();
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="{w}" height="{h}" fill="white"/>"#);
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="22" text-anchor="middle" font-size="14">{}</text>"#,
        l + pw / 2.0,
        xml(title)
    );
    if pts.is_empty() {
        svg.push_str("</svg>\n");
        return svg;
    }
    let lx0 = pts
        .iter()
        .map(|p| p.0.log10())
        .fold(f64::INFINITY, f64::min)
        .floor();
    let mut lx1 = pts
        .iter()
        .map(|p| p.0.log10())
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil();
    let ly0 = pts
        .iter()
        .map(|p| p.1.log10())
        .fold(f64::INFINITY, f64::min)
        .floor();
    let mut ly1 = pts
        .iter()
        .map(|p| p.1.log10())
        .fold(f64::NEG_INFINITY, f64::max)
        .ceil();
    if lx1 <= lx0 {
        lx1 = lx0 + 1.0;
    }
    if ly1 <= ly0 {
        ly1 = ly0 + 1.0;
    }
    let px = |x: f64| l + (x.log10() - lx0) / (lx1 - lx0) * pw;
    let py = |y: f64| t + ph - (y.log10() - ly0) / (ly1 - ly0) * ph;
    // Grid and ticks.
    let mut e = lx0 as i32;
    while e as f64 <= lx1 {
        let x = px(10f64.powi(e));
        let _ = writeln!(
            svg,
            r##"<line x1="{x:.1}" y1="{t}" x2="{x:.1}" y2="{:.1}" stroke="#ddd"/><text x="{x:.1}" y="{:.1}" text-anchor="middle">{}</text>"##,
            t + ph,
            t + ph + 18.0,
            xml(&fmt_n(10i64.pow(e.max(0) as u32)))
        );
        e += 1;
    }
    let mut e = ly0 as i32;
    while e as f64 <= ly1 {
        let y = py(10f64.powi(e));
        let label = if e >= 3 {
            format!("{} s", fmt_n(10i64.pow((e - 3) as u32)))
        } else if e >= 0 {
            format!("{} ms", 10i64.pow(e as u32))
        } else {
            format!("{} ms", 10f64.powi(e))
        };
        let _ = writeln!(
            svg,
            r##"<line x1="{l}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="#ddd"/><text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"##,
            l + pw,
            l - 6.0,
            y + 4.0,
            xml(&label)
        );
        e += 1;
    }
    let _ = writeln!(
        svg,
        r##"<rect x="{l}" y="{t}" width="{pw}" height="{ph}" fill="none" stroke="#333"/>"##
    );
    let _ = writeln!(
        svg,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">{} (log scale)</text>"#,
        l + pw / 2.0,
        h - 10.0,
        xml(xlabel)
    );
    let _ = writeln!(
        svg,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">refresh time, median (log scale)</text>"#,
        t + ph / 2.0,
        t + ph / 2.0
    );
    // Series.
    for (i, (m, v)) in series.iter().enumerate() {
        let mut v: Vec<(f64, f64)> = v
            .iter()
            .copied()
            .filter(|(x, y)| *x > 0.0 && *y > 0.0 && y.is_finite())
            .collect();
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        let pts: Vec<String> = v
            .iter()
            .map(|(x, y)| format!("{:.1},{:.1}", px(*x), py(*y)))
            .collect();
        let c = m.color();
        let mut label = m.label().to_string();
        if v.len() == 1 {
            // Measured at one x only (a cost that does not depend on x): a dashed level.
            let y = py(v[0].1);
            let _ = writeln!(
                svg,
                r#"<line x1="{l}" y1="{y:.1}" x2="{:.1}" y2="{y:.1}" stroke="{c}" stroke-width="2" stroke-dasharray="6 4"/>"#,
                l + pw
            );
            label = format!("{label} (at {} only)", fmt_n(v[0].0 as i64));
        } else {
            let _ = writeln!(
                svg,
                r#"<polyline fill="none" stroke="{c}" stroke-width="2" points="{}"/>"#,
                pts.join(" ")
            );
        }
        for (x, y) in &v {
            let _ = writeln!(
                svg,
                r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{c}"><title>{}: {} ms</title></circle>"#,
                px(*x),
                py(*y),
                m.short(),
                fmt_ms(*y)
            );
        }
        let ly = t + 10.0 + i as f64 * 20.0;
        let lx = l + pw + 15.0;
        let _ = writeln!(
            svg,
            r#"<line x1="{lx}" y1="{ly}" x2="{:.1}" y2="{ly}" stroke="{c}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            xml(&label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

pub(crate) fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
