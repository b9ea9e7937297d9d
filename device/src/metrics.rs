//! Built-in metrics, computed where the model runs: against labels (top-1, top-5) or against the FP32
//! model's outputs of the same inputs (SQNR, cosine similarity, MSE, PSNR). Each is a name, a unit and a
//! direction. Outputs are scored as the whole subset's, one array per model output with every sample.

use serde::{Deserialize, Serialize};

use crate::backend::Array;

/// A built-in metric.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum MetricKind {
    /// Share of samples whose label scores highest.
    Top1,
    /// Share of samples whose label is among the five highest scores.
    Top5,
    /// 10·log10(Σ s² / Σ (s − q)²) over the elements, s the FP32 output, q the config's.
    Sqnr,
    /// Mean over samples of the cosine similarity of the FP32 and the config's output.
    Cosine,
    /// Mean squared difference from the FP32 output.
    Mse,
    /// 10·log10(peak² / MSE), the peak being the FP32 output's range.
    Psnr,
}

/// Where SQNR and PSNR stop: an output equal to FP32's scores this many dB, not infinity.
pub const MAX_DB: f64 = 200.0;

impl MetricKind {
    pub const ALL: [MetricKind; 6] = [
        MetricKind::Top1,
        MetricKind::Top5,
        MetricKind::Sqnr,
        MetricKind::Cosine,
        MetricKind::Mse,
        MetricKind::Psnr,
    ];

    pub fn name(self) -> &'static str {
        match self {
            MetricKind::Top1 => "top1",
            MetricKind::Top5 => "top5",
            MetricKind::Sqnr => "sqnr",
            MetricKind::Cosine => "cosine",
            MetricKind::Mse => "mse",
            MetricKind::Psnr => "psnr",
        }
    }

    /// What a drop is counted in: "drop 0.5 dB of SQNR", "drop 0.01 of top-1".
    pub fn unit(self) -> &'static str {
        match self {
            MetricKind::Top1 => "of top-1",
            MetricKind::Top5 => "of top-5",
            MetricKind::Sqnr => "dB of SQNR",
            MetricKind::Cosine => "of cosine similarity",
            MetricKind::Mse => "of MSE",
            MetricKind::Psnr => "dB of PSNR",
        }
    }

    /// How an axis or a column names its values.
    pub fn label(self) -> &'static str {
        match self {
            MetricKind::Top1 => "top-1 accuracy",
            MetricKind::Top5 => "top-5 accuracy",
            MetricKind::Sqnr => "SQNR against FP32 (dB)",
            MetricKind::Cosine => "cosine similarity to FP32",
            MetricKind::Mse => "MSE against FP32",
            MetricKind::Psnr => "PSNR against FP32 (dB)",
        }
    }

    pub fn higher_is_better(self) -> bool {
        self != MetricKind::Mse
    }

    /// Scored against labels; the others against the FP32 outputs and need none.
    pub fn needs_labels(self) -> bool {
        matches!(self, MetricKind::Top1 | MetricKind::Top5)
    }

    pub fn from_name(s: &str) -> Option<MetricKind> {
        let s = s.to_ascii_lowercase();
        match s.as_str() {
            "accuracy" | "top-1" => Some(MetricKind::Top1),
            "top-5" => Some(MetricKind::Top5),
            _ => MetricKind::ALL.into_iter().find(|m| m.name() == s),
        }
    }

    /// The names of the metrics that need no labels, for messages.
    pub fn label_free() -> String {
        MetricKind::ALL
            .iter()
            .filter(|m| !m.needs_labels())
            .map(|m| m.name())
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// What a built-in metric reads: all the model outputs, or one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct MetricSpec {
    pub kind: MetricKind,
    /// The model output scored (index into the graph's outputs); None: every output (top-1 and top-5: the
    /// first), each scored alone and the values averaged.
    pub output: Option<usize>,
}

