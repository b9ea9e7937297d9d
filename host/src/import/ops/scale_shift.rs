//! ONNX BatchNormalization (inference) → IR ScaleShift, scale = γ / √(σ² + ε) and shift = β − μ · scale
//! computed in f64; the import's folds then merge it into a preceding Conv/Gemm where they can.

use amp_device::ir::ScaleShift;

use crate::import::node::{add_node, dyn_input, get_const, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let p: Vec<Vec<f32>> = (1..5)
        .map(|i| {
            get_const(imp, cx, i)?
                .map(|c| c.to_f32())
                .ok_or_else(|| cx.err(format!("input {i} is missing")))
        })
        .collect::<Result<_, _>>()?;
    let (gamma, beta, mean, var) = (&p[0], &p[1], &p[2], &p[3]);
    let eps = cx.float("epsilon", 1e-5) as f64;
    let scale: Vec<f32> = (0..gamma.len())
        .map(|c| (gamma[c] as f64 / (var[c] as f64 + eps).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..gamma.len())
        .map(|c| (beta[c] as f64 - mean[c] as f64 * scale[c] as f64) as f32)
        .collect();
    let n = scale.len();
    let s = imp
        .g
        .add_tensor(format!("{}.scale", cx.name), vec![n], Some(scale));
    let b = imp
        .g
        .add_tensor(format!("{}.shift", cx.name), vec![n], Some(shift));
    add_node(imp, cx, ScaleShift.into(), vec![x, s, b])
}
