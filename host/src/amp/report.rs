//! The results directory: pareto.json/.csv, sensitivity.json, config.json, pareto.svg, a self-contained
//! pareto.html and report.md.

use std::fmt::Write as _;
use std::path::Path;

use amp_device::ir::Graph;
use anyhow::{Context, Result};
use serde_json::json;

use super::groups::Groups;
use super::tune::{AlphaPoint, Point, TuneResult};

/// Writes `text` to `dir/name` atomically (temp file + rename), so a kill never leaves half a file.
pub fn write(dir: &Path, name: &str, text: &str) -> Result<()> {
    let path = dir.join(name);
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text).with_context(|| format!("writing {}", tmp.display()))?;
    std::fs::rename(&tmp, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

fn point_json(g: &Graph, groups: &Groups, p: &Point) -> serde_json::Value {
    let at16: Vec<String> = p
        .config
        .iter()
        .enumerate()
        .filter(|(_, c)| c.act == 16 || c.weight == 16)
        .map(|(gi, _)| groups.describe(g, gi))
        .collect();
    json!({
        "index": p.index,
        "relative_bitops": p.relative_bitops,
        "score": p.score,
        "group": p.group.map(|gi| groups.describe(g, gi)),
        "candidate": p.candidate.map(|c| c.to_string()),
        "config": p.config.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
        "groups_with_16_bits": at16,
        "relative_cost": p.cost.as_ref().map(|c| c.relative_cost),
        "convert_us": p.cost.as_ref().map(|c| c.convert_us),
        "converts": p.cost.as_ref().map(|c| c.converts),
        "latency_us": p.cost.as_ref().and_then(|c| c.latency_us),
    })
}

/// The x axis of a pareto view.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum View {
    Bitops,
    Cost,
    Latency,
}

impl View {
    fn x(self, p: &Point) -> Option<f64> {
        match self {
            View::Bitops => Some(p.relative_bitops),
            View::Cost => p.cost.as_ref().map(|c| c.relative_cost),
            View::Latency => p.cost.as_ref().and_then(|c| c.latency_us),
        }
    }

    fn title(self) -> &'static str {
        match self {
            View::Bitops => "against relative bit-ops",
            View::Cost => "against relative cost (bit-ops + Convert overhead)",
            View::Latency => "against measured latency",
        }
    }

    fn axis(self) -> &'static str {
        match self {
            View::Bitops => "bit-ops relative to the baseline",
            View::Cost => "bit-ops + Convert overhead, relative to the baseline's bit-ops",
            View::Latency => "median latency on the device, µs",
        }
    }
}

/// The evaluated points sorted by cost, each config once.
pub fn curve(r: &TuneResult) -> Vec<Point> {
    let mut pts: Vec<Point> = Vec::new();
    for p in &r.pareto {
        if !pts.iter().any(|q| q.config == p.config) {
            pts.push(p.clone());
        }
    }
    pts.sort_by(|a, b| {
        b.relative_bitops
            .total_cmp(&a.relative_bitops)
            .then(a.index.cmp(&b.index))
    });
    pts
}

/// Phase 3's marked config when it dominates the phase-2 choice: no more bit-ops, no lower score, fewer
/// Converts.
fn dominating_phase3(r: &TuneResult) -> Option<&AlphaPoint> {
    let p3 = r.phase3.as_ref()?;
    let m = p3.points.get(p3.marked?)?;
    let converts = r.chosen.cost.as_ref()?.converts;
    // scores compared as "higher is better"
    let sign = if r.metric.higher_is_better { 1.0 } else { -1.0 };
    dominates(
        (r.chosen.relative_bitops, sign * r.chosen.score, converts),
        (m.relative_bitops, sign * m.score?, m.converts),
    )
    .then_some(m)
}

/// Whether `b` (relative bit-ops, score where higher is better, Converts) dominates `a`: no more bit-ops,
/// no lower score, fewer Converts.
fn dominates(a: (f64, f64, usize), b: (f64, f64, usize)) -> bool {
    b.0 <= a.0 + 1e-12 && b.1 >= a.1 && b.2 < a.2
}

