//! The chosen point measured again where it will run: after a search on the reference backend, on HTP. The
//! reference follows HTP's dataflow, but HTP's arithmetic is not bit-exact, so the number a user ships
//! against is HTP's. When the chosen point misses the target there, the cheapest other point of the curve
//! that meets it on both backends is offered.

use std::time::Instant;

use amp_device::quant::Precision;
use anyhow::Result;
use serde::Serialize;

use super::runner::{Runner, VERIFY};
use super::{Identity, PhaseStats, Point, TuneResult};
use crate::amp::evaluator::{Evaluator, Metric, Subset};
use crate::amp::journal::Journal;
use crate::progress;

/// Most points of the curve tried on the verifying backend when the chosen one misses.
const MAX_TRIES: usize = 6;

/// The chosen point on the verifying backend.
#[derive(Clone, Debug, Serialize)]
pub struct Verification {
    /// The verifying backend and device.
    pub on: String,
    /// The chosen point's accuracy there (None: it could not run there).
    pub score: Option<f64>,
    pub target: f64,
    pub meets_target: bool,
    /// When it misses: the cheapest point of the curve that meets the target on both backends, with its
    /// accuracy on the verifying one.
    pub instead: Option<(Point, f64)>,
    /// Points measured on the verifying backend.
    pub tried: usize,
    pub stats: PhaseStats,
}

