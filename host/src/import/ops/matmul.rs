//! ONNX MatMul → IR Gemm when B is a constant matrix (stored `[N, K]`), IR MatMul when it is an activation.

use amp_device::ir::{Gemm, MatMul};

use crate::import::node::{add_node, dyn_input, Ctx};
use crate::import::{ImportError, Importer, Val};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let a = dyn_input(imp, cx, 0)?;
    let bname = cx.input(1).ok_or_else(|| cx.err("B is missing"))?;
    match imp.val(bname)?.clone() {
        Val::Const(b) if b.shape.len() == 2 => {
            let (k, n) = (b.shape[0], b.shape[1]);
            let bv = b.to_f32();
            let w: Vec<f32> = (0..n)
                .flat_map(|j| (0..k).map(move |p| (j, p)))
                .map(|(j, p)| bv[p * n + j])
                .collect();
            let wt = imp.g.add_tensor(bname, vec![n, k], Some(w));
            add_node(imp, cx, Gemm.into(), vec![a, wt])
        }
        Val::Const(b) => Err(cx.err(format!(
            "constant B of shape {:?}: amp handles a constant matrix or an activation",
            b.shape
        ))),
        Val::Dyn(b) => add_node(imp, cx, MatMul.into(), vec![a, b]),
    }
}