/// The curve as CSV: a point per row, with its cost (relative cost, Convert overhead, latency) where known.
fn pareto_csv(g: &Graph, groups: &Groups, r: &TuneResult, pts: &[Point]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "index",
        "relative_bitops",
        r.metric.label.as_str(),
        "group",
        "candidate",
        "relative_cost",
        "convert_us",
        "latency_us",
    ])?;
    let opt = |v: Option<f64>| v.map(|v| format!("{v:.6}")).unwrap_or_default();
    for p in pts {
        w.write_record([
            p.index.map(|i| i.to_string()).unwrap_or_default(),
            format!("{:.6}", p.relative_bitops),
            format!("{:.6}", p.score),
            p.group.map(|gi| groups.describe(g, gi)).unwrap_or_default(),
            p.candidate.map(|c| c.to_string()).unwrap_or_default(),
            opt(p.cost.as_ref().map(|c| c.relative_cost)),
            opt(p.cost.as_ref().map(|c| c.convert_us)),
            opt(p.cost.as_ref().and_then(|c| c.latency_us)),
        ])?;
    }
    Ok(String::from_utf8(
        w.into_inner().map_err(|e| anyhow::anyhow!("{e}"))?,
    )?)
}

pub fn write_all(dir: &Path, g: &Graph, groups: &Groups, r: &TuneResult, wall: f64) -> Result<()> {
    let pts = curve(r);
    write(
        dir,
        "pareto.json",
        &serde_json::to_string_pretty(&json!({
            "metric": r.metric, "fp32": r.fp32, "baseline": r.baseline.to_string(),
            "reference": r.reference, "reference_of": r.reference_of, "target": r.target,
            "cost_model": r.cost,
            "points": pts.iter().map(|p| point_json(g, groups, p)).collect::<Vec<_>>(),
        }))?,
    )?;
    write(dir, "pareto.csv", &pareto_csv(g, groups, r, &pts)?)?;
    write(dir, "sensitivity.json", &serde_json::to_string_pretty(&r.sensitivity.iter().map(|s| json!({
        "group": groups.describe(g, s.group), "group_index": s.group, "candidate": s.candidate.to_string(),
        "score": s.score, "bitops_reduction": s.bitops_reduction,
    })).collect::<Vec<_>>())?)?;
    let mut config = point_json(g, groups, &r.chosen);
    config["verified"] = match &r.verification {
        Some(v) => json!({
            "on": v.on, "score": v.score, "target": v.target, "meets_target": v.meets_target,
            "instead": v.instead.as_ref().map(|(p, acc)| json!({"score_there": acc, "point": point_json(g, groups, p)})),
        }),
        None => json!({ "not_verified": r.verify_note }),
    };
    if let Some((_, b)) = r.bias_raise.first() {
        config["bias_raised_channels"] =
            json!({"channels": b.channels, "of": b.of, "max_factor": b.max_factor});
    }
    if let Some(m) = dominating_phase3(r) {
        config["phase3_dominates"] = json!({
            "alpha": m.alpha, "relative_bitops": m.relative_bitops, "score": m.score,
            "converts": m.converts, "convert_us": m.convert_us,
            "config": m.config.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
            "note": "phase 3's marked config has no more bit-ops, no lower score and fewer Converts than this one; `amp-host export --phase3` exports it",
        });
    }
    write(dir, "config.json", &serde_json::to_string_pretty(&config)?)?;
    let svg = svg(&pts, &r.chosen, &Axis::of(r));
    write(dir, "pareto.svg", &svg)?;
    let mut views = vec![svg];
    for (view, name) in [
        (View::Cost, "pareto_cost.svg"),
        (View::Latency, "pareto_latency.svg"),
    ] {
        if pts.iter().filter(|p| view.x(p).is_some()).count() >= 1 {
            let mut v = svg_view(view, &pts, &r.chosen, &Axis::of(r));
            if view == View::Cost
                && r.cost
                    .as_ref()
                    .is_some_and(|c| c.convert_prices != "measured")
            {
                v = v.replace(
                    "Convert overhead)</text>",
                    "Convert overhead, estimated, not measured)</text>",
                );
            }
            write(dir, name, &v)?;
            views.push(v);
        } else {
            // a view this run has no data for: an earlier run's would be stale
            remove_stale(dir, name)?;
        }
    }
    write(
        dir,
        "pareto.html",
        &html(g, groups, &pts, r, &views.join("\n")),
    )?;
    if let Some(p3) = &r.phase3 {
        write(
            dir,
            "phase3.json",
            &serde_json::to_string_pretty(&json!({
                "phase2_convert_us": p3.phase2_convert_us,
                "target": p3.target,
                "marked": p3.marked,
                "note": p3.note,
                "points": p3.points.iter().map(|a| json!({
                    "alpha": a.alpha,
                    "score": a.score,
                    "latency_us": a.latency_us,
                    "relative_bitops": a.relative_bitops,
                    "relative_cost": a.relative_cost,
                    "convert_us": a.convert_us,
                    "converts": a.converts,
                    "groups_raised": a.groups_raised,
                    "meets_target": a.meets_target,
                    "config": a.config.iter().map(|c| c.to_string()).collect::<Vec<_>>(),
                })).collect::<Vec<_>>(),
            }))?,
        )?;
    }
    if r.phase3.is_none() {
        remove_stale(dir, "phase3.json")?;
    }
    write(dir, "report.md", &report_md(g, groups, r, wall))?;
    Ok(())
}