/// Scores `outs` (one array per model output, every sample) by `spec`: against `labels`, or against `fp32`
/// (the FP32 model's outputs of the same inputs).
pub fn score(
    spec: MetricSpec,
    outs: &[Array],
    fp32: Option<&[Array]>,
    labels: Option<&[i64]>,
) -> Result<f64, String> {
    if outs.is_empty() {
        return Err("the model produced no outputs to score".into());
    }
    let pick = |o: usize| -> Result<&Array, String> {
        outs.get(o)
            .ok_or_else(|| format!("the model has {} outputs, no output {o}", outs.len()))
    };
    if spec.kind.needs_labels() {
        let labels = labels.ok_or_else(|| {
            format!(
                "{} needs labels and the data has none; without labels use {} or --metric-cmd",
                spec.kind.name(),
                MetricKind::label_free()
            )
        })?;
        let out = pick(spec.output.unwrap_or(0))?;
        let k = if spec.kind == MetricKind::Top1 { 1 } else { 5 };
        return top_k(out, labels, k);
    }
    let fp32 = fp32.ok_or("no FP32 outputs to compare with")?;
    let which: Vec<usize> = match spec.output {
        Some(o) => vec![o],
        None => (0..outs.len()).collect(),
    };
    let mut sum = 0.0;
    for &o in &which {
        let (q, s) = (pick(o)?, &fp32[o]);
        if q.shape != s.shape {
            return Err(format!(
                "output {o} has shape {:?}, its FP32 output {:?}",
                q.shape, s.shape
            ));
        }
        sum += against_fp32(spec.kind, &s.data, &q.data, s.sample_len().max(1));
    }
    Ok(sum / which.len().max(1) as f64)
}

/// Share of the rows of `out` (samples × classes) whose label is among the `k` highest scores (a tie goes to
/// the lower index).
fn top_k(out: &Array, labels: &[i64], k: usize) -> Result<f64, String> {
    let classes = out.sample_len().max(1);
    let rows = out.data.len() / classes;
    if labels.len() != rows {
        return Err(format!("{rows} outputs but {} labels", labels.len()));
    }
    let mut hits = 0;
    for (i, (row, &l)) in out.data.chunks(classes).zip(labels).enumerate() {
        let Some(&target) = usize::try_from(l).ok().and_then(|l| row.get(l)) else {
            return Err(format!(
                "label {l} of sample {i} is outside the model's {classes} classes"
            ));
        };
        let better = row
            .iter()
            .enumerate()
            .filter(|&(j, &v)| v > target || (v == target && (j as i64) < l))
            .count();
        hits += (better < k) as usize;
    }
    Ok(hits as f64 / rows.max(1) as f64)
}

/// An FP32-relative metric of one output: `s` FP32, `q` the config's, `per` elements per sample.
fn against_fp32(kind: MetricKind, s: &[f32], q: &[f32], per: usize) -> f64 {
    let n = s.len().max(1) as f64;
    let noise: f64 = s
        .iter()
        .zip(q)
        .map(|(&a, &b)| ((a - b) as f64).powi(2))
        .sum();
    let db = |ratio: f64| {
        if ratio.is_nan() {
            MAX_DB
        } else {
            (10.0 * ratio.log10()).clamp(-MAX_DB, MAX_DB)
        }
    };
    match kind {
        MetricKind::Sqnr => db(s.iter().map(|&v| (v as f64).powi(2)).sum::<f64>() / noise),
        MetricKind::Mse => noise / n,
        MetricKind::Psnr => {
            let (lo, hi) = s
                .iter()
                .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
                    (lo.min(v), hi.max(v))
                });
            db(((hi - lo) as f64).powi(2) / (noise / n))
        }
        MetricKind::Cosine => {
            let rows = s.len() / per;
            let sum: f64 = s
                .chunks(per)
                .zip(q.chunks(per))
                .map(|(a, b)| cosine(a, b))
                .sum();
            sum / rows.max(1) as f64
        }
        MetricKind::Top1 | MetricKind::Top5 => unreachable!("scored against labels"),
    }
}

