//! ONNX ReduceMean, ReduceSum, ReduceMax, ReduceMin → IR Reduce (axes from the attribute, or from the input
//! since opset 13 for ReduceSum and 18 for the others; none: all, unless `noop_with_empty_axes`).

use amp_device::ir::{Reduce, ReduceOp};

use crate::import::node::{alias, axes_of, dyn_input, norm_axis, unary, Ctx};
use crate::import::{ImportError, Importer};

fn import_as(imp: &mut Importer, cx: &Ctx, op: ReduceOp) -> Result<(), ImportError> {
    let rank = imp.shape_of(dyn_input(imp, cx, 0)?).len();
    let axes = match axes_of(imp, cx)? {
        Some(a) if !a.is_empty() => a,
        _ if cx.int("noop_with_empty_axes", 0) != 0 => return alias(imp, cx),
        _ => (0..rank as i64).collect(),
    };
    let mut axes: Vec<usize> = axes
        .iter()
        .map(|&a| norm_axis(a, rank))
        .collect::<Result<_, _>>()
        .map_err(|m| cx.err(m))?;
    axes.sort_unstable();
    axes.dedup();
    let keepdims = cx.int("keepdims", 1) != 0;
    unary(imp, cx, Reduce { op, axes, keepdims }.into())
}

pub(crate) fn import_mean(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    import_as(imp, cx, ReduceOp::Mean)
}

pub(crate) fn import_sum(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    import_as(imp, cx, ReduceOp::Sum)
}

pub(crate) fn import_max(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    import_as(imp, cx, ReduceOp::Max)
}

pub(crate) fn import_min(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    import_as(imp, cx, ReduceOp::Min)
}