/// Measures `result`'s chosen point on `ev` (journalled, so a rerun measures nothing again); where it misses
/// `target`, the points of the curve that meet it on the search's backend, cheapest first, until one meets
/// it on `ev` as well.
pub fn verify(
    result: &TuneResult,
    metric: &Metric,
    ev: &mut dyn Evaluator,
    journal: &mut Journal,
    id: &Identity,
) -> Result<Verification> {
    let on = ev.identity();
    let target = result
        .target
        .ok_or_else(|| anyhow::anyhow!("no target to verify"))?;
    let mut r = Runner::new(ev, None, journal, id);
    let mut measure = |cfg: &[Precision]| {
        let v = r.eval(VERIFY, Some(cfg), Subset::Phase2, metric)?;
        Ok::<_, anyhow::Error>(v.map(|v| metric.orient(v)))
    };
    let started = Instant::now();
    progress::note(&format!("verify: the chosen point on {on}"));
    let bar = progress::bar(1, "verify");
    let score = measure(&result.chosen.config)?;
    bar.inc(1);
    bar.finish_and_clear();
    let meets_target = score.is_some_and(|a| result.meets_target(a));
    progress::note(&format!(
        "verify: the chosen point {} on {on} ({:.0} s)",
        match (score, meets_target) {
            (None, _) => "does not run",
            (Some(_), true) => "meets the target",
            (Some(_), false) => "misses the target",
        },
        started.elapsed().as_secs_f64()
    ));
    let mut tried = 1;
    let mut instead = None;
    if !meets_target {
        let mut candidates: Vec<&Point> = result
            .pareto
            .iter()
            .filter(|p| result.meets_target(p.score) && p.config != result.chosen.config)
            .collect();
        candidates.sort_by(|a, b| a.relative_bitops.total_cmp(&b.relative_bitops));
        candidates.dedup_by(|a, b| a.config == b.config);
        candidates.truncate(MAX_TRIES);
        progress::note(&format!(
            "verify: trying the {} cheapest other points of the curve that meet it, until one does on {on}",
            candidates.len()
        ));
        let bar = progress::bar(candidates.len() as u64, "verify");
        for p in candidates {
            tried += 1;
            let found = measure(&p.config)?.filter(|&a| result.meets_target(a));
            bar.inc(1);
            if let Some(a) = found {
                instead = Some((p.clone(), a));
                break;
            }
        }
        bar.finish_and_clear();
    }
    Ok(Verification {
        on,
        score,
        target,
        meets_target,
        instead,
        tried,
        stats: r.phases[VERIFY].clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::amp::metric::MetricInfo;

    /// An evaluator whose accuracy is a function of the config: the number of groups at 16 bits.
    struct Sixteens(Vec<f64>);

    impl Evaluator for Sixteens {
        fn identity(&self) -> String {
            "htp-test".into()
        }
        fn score(
            &mut self,
            config: Option<&[Precision]>,
            _: Subset,
            _: crate::amp::evaluator::MetricSpec,
        ) -> Result<f64> {
            let c = config.expect("a config");
            Ok(self.0[c.iter().filter(|p| p.act == 16).count()])
        }
        fn outputs(
            &mut self,
            _: Option<&[Precision]>,
            _: Subset,
        ) -> Result<Vec<amp_device::backend::Array>> {
            anyhow::bail!("no outputs")
        }
    }

    fn point(cfg: &[u8], score: f64) -> Point {
        let config: Vec<Precision> = cfg
            .iter()
            .map(|&a| Precision { act: a, weight: 8 })
            .collect();
        let relative_bitops =
            cfg.iter().map(|&a| a as f64).sum::<f64>() / (16.0 * cfg.len() as f64);
        Point {
            index: None,
            relative_bitops,
            score,
            group: None,
            candidate: None,
            config,
            cost: None,
        }
    }

    fn verified(chosen: Point, pareto: Vec<Point>, there: Vec<f64>) -> Verification {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::open(&dir.path().join("j.jsonl"), false).unwrap();
        let id = Identity {
            model: "m".into(),
            phase1_data: "d1".into(),
            phase2_data: "d2".into(),
            encodings: "e".into(),
        };
        let r = TuneResult {
            metric: MetricInfo::default(),
            phase1_metric: MetricInfo::default(),
            fp32: 0.95,
            reference: 0.95,
            reference_of: "FP32".into(),
            target: Some(0.94),
            uniform: Vec::new(),
            baseline: Precision::A16W8,
            min_candidate: Precision::A8W8,
            early_exit: None,
            sensitivity: Vec::new(),
            pareto,
            chosen,
            phases: Default::default(),
            timing: Default::default(),
            cost: None,
            phase3: None,
            torn_journal_lines: 0,
            skipped_journal_lines: Vec::new(),
            unsupported: 0,
            failures: Vec::new(),
            verification: None,
            verify_note: None,
            bias_raise: Vec::new(),
        };
        verify(&r, &Metric::top1(), &mut Sixteens(there), &mut journal, &id).unwrap()
    }

    #[test]
    fn a_chosen_point_that_holds_there_is_kept() {
        let v = verified(
            point(&[8, 16, 8], 0.945),
            vec![],
            vec![0.9, 0.941, 0.95, 0.95],
        );
        assert!(
            v.meets_target && v.instead.is_none() && v.tried == 1,
            "{v:?}"
        );
        assert_eq!(v.score, Some(0.941));
    }

    #[test]
    fn a_miss_offers_the_cheapest_point_that_holds_on_both() {
        // there: one 16-bit group gives 0.93 (a miss), two give 0.945, three 0.95
        let there = vec![0.9, 0.93, 0.945, 0.95];
        let pareto = vec![
            point(&[16, 16, 16], 0.95),
            point(&[8, 16, 8], 0.945),
            point(&[8, 8, 8], 0.90), // misses on the reference: never tried
            point(&[16, 16, 8], 0.946),
            point(&[16, 8, 16], 0.947),
        ];
        let v = verified(point(&[8, 16, 8], 0.945), pareto, there);
        assert!(!v.meets_target, "{v:?}");
        let (p, a) = v.instead.clone().expect("a point that holds");
        // the cheapest of the passing ones (two at 2/3 of the bit-ops: the first in order)
        assert_eq!(p.score, 0.946, "{v:?}");
        assert_eq!(a, 0.945);
        assert_eq!(v.tried, 2);
    }

    #[test]
    fn a_miss_with_nothing_that_holds_says_so() {
        let v = verified(
            point(&[8, 16, 8], 0.945),
            vec![point(&[16, 16, 16], 0.95)],
            vec![0.0; 4],
        );
        assert!(
            !v.meets_target && v.instead.is_none() && v.tried == 2,
            "{v:?}"
        );
    }
}