/// Cosine similarity of two vectors; 1 when both are zero, 0 when one is.
fn cosine(a: &[f32], b: &[f32]) -> f64 {
    let (mut ab, mut aa, mut bb) = (0f64, 0f64, 0f64);
    for (&x, &y) in a.iter().zip(b) {
        let (x, y) = (x as f64, y as f64);
        ab += x * y;
        aa += x * x;
        bb += y * y;
    }
    match (aa > 0.0, bb > 0.0) {
        (false, false) => 1.0,
        (true, true) => ab / (aa.sqrt() * bb.sqrt()),
        _ => 0.0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(kind: MetricKind) -> MetricSpec {
        MetricSpec { kind, output: None }
    }

    #[test]
    fn top1_and_top5_count_ties_in_favour_of_the_lower_index() {
        let out = Array::new(
            vec![2, 6],
            vec![0.1, 0.9, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.5, 0.4, 0.3, 0.2],
        );
        let top = |kind, labels: &[i64]| {
            score(spec(kind), std::slice::from_ref(&out), None, Some(labels))
        };
        // sample 1: label 1 ties with class 0, which wins the tie
        assert_eq!(top(MetricKind::Top1, &[1, 1]), Ok(0.5));
        assert_eq!(top(MetricKind::Top5, &[1, 1]), Ok(1.0));
        // label 5 of sample 1 has five better scores
        assert_eq!(top(MetricKind::Top5, &[1, 5]), Ok(0.5));
        let e = top(MetricKind::Top1, &[1, 6]).unwrap_err();
        assert!(e.contains("label 6 of sample 1"), "{e}");
        let e = score(spec(MetricKind::Top1), &[out], None, None).unwrap_err();
        assert!(
            e.contains("needs labels") && e.contains("sqnr, cosine"),
            "{e}"
        );
    }

    #[test]
    fn fp32_relative_metrics_follow_their_definitions() {
        let s = Array::new(vec![2, 2], vec![3.0, 4.0, 0.0, 2.0]);
        let q = Array::new(vec![2, 2], vec![3.0, 3.0, 0.0, 2.0]);
        let against = |kind, out: &Array| {
            let fp32 = std::slice::from_ref(&s);
            score(spec(kind), std::slice::from_ref(out), Some(fp32), None).unwrap()
        };
        let m = |kind| against(kind, &q);
        // signal 9 + 16 + 4 = 29, noise 1
        assert!((m(MetricKind::Sqnr) - 10.0 * 29f64.log10()).abs() < 1e-12);
        assert_eq!(m(MetricKind::Mse), 0.25);
        // range 4 − 0: 16 / 0.25
        assert!((m(MetricKind::Psnr) - 10.0 * 64f64.log10()).abs() < 1e-12);
        // sample 0: (9 + 12) / (5 · √18); sample 1: identical
        let c0 = 21.0 / (5.0 * 18f64.sqrt());
        assert!((m(MetricKind::Cosine) - (c0 + 1.0) / 2.0).abs() < 1e-12);
        // the FP32 output against itself: the metric's best, finite
        let same = |kind| against(kind, &s);
        assert_eq!(same(MetricKind::Sqnr), MAX_DB);
        assert_eq!(same(MetricKind::Psnr), MAX_DB);
        assert_eq!(same(MetricKind::Cosine), 1.0);
        assert_eq!(same(MetricKind::Mse), 0.0);
    }

    #[test]
    fn several_outputs_average_unless_one_is_named() {
        let s = [
            Array::new(vec![1, 2], vec![1.0, 1.0]),
            Array::new(vec![1, 2], vec![1.0, 0.0]),
        ];
        let q = [
            Array::new(vec![1, 2], vec![1.0, 1.0]),
            Array::new(vec![1, 2], vec![0.0, 1.0]),
        ];
        let mse = |output| {
            let spec = MetricSpec {
                kind: MetricKind::Mse,
                output,
            };
            score(spec, &q, Some(&s), None)
        };
        assert_eq!(mse(None), Ok(0.5));
        assert_eq!(mse(Some(0)), Ok(0.0));
        assert_eq!(mse(Some(1)), Ok(1.0));
        assert!(mse(Some(2)).unwrap_err().contains("no output 2"));
    }

    #[test]
    fn names_parse_and_directions_are_known() {
        for m in MetricKind::ALL {
            assert_eq!(MetricKind::from_name(m.name()), Some(m));
        }
        assert_eq!(MetricKind::from_name("accuracy"), Some(MetricKind::Top1));
        assert_eq!(MetricKind::from_name("map"), None);
        assert!(!MetricKind::Mse.higher_is_better() && MetricKind::Sqnr.higher_is_better());
        assert_eq!(MetricKind::label_free(), "sqnr, cosine, mse, psnr");
    }
}