/// Removes `dir/name` left by an earlier run that wrote what this run does not (so `export --phase3` never
/// exports another run's file).
fn remove_stale(dir: &Path, name: &str) -> Result<()> {
    match std::fs::remove_file(dir.join(name)) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(e).with_context(|| format!("removing stale {}", dir.join(name).display()))
        }
        _ => Ok(()),
    }
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The y axis of the plots: the metric, the score a drop counts from, the target.
pub struct Axis {
    /// "top-1 accuracy", with "(lower is better)" where it is.
    pub label: String,
    /// Where the drop counts from: ("FP32", its score) or the best uniform candidate's.
    pub reference: (String, f64),
    pub target: Option<f64>,
}

impl Axis {
    pub fn of(r: &TuneResult) -> Axis {
        let reference = if r.reference_of == "FP32" {
            "FP32".to_string()
        } else {
            r.baseline.to_string()
        };
        Axis {
            label: if r.metric.higher_is_better {
                r.metric.label.clone()
            } else {
                format!("{} (lower is better)", r.metric.label)
            },
            reference: (reference, r.reference),
            target: r.target,
        }
    }
}

/// The metric against relative bit-ops, the chosen point ringed, the target as a dashed line.
pub fn svg(pts: &[Point], chosen: &Point, axis: &Axis) -> String {
    svg_view(View::Bitops, pts, chosen, axis)
}

