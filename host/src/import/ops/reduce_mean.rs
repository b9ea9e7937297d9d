//! ONNX ReduceMean → IR ReduceMean (axes from the attribute before opset 18, the input after; none: all).

use amp_device::ir::ReduceMean;

use crate::import::node::{axes_of, dyn_input, norm_axis, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let rank = imp.shape_of(dyn_input(imp, cx, 0)?).len();
    let axes = axes_of(imp, cx)?.unwrap_or_else(|| (0..rank as i64).collect());
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_, _>>()
        .map_err(|m| cx.err(m))?;
    axes.sort_unstable();
    let keepdims = cx.int("keepdims", 1) != 0;
    unary(imp, cx, ReduceMean { axes, keepdims }.into())
}
