//! Runs that resume from an earlier run of another config give that config's own outputs, bit for bit, and
//! do skip work: phase 1's configs (the baseline with one group changed) and phase 2's chain (one more group
//! changed at each step), on the examples and on multi-input op models.

mod common;

use std::sync::Arc;

use amp_device::backend::resume::Prefixes;
use amp_device::backend::{prepare, Array, EvalBackend, Inputs};
use amp_device::quant::{Precision, QuantPlan, Stats};
use amp_device::Graph;
use amp_host::amp::groups::Groups;

use common::{fixture, fixture_in, fixture_inputs, root};

/// Phase 1's configs after their baseline, then a phase-2 chain lowering the groups in a scrambled order; of
/// at most 8 groups spread over the model.
fn configs(groups: usize) -> Vec<Vec<Precision>> {
    let base = vec![Precision::A16W16; groups];
    let mut out = vec![base.clone()];
    let some: Vec<usize> = (0..groups.min(8))
        .map(|k| k * groups / groups.min(8))
        .collect();
    for &k in &some {
        for p in [Precision::A16W8, Precision::A8W8] {
            let mut c = base.clone();
            c[k] = p;
            out.push(c);
        }
    }
    let mut c = base;
    for k in (0..some.len()).map(|k| some[(k * 5 + 3) % some.len()]) {
        c[k] = Precision::A8W8;
        out.push(c.clone());
    }
    out
}

/// Runs every config through `prefixes` and whole, and fails on the first output that differs; returns
/// the share of the work that resuming skipped (0 when nothing was counted).
fn check(name: &str, g: &Arc<Graph>, stats: &Stats, x: &Inputs, budget: usize) -> f64 {
    let groups = Groups::new(g);
    let mut prefixes = Prefixes::new(budget);
    let same = |a: &Array, b: &Array| {
        a.shape == b.shape
            && a.data
                .iter()
                .zip(&b.data)
                .all(|(u, v)| u.to_bits() == v.to_bits())
    };
    for cfg in configs(groups.len()) {
        let plan = QuantPlan::new(g, stats, &groups.bit_plan(g, &cfg, true)).unwrap();
        let mut model = prepare(&EvalBackend::Ref, g, Some(plan), 4).unwrap();
        let whole = model.run_batched(x, 4, |_| {}).unwrap();
        let resumed = prefixes
            .run_batched(&mut model, x, 0..x.batch(), 4)
            .unwrap();
        assert!(
            whole.len() == resumed.len() && whole.iter().zip(&resumed).all(|(a, b)| same(a, b)),
            "{name}, budget {budget} B: config {cfg:?} resumed differs from its whole run"
        );
    }
    let w = prefixes.work;
    // a run of samples that do not start the data (the agent's ranges) reads them in place
    if let Some(cfg) = configs(groups.len()).last() {
        let plan = QuantPlan::new(g, stats, &groups.bit_plan(g, cfg, true)).unwrap();
        let mut model = prepare(&EvalBackend::Ref, g, Some(plan), 4).unwrap();
        let n = x.batch();
        let whole = model
            .run_batched(&x.slice_batch(3.min(n), n), 4, |_| {})
            .unwrap();
        let resumed = prefixes.run_batched(&mut model, x, 3.min(n)..n, 4).unwrap();
        assert!(
            !whole.is_empty()
                && whole.len() == resumed.len()
                && whole.iter().zip(&resumed).all(|(a, b)| same(a, b)),
            "{name}: samples 3.. resumed differ from their whole run"
        );
    }
    if w.total > 0.0 {
        w.skipped / w.total
    } else {
        assert_eq!(w.skipped, 0.0);
        0.0
    }
}

#[test]
fn resumed_runs_are_whole_runs_and_skip_work() {
    let mut cases = Vec::new();
    for name in ["digits", "digits_seg", "mnist_mbv", "textori"] {
        let (g, arrays, stats) = fixture(name);
        let x = fixture_inputs(&g, &arrays);
        let x = x.slice_batch(0, x.batch().min(10));
        cases.push((name.to_string(), g, stats, x));
    }
    for name in ["two_inputs_conv_add", "attention_rank4", "embedding_gather"] {
        let dir = root().join("tests/fixtures/ops").join(name);
        let (g, arrays, stats) = fixture_in(&dir, &dir.join("model.onnx"));
        let x = fixture_inputs(&g, &arrays);
        cases.push((name.to_string(), g, stats, x));
    }
    for (name, g, stats, x) in &cases {
        // a budget for everything, one for a few checkpoints, none
        let all = check(name, g, stats, x, 1 << 30);
        let few = check(name, g, stats, x, 64 << 10);
        let none = check(name, g, stats, x, 0);
        println!("{name}: work skipped {all:.2} (1 GB), {few:.2} (64 kB), {none:.2} (none)");
        assert_eq!(none, 0.0, "{name}: resumed without a budget");
        if Groups::new(g).len() > 1 {
            assert!(all > 0.2, "{name}: only {all:.2} of the work skipped");
            assert!(few <= all, "{name}: fewer checkpoints skipped more");
        }
    }
}
