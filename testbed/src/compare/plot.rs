//! SVG plots of a comparison with `plotters`' SVG backend only: text is written as SVG `<text>`
//! elements, so no font files or system libraries are needed (the viewer renders the text).
//!
//! Files: `stretch_cdf.svg` (CDF of per-receiver end-to-end stretch per mode), `latency_cdf.svg` (CDF of
//! one-way latency per mode), `link_stress.svg` (copies per data packet per link and mode),
//! `state_per_router.svg` (multicast entries per router and mode; overlay hosts are not routers
//! and are left out). Modes that did not run are left out of every plot.

use std::path::Path;

use plotters::prelude::*;

use crate::topology::{NodeKind, Plan};

use super::{CompareError, CompareReport};

fn perr(path: &Path) -> impl Fn(String) -> CompareError + '_ {
    move |msg| CompareError::Plot { path: path.display().to_string(), msg }
}

/// Empirical CDFs of each series.
fn cdf(
    path: &Path,
    title: &str,
    xlabel: &str,
    series: &[(String, Vec<f64>)],
) -> Result<(), CompareError> {
    let e = perr(path);
    let s = |x: &dyn std::fmt::Display| x.to_string();
    let all: Vec<f64> = series.iter().flat_map(|(_, v)| v.iter().copied()).collect();
    let lo = all.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = all.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    let (lo, hi) = if all.is_empty() { (0.0, 1.0) } else { (lo.min(hi), hi) };
    let pad = ((hi - lo) * 0.05).max(0.05);
    let root = SVGBackend::new(path, (900, 500)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(s(&x)))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(45)
        .y_label_area_size(55)
        .build_cartesian_2d((lo - pad)..(hi + pad), 0f64..1.05f64)
        .map_err(|x| e(s(&x)))?;
    chart.configure_mesh().x_desc(xlabel).y_desc("fraction").draw().map_err(|x| e(s(&x)))?;
    for (i, (name, v)) in series.iter().enumerate() {
        let mut v = v.clone();
        v.sort_by(f64::total_cmp);
        // At most ~1000 steps per curve keeps the SVG small.
        let step = (v.len() / 1000).max(1);
        let n = v.len() as f64;
        let mut pts = vec![(lo - pad, 0.0)];
        for (k, x) in v.iter().enumerate() {
            if k % step == 0 || k + 1 == v.len() {
                pts.push((*x, k as f64 / n));
                pts.push((*x, (k + 1) as f64 / n));
            }
        }
        let color = Palette99::pick(i).to_rgba();
        chart
            .draw_series(LineSeries::new(pts, color.stroke_width(2)))
            .map_err(|x| e(s(&x)))?
            .label(name.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::LowerRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(s(&x)))?;
    root.present().map_err(|x| e(s(&x)))?;
    Ok(())
}

/// Grouped bars: one group per label, one bar per series.
fn bars(
    path: &Path,
    title: &str,
    ylabel: &str,
    labels: &[String],
    series: &[(String, Vec<f64>)],
) -> Result<(), CompareError> {
    let e = perr(path);
    let s = |x: &dyn std::fmt::Display| x.to_string();
    let ymax = series.iter().flat_map(|(_, v)| v.iter().copied()).fold(1.0f64, f64::max) * 1.15;
    let n = labels.len().max(1) as f64;
    let width = (110.0 + 45.0 * n).clamp(700.0, 2400.0) as u32;
    let root = SVGBackend::new(path, (width, 520)).into_drawing_area();
    root.fill(&WHITE).map_err(|x| e(s(&x)))?;
    let fmt = |x: &f64| {
        let i = x.floor();
        if (x - i - 0.5).abs() < 1e-6 && i >= 0.0 {
            labels.get(i as usize).cloned().unwrap_or_default()
        } else {
            String::new()
        }
    };
    let mut chart = ChartBuilder::on(&root)
        .caption(title, ("sans-serif", 20))
        .margin(15)
        .x_label_area_size(70)
        .y_label_area_size(55)
        .build_cartesian_2d(0f64..n, 0f64..ymax)
        .map_err(|x| e(s(&x)))?;
    let centres: Vec<f64> = (0..labels.len()).map(|i| i as f64 + 0.5).collect();
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(labels.len().max(1) * 2 + 1)
        .x_label_formatter(&fmt)
        .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
        .y_desc(ylabel)
        .draw()
        .map_err(|x| e(s(&x)))?;
    let _ = centres;
    let k = series.len().max(1) as f64;
    let bw = 0.8 / k;
    for (j, (name, v)) in series.iter().enumerate() {
        let color = Palette99::pick(j).to_rgba();
        chart
            .draw_series(v.iter().enumerate().map(|(i, &y)| {
                let x0 = i as f64 + 0.1 + j as f64 * bw;
                Rectangle::new([(x0, 0.0), (x0 + bw * 0.9, y)], color.filled())
            }))
            .map_err(|x| e(s(&x)))?
            .label(name.clone())
            .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled()));
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperRight)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .draw()
        .map_err(|x| e(s(&x)))?;
    root.present().map_err(|x| e(s(&x)))?;
    Ok(())
}

