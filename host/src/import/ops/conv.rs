//! ONNX Conv (2-D, NCHW) → IR Conv with a constant weight and optional bias.

use amp_device::ir::Conv;

use crate::import::node::{add_node, dyn_input, get_const, pair, spatial_pads, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let s = imp.shape_of(x).to_vec();
    let w = get_const(imp, cx, 1)?.ok_or_else(|| cx.err("weight is missing"))?;
    if s.len() != 4 || w.shape.len() != 4 {
        return Err(cx.err(format!(
            "input {s:?} / weight {:?}: amp handles 2-D convolutions (NCHW)",
            w.shape
        )));
    }
    let k = [w.shape[2], w.shape[3]];
    let strides = pair(cx, "strides", 1)?;
    let dilations = pair(cx, "dilations", 1)?;
    let pads = spatial_pads(cx, [s[2], s[3]], k, strides, dilations)?;
    let group = cx.int("group", 1).max(1) as usize;
    let wt = imp.tensor(cx.input(1).unwrap_or_default())?;
    let mut ins = vec![x, wt];
    if let Some(b) = cx.input(2) {
        get_const(imp, cx, 2)?;
        ins.push(imp.tensor(b)?);
    }
    add_node(
        imp,
        cx,
        Conv {
            strides,
            pads,
            dilations,
            group,
        }
        .into(),
        ins,
    )
}
