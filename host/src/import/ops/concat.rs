//! ONNX Concat of activations → IR Concat.

use amp_device::ir::Concat;

use crate::import::node::{add_node, dyn_input, norm_axis, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let ins: Vec<usize> = (0..cx.node.input.len())
        .map(|i| dyn_input(imp, cx, i))
        .collect::<Result<_, _>>()?;
    let r = imp.shape_of(ins[0]).len();
    let axis = norm_axis(cx.int("axis", 1), r).map_err(|m| cx.err(m))?;
    add_node(imp, cx, Concat { axis }.into(), ins)
}