/// The metric against a view's x (points without one are left out).
pub fn svg_view(view: View, pts: &[Point], chosen: &Point, axis: &Axis) -> String {
    let (target, (ref_name, reference)) = (axis.target, (&axis.reference.0, axis.reference.1));
    let mut pts: Vec<&Point> = pts.iter().filter(|p| view.x(p).is_some()).collect();
    pts.sort_by(|a, b| {
        view.x(b)
            .unwrap_or(0.0)
            .total_cmp(&view.x(a).unwrap_or(0.0))
    });
    let xv = |p: &Point| view.x(p).unwrap_or(0.0);
    let xmax = match view {
        View::Latency => pts.iter().map(|p| xv(p)).fold(0.0, f64::max) * 1.05,
        _ => pts.iter().map(|p| xv(p)).fold(1.0, f64::max) * 1.05,
    }
    .max(1e-9);
    let (w, h, l, rpad, t, b) = (640.0, 420.0, 70.0, 20.0, 30.0, 50.0);
    let mut lo = pts.iter().map(|p| p.score).fold(reference, f64::min);
    if let Some(tg) = target {
        lo = lo.min(tg);
    }
    let hi = pts.iter().map(|p| p.score).fold(reference, f64::max);
    let pad = ((hi - lo) * 0.08).max(1e-3);
    let (ylo, yhi) = (lo - pad, hi + pad);
    let x = |v: f64| l + v.clamp(0.0, xmax) / xmax * (w - l - rpad);
    let y = |v: f64| t + (yhi - v) / (yhi - ylo) * (h - t - b);
    let mut s = format!("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" viewBox=\"0 0 {w} {h}\" font-family=\"sans-serif\" font-size=\"12\">\n");
    let _ = writeln!(s, "<rect width=\"{w}\" height=\"{h}\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"18\" text-anchor=\"middle\" font-size=\"14\">{}</text>",
        w / 2.0,
        esc(&format!("{} {}", axis.label, view.title()))
    );
    for i in 0..=5 {
        let v = xmax / 1.05 * i as f64 * 0.2;
        let lbl = if view == View::Latency {
            format!("{v:.0}")
        } else {
            format!("{v:.2}")
        };
        let _ = writeln!(s, "<line x1=\"{0:.1}\" y1=\"{1}\" x2=\"{0:.1}\" y2=\"{2}\" stroke=\"#eee\"/><text x=\"{0:.1}\" y=\"{3}\" text-anchor=\"middle\">{lbl}</text>", x(v), t, h - b, h - b + 16.0);
        let av = ylo + (yhi - ylo) * i as f64 / 5.0;
        let _ = writeln!(s, "<line x1=\"{l}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#eee\"/><text x=\"{2}\" y=\"{3:.1}\" text-anchor=\"end\">{av:.4}</text>", y(av), w - rpad, l - 6.0, y(av) + 4.0);
    }
    let _ = writeln!(
        s,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
        (w + l) / 2.0,
        h - 12.0,
        view.axis()
    );
    let _ = writeln!(
        s,
        "<text x=\"16\" y=\"{}\" transform=\"rotate(-90 16 {})\" text-anchor=\"middle\">{}</text>",
        h / 2.0,
        h / 2.0,
        esc(&axis.label)
    );
    let _ = writeln!(s, "<line x1=\"{l}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#2a2\"/><text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\" fill=\"#2a2\">{3} {reference:.4}</text>", y(reference), w - rpad, y(reference) - 4.0, esc(ref_name));
    if let Some(tg) = target {
        let _ = writeln!(s, "<line x1=\"{l}\" y1=\"{0:.1}\" x2=\"{1}\" y2=\"{0:.1}\" stroke=\"#c33\" stroke-dasharray=\"5,4\"/><text x=\"{1}\" y=\"{2:.1}\" text-anchor=\"end\" fill=\"#c33\">target {tg:.4}</text>", y(tg), w - rpad, y(tg) + 14.0);
    }
    let path: Vec<String> = pts
        .iter()
        .map(|p| format!("{:.1},{:.1}", x(xv(p)), y(p.score)))
        .collect();
    let _ = writeln!(
        s,
        "<polyline points=\"{}\" fill=\"none\" stroke=\"#2171b5\" stroke-dasharray=\"2,2\"/>",
        path.join(" ")
    );
    for p in &pts {
        let label = format!(
            "bit-ops {:.4}{}, score {:.4}{}",
            p.relative_bitops,
            p.cost
                .as_ref()
                .map(|c| format!(
                    ", cost {:.4}, {} Converts ({:.0} µs){}",
                    c.relative_cost,
                    c.converts,
                    c.convert_us,
                    c.latency_us
                        .map(|l| format!(", latency {l:.0} µs"))
                        .unwrap_or_default()
                ))
                .unwrap_or_default(),
            p.score,
            p.candidate
                .map(|c| format!(", last change: group {} → {c}", p.group.unwrap_or(0)))
                .unwrap_or_else(|| ", all baseline".into())
        );
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"4\" fill=\"#2171b5\"><title>{}</title></circle>",
            x(xv(p)),
            y(p.score),
            esc(&label)
        );
    }
    let cx = pts
        .iter()
        .find(|p| p.config == chosen.config)
        .map(|p| xv(p))
        .or_else(|| view.x(chosen));
    if let Some(cx) = cx {
        let _ = writeln!(s, "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"8\" fill=\"none\" stroke=\"#e6550d\" stroke-width=\"2\"><title>chosen</title></circle>", x(cx), y(chosen.score));
    }
    s.push_str("</svg>\n");
    s
}

