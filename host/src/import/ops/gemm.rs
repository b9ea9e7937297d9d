//! ONNX Gemm → IR Gemm: B stored as `[N, K]` with alpha folded in, C as a `[N]` bias with beta folded in.

use amp_device::ir::Gemm;

use crate::import::node::{add_node, dyn_input, get_const, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    if cx.int("transA", 0) != 0 {
        return Err(cx.err("transA=1 is not supported"));
    }
    let b = get_const(imp, cx, 1)?.ok_or_else(|| cx.err("B is missing"))?;
    if b.shape.len() != 2 {
        return Err(cx.err(format!("B has shape {:?}; expected a matrix", b.shape)));
    }
    let alpha = cx.float("alpha", 1.0);
    let beta = cx.float("beta", 1.0);
    let bv = b.to_f32();
    let (k, n) = if cx.int("transB", 0) != 0 {
        (b.shape[1], b.shape[0])
    } else {
        (b.shape[0], b.shape[1])
    };
    let w: Vec<f32> = if cx.int("transB", 0) != 0 {
        bv.iter().map(|v| v * alpha).collect()
    } else {
        (0..n)
            .flat_map(|j| (0..k).map(move |p| (j, p)))
            .map(|(j, p)| bv[p * n + j] * alpha)
            .collect()
    };
    let wname = cx.input(1).unwrap_or_default().to_string();
    let wt = imp.g.add_tensor(wname, vec![n, k], Some(w));
    let mut ins = vec![x, wt];
    if let Some(c) = get_const(imp, cx, 2)? {
        let cv = c.to_f32();
        let bias: Vec<f32> = match cv.len() {
            1 => vec![cv[0] * beta; n],
            l if l == n => cv.iter().map(|v| v * beta).collect(),
            _ => {
                return Err(cx.err(format!(
                    "C has shape {:?}; amp handles a bias of [{n}] or a scalar",
                    c.shape
                )))
            }
        };
        ins.push(
            imp.g
                .add_tensor(cx.input(2).unwrap_or_default(), vec![n], Some(bias)),
        );
    }
    add_node(imp, cx, Gemm.into(), ins)
}