/// Writes every plot into `dir`; returns the file names.
pub fn all(r: &CompareReport, plan: &Plan, dir: &Path) -> Result<Vec<String>, CompareError> {
    let ok: Vec<&super::ModeReport> = r.modes.iter().filter(|m| m.ok()).collect();
    let mut files = Vec::new();
    let stretch: Vec<(String, Vec<f64>)> = ok
        .iter()
        .map(|m| {
            (
                m.mode.to_string(),
                m.receivers.iter().filter_map(|x| x.e2e_stretch).collect::<Vec<_>>(),
            )
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let title = format!("{}: stretch per receiver (CDF)", r.topology);
    cdf(
        &dir.join("stretch_cdf.svg"),
        &title,
        "end-to-end stretch (path cost of the copies / unicast cost)",
        &stretch,
    )?;
    files.push("stretch_cdf.svg".to_owned());
    let lat: Vec<(String, Vec<f64>)> = ok
        .iter()
        .map(|m| (m.mode.to_string(), m.latencies_us.clone()))
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let title = format!("{}: one-way latency at the receivers (CDF)", r.topology);
    cdf(&dir.join("latency_cdf.svg"), &title, "latency (us)", &lat)?;
    files.push("latency_cdf.svg".to_owned());
    let links: Vec<String> = plan.topo.links.iter().map(|l| format!("{}-{}", l.a, l.b)).collect();
    let stress: Vec<(String, Vec<f64>)> = ok
        .iter()
        .map(|m| {
            let mut v = vec![0.0; links.len()];
            for l in &m.links {
                v[l.link] = f64::from(l.stress);
            }
            (m.mode.to_string(), v)
        })
        .collect();
    let title = format!("{}: link stress (data copies per packet, both directions)", r.topology);
    bars(&dir.join("link_stress.svg"), &title, "copies per packet", &links, &stress)?;
    files.push("link_stress.svg".to_owned());
    let routers: Vec<String> = plan
        .topo
        .nodes
        .iter()
        .filter(|n| n.kind == NodeKind::Router)
        .map(|n| n.name.clone())
        .collect();
    let state: Vec<(String, Vec<f64>)> = ok
        .iter()
        .map(|m| {
            let v = routers
                .iter()
                .map(|rn| m.state.iter().find(|s| &s.node == rn).map_or(0.0, |s| s.entries as f64))
                .collect();
            (m.mode.to_string(), v)
        })
        .collect();
    let title = format!("{}: multicast state per router (entries for the group)", r.topology);
    bars(&dir.join("state_per_router.svg"), &title, "entries", &routers, &state)?;
    files.push("state_per_router.svg".to_owned());
    Ok(files)
}