fn html(g: &Graph, groups: &Groups, pts: &[Point], r: &TuneResult, svg: &str) -> String {
    let chosen = &r.chosen;
    let metric = esc(&r.metric.label);
    let mut rows = String::new();
    for p in pts {
        let mark = if p.config == chosen.config {
            " class=\"chosen\""
        } else {
            ""
        };
        let _ = writeln!(
            rows,
            "<tr{mark}><td>{}</td><td>{:.4}</td><td>{:.4}</td><td>{}</td><td>{}</td></tr>",
            p.index.map(|i| i.to_string()).unwrap_or("—".into()),
            p.relative_bitops,
            p.score,
            esc(&p
                .group
                .map(|gi| groups.describe(g, gi))
                .unwrap_or_else(|| "(all at the baseline)".into())),
            p.candidate.map(|c| c.to_string()).unwrap_or_default()
        );
    }
    format!("<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>amp pareto curve</title>\n<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse}}td,th{{border:1px solid #ccc;padding:3px 8px;text-align:left}}tr.chosen{{background:#fde0c5}}</style></head>\n<body><h1>amp: {metric} against cost</h1>\n{svg}\n<p>Hover a point for its values. The ringed point is the chosen config.</p>\n<table><tr><th>prefix</th><th>relative bit-ops</th><th>{metric}</th><th>group changed last</th><th>to</th></tr>\n{rows}</table>\n</body></html>\n")
}

