//! ONNX Gather of a constant table by an integer model input (an embedding lookup) → IR Gather. A Gather of
//! constants folds at import (`const_nodes`); one of an activation is refused.

use amp_device::ir::Gather;

use crate::import::node::{add_node, dyn_input, get_const, norm_axis, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    // a table computed from the model's input is refused by get_const, naming the input
    let table = get_const(imp, cx, 0)?.ok_or_else(|| cx.err("input 0 is missing"))?;
    let axis = norm_axis(cx.int("axis", 0), table.shape.len()).map_err(|m| cx.err(m))?;
    if axis != 0 {
        return Err(cx.err(format!(
            "axis {axis}: amp takes an embedding lookup, rows of the table (axis 0)"
        )));
    }
    let idx = dyn_input(imp, cx, 1)?;
    if !imp.g.integer.contains(&idx) {
        return Err(cx.err(format!(
            "its indices \"{}\" are not an integer model input; amp reads indices only from the model's int64/int32 inputs",
            imp.g.tensors[idx].name
        )));
    }
    let t = imp.tensor(cx.input(0).unwrap_or_default())?;
    add_node(imp, cx, Gather.into(), vec![t, idx])
}
