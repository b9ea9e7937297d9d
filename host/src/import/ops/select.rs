//! ONNX Where → IR Where: a boolean condition an earlier op wrote (Equal, Not, a Cast to bool), and two
//! values, activations or constants (a mask's fill value).

use amp_device::ir::{TensorId, Where};

use crate::import::node::{add_node, dyn_input, Ctx};
use crate::import::{ImportError, Importer, Val};

/// Input `k`, which must hold booleans: an earlier op's, or a constant (a causal mask).
pub(crate) fn condition(imp: &mut Importer, cx: &Ctx, k: usize) -> Result<TensorId, ImportError> {
    let name = cx
        .input(k)
        .ok_or_else(|| cx.err(format!("input {k} is missing")))?;
    if let Val::Const(v) = imp.val(name)? {
        if v.is_float() {
            return Err(cx.err(format!(
                "reads the float constant \"{name}\" as a boolean; amp takes boolean constants"
            )));
        }
        return imp.tensor(name);
    }
    let c = dyn_input(imp, cx, k)?;
    if !imp.is_bool(c) {
        return Err(cx.err(format!(
            "reads \"{}\" as a boolean, but it holds floats; amp takes booleans a comparison, And, Or, Xor, Not or a Cast to bool computes",
            imp.g.tensors[c].name
        )));
    }
    Ok(c)
}

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let c = condition(imp, cx, 0)?;
    let mut ins = vec![c];
    for k in 1..3 {
        let name = cx
            .input(k)
            .ok_or_else(|| cx.err(format!("input {k} is missing")))?;
        ins.push(imp.tensor(name)?);
    }
    add_node(imp, cx, Where.into(), ins)
}