fn report_md(g: &Graph, groups: &Groups, r: &TuneResult, wall: f64) -> String {
    let mut s = String::from("# amp tune report\n\n");
    let m = &r.metric;
    let _ = writeln!(s, "- metric: {}", m.describe());
    if r.phase1_metric != r.metric {
        let _ = writeln!(s, "- phase 1 ranks groups by: {}", r.phase1_metric.name);
    }
    let _ = writeln!(s, "- FP32: {:.4}", r.fp32);
    for (c, a) in &r.uniform {
        let _ = writeln!(s, "- uniform {c}: {a:.4}");
    }
    let _ = writeln!(s, "- baseline: {} (best uniform candidate)", r.baseline);
    if let Some(t) = r.target {
        let drop = (r.reference - t).abs();
        let _ = writeln!(
            s,
            "- target: {} {} {t:.4} (drop {drop:.4} {} from {}, {:.4})",
            m.name,
            if m.higher_is_better { "≥" } else { "≤" },
            m.unit,
            r.reference_of,
            r.reference
        );
    }
    if let Some(e) = &r.early_exit {
        let _ = writeln!(s, "- early exit: {e}");
    }
    let _ = writeln!(
        s,
        "- chosen: relative bit-ops {:.4}, {} {:.4} where the search measured it",
        r.chosen.relative_bitops, m.name, r.chosen.score
    );
    match (&r.verification, &r.verify_note) {
        (Some(v), _) => {
            let acc = v
                .score
                .map(|a| format!("{a:.4}"))
                .unwrap_or("nothing (it cannot run there)".into());
            let verdict = if v.meets_target {
                "meets the target".to_string()
            } else {
                format!("**misses the target {:.4}**", v.target)
            };
            let _ = writeln!(s, "- verified on {}: {} {acc}, {verdict}", v.on, m.name);
            if let Some((p, a)) = &v.instead {
                let _ = writeln!(
                    s,
                    "- the next point of the curve that meets it there: relative bit-ops {:.4}, {a:.4} there, {:.4} on the reference ({})",
                    p.relative_bitops,
                    p.score,
                    p.config.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(",")
                );
            }
        }
        (None, Some(why)) => {
            let _ = writeln!(s, "- not verified on HTP: {why}");
        }
        (None, None) => {}
    }
    for (what, b) in &r.bias_raise {
        if b.channels > 0 {
            let _ = writeln!(
                s,
                "- bias-safe weight scales, {what}: {} of {} weight channels raised (at most ×{:.3}) so that their int32 bias fits",
                b.channels, b.of, b.max_factor
            );
        }
    }
    s.push('\n');
    let _ = writeln!(s, "## Groups left at 16 bits\n");
    let mut any = false;
    for (gi, c) in r.chosen.config.iter().enumerate() {
        if c.act == 16 || c.weight == 16 {
            let _ = writeln!(s, "- {} ({c})", groups.describe(g, gi));
            any = true;
        }
    }
    if !any {
        s.push_str("- none\n");
    }
    if let Some(c) = &r.cost {
        let _ = writeln!(s, "\n## Cost model\n");
        let _ = writeln!(
            s,
            "- Convert prices: {}; {} tensors can need a Convert",
            // the method names the kind already ("estimated, not measured: …"): say it once
            if c.method.starts_with(&c.convert_prices) {
                c.method.clone()
            } else {
                format!("{} ({})", c.convert_prices, c.method)
            },
            c.sites
        );
        let _ = writeln!(
            s,
            "- provenance: device {}, SoC {}, backend {}",
            c.provenance.device, c.provenance.soc, c.provenance.backend
        );
        let _ = writeln!(
            s,
            "- prices reused from convert_costs.json: {}, priced now: {}{}",
            c.pricing.reused,
            c.pricing.measured,
            c.pricing
                .invalidated
                .as_ref()
                .map(|w| format!(" (the old table was set aside: {w})"))
                .unwrap_or_default()
        );
        let _ = writeln!(
            s,
            "- latency fit ({}): {:.1} µs + {:.3e} µs per bit-op, RMS residual {:.1} µs, over {}",
            c.fit.kind,
            c.fit.a,
            c.fit.b,
            c.fit.rms_residual_us,
            c.fit
                .points
                .iter()
                .map(|(n, b, l)| format!("{n} ({b:.3e} bit-ops, {l:.0} µs)"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        if let Some(pc) = &r.chosen.cost {
            let _ = writeln!(s, "- chosen config: {}", pc.summary());
        }
    }
    if let Some(p3) = &r.phase3 {
        let _ = writeln!(
            s,
            "\n## Phase 3: Convert reduction\n\nPhase-2 solution's Convert overhead: {:.0} µs. Target: {:.4}.\n",
            p3.phase2_convert_us, p3.target
        );
        let _ = writeln!(s, "| α | groups raised | Converts | Convert µs | relative bit-ops | {} | latency µs | meets target |\n|---|---|---|---|---|---|---|---|", m.name);
        for (i, a) in p3.points.iter().enumerate() {
            let _ = writeln!(
                s,
                "| {:.1}{} | {} | {} | {:.0} | {:.4} | {} | {} | {} |",
                a.alpha,
                if p3.marked == Some(i) { " ★" } else { "" },
                a.groups_raised,
                a.converts,
                a.convert_us,
                a.relative_bitops,
                a.score
                    .map(|v| format!("{v:.4}"))
                    .unwrap_or("unsupported".into()),
                a.latency_us
                    .map(|v| format!("{v:.0}"))
                    .unwrap_or("—".into()),
                if a.meets_target { "yes" } else { "no" }
            );
        }
        let _ = writeln!(s, "\n★ the config that meets the target at the lowest measured latency (`amp-host export --phase3`).");
        if let Some(n) = &p3.note {
            let _ = writeln!(s, "\n{n}");
        }
    }
    let _ = writeln!(
        s,
        "\n## Evaluations\n\n| phase | evaluated | from the journal | seconds |\n|---|---|---|---|"
    );
    for (i, p) in r.phases.iter().enumerate() {
        let _ = writeln!(
            s,
            "| {i} | {} | {} | {:.1} |",
            p.evaluations, p.cached, p.seconds
        );
    }
    if r.timing.evaluations + r.timing.cached > 0 {
        let _ = writeln!(
            s,
            "| latency | {} | {} | {:.1} |",
            r.timing.evaluations, r.timing.cached, r.timing.seconds
        );
    }
    let total: usize = r.phases.iter().map(|p| p.evaluations).sum();
    let _ = writeln!(
        s,
        "\n{total} evaluations performed in this run; wall time {wall:.1} s."
    );
    if r.torn_journal_lines > 0 {
        let _ = writeln!(
            s,
            "\nThe journal's last line was incomplete (an interrupted run) and was dropped."
        );
    }
    if !r.skipped_journal_lines.is_empty() {
        let _ = writeln!(
            s,
            "\nJournal records skipped (evaluated again; every other record kept): {}.",
            r.skipped_journal_lines.join("; ")
        );
    }
    s
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_point_dominates_only_with_fewer_converts_and_nothing_worse() {
        use super::dominates;
        let chosen = (0.5, 0.98, 4);
        assert!(dominates(chosen, (0.5, 0.98, 2)));
        assert!(dominates(chosen, (0.4, 0.99, 3)));
        assert!(!dominates(chosen, (0.5, 0.98, 4)), "as many Converts");
        assert!(!dominates(chosen, (0.6, 0.99, 1)), "more bit-ops");
        assert!(!dominates(chosen, (0.5, 0.97, 1)), "a lower score");
    }
}
