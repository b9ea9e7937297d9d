//! What a tune answers: phase-1 sensitivities, the evaluated points of the curve, the chosen point, costs,
//! phase 3's table and how much each phase did.

use amp_device::quant::{BiasRaise, Precision};
use serde::Serialize;

use crate::amp::cost::{CostKind, LatencyFit, PricingReport};
use crate::amp::evaluator::Provenance;
use crate::amp::metric::{Metric, MetricInfo};

/// One phase-1 measurement.
#[derive(Clone, Debug, Serialize)]
pub struct Sensitivity {
    pub group: usize,
    pub candidate: Precision,
    pub score: f64,
    pub bitops_reduction: f64,
}

/// One evaluated point of the curve.
#[derive(Clone, Debug, Serialize)]
pub struct Point {
    /// Index in the sorted list (the prefix 0..=index is applied); None for the all-baseline point.
    pub index: Option<usize>,
    pub relative_bitops: f64,
    pub score: f64,
    pub group: Option<usize>,
    pub candidate: Option<Precision>,
    pub config: Vec<Precision>,
    /// Set when a cost model was built.
    pub cost: Option<PointCost>,
}

/// A point's cost beyond bit-ops.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct PointCost {
    /// (bit-ops + Convert overhead in bit-op equivalents) / the baseline's bit-ops.
    pub relative_cost: f64,
    pub convert_us: f64,
    pub converts: usize,
    /// Whole-graph latency measured on the device (median µs), where measured.
    pub latency_us: Option<f64>,
}

impl PointCost {
    /// "relative cost C, N Converts (U µs)[, latency L µs]".
    pub fn summary(&self) -> String {
        format!(
            "relative cost {:.4}, {} Converts ({:.0} µs){}",
            self.relative_cost,
            self.converts,
            self.convert_us,
            self.latency_us
                .map(|l| format!(", latency {l:.0} µs"))
                .unwrap_or_default()
        )
    }
}

/// The cost model a run used.
#[derive(Clone, Debug, Serialize)]
pub struct CostReport {
    pub kind: CostKind,
    /// "measured" or "estimated, not measured".
    pub convert_prices: String,
    pub method: String,
    pub provenance: Provenance,
    pub fit: LatencyFit,
    pub pricing: PricingReport,
    pub sites: usize,
}

/// One row of phase 3's α table.
#[derive(Clone, Debug, Serialize)]
pub struct AlphaPoint {
    pub alpha: f64,
    pub config: Vec<Precision>,
    pub relative_bitops: f64,
    pub relative_cost: f64,
    pub convert_us: f64,
    pub converts: usize,
    pub groups_raised: usize,
    pub score: Option<f64>,
    pub latency_us: Option<f64>,
    pub meets_target: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct Phase3 {
    pub phase2_convert_us: f64,
    pub target: f64,
    pub points: Vec<AlphaPoint>,
    /// The point that meets the target at the lowest measured latency.
    pub marked: Option<usize>,
    pub note: Option<String>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct PhaseStats {
    pub evaluations: usize,
    /// Answers read from an earlier run's journal records (this run's own reused answers count in
    /// neither).
    pub cached: usize,
    pub seconds: f64,
}

#[derive(Clone, Debug, Serialize)]
pub struct TuneResult {
    /// What every score (but phase 1's, see `phase1_metric`) is.
    pub metric: MetricInfo,
    pub phase1_metric: MetricInfo,
    /// FP32's score.
    pub fp32: f64,
    /// The score a drop counts from: FP32's, or for a metric against the FP32 outputs (which FP32 meets
    /// perfectly) the best uniform candidate's.
    pub reference: f64,
    /// "FP32", or the best uniform candidate.
    pub reference_of: String,
    /// The reference less the allowed drop (None: the whole curve was asked).
    pub target: Option<f64>,
    pub uniform: Vec<(Precision, f64)>,
    pub baseline: Precision,
    pub min_candidate: Precision,
    pub early_exit: Option<String>,
    pub sensitivity: Vec<Sensitivity>,
    pub pareto: Vec<Point>,
    pub chosen: Point,
    pub phases: [PhaseStats; 4],
    /// Latency measurements (uniform candidates, pareto points, phase 3).
    pub timing: PhaseStats,
    pub cost: Option<CostReport>,
    pub phase3: Option<Phase3>,
    pub torn_journal_lines: usize,
    /// Journal records skipped on open: "line N: why".
    pub skipped_journal_lines: Vec<String>,
    /// Phase-1 (group, candidate) pairs the backend could not run (dropped from the search).
    pub unsupported: usize,
    /// Evaluations that failed for a reason of the config's own (journalled with their message and dropped
    /// from the search, as unsupported ones are): "phase P, CONFIG: message".
    pub failures: Vec<String>,
    /// The chosen point measured again on the backend it will run on (HTP after a reference search).
    pub verification: Option<super::Verification>,
    /// Why it was not verified.
    pub verify_note: Option<String>,
    /// Weight channels whose scale was raised so that the int32 bias fits, per config described
    /// ("chosen", the widest uniform candidate).
    pub bias_raise: Vec<(String, BiasRaise)>,
}

impl TuneResult {
    /// The result with every score as the metric gives it, from the search's scores (oriented so that
    /// higher is better): negated back where lower is better.
    pub(crate) fn shown(mut self, metric: &Metric, phase1: &Metric) -> TuneResult {
        let o = |v: f64| metric.orient(v);
        self.fp32 = o(self.fp32);
        self.reference = o(self.reference);
        self.target = self.target.map(o);
        for u in &mut self.uniform {
            u.1 = o(u.1);
        }
        for e in &mut self.sensitivity {
            e.score = phase1.orient(e.score);
        }
        for p in self.pareto.iter_mut().chain([&mut self.chosen]) {
            p.score = o(p.score);
        }
        if let Some(p3) = &mut self.phase3 {
            p3.target = o(p3.target);
            for a in &mut p3.points {
                a.score = a.score.map(o);
            }
        }
        self
    }

    /// Whether `v` (a score as shown) meets the target.
    pub fn meets_target(&self, v: f64) -> bool {
        self.target.is_none_or(|t| self.metric.meets(v, t))
    }
}
