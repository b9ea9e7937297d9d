//! ONNX Cast of an activation. Activations are float32, so a Cast to float32 of one is the identity (that is
//! the Cast of an attention mask, whose integer input amp feeds as floats: see `read_as_float`); a Cast to
//! bool is IR Cast to bool, and a Cast of a boolean to float32 IR Cast to float. A Cast of constants folds at
//! import; any other Cast of an activation is refused, naming the type.

use amp_device::ir::{Cast, CastTo};

use crate::import::node::{add_node, alias, dyn_input, Ctx};
use crate::import::{ImportError, Importer};

/// ONNX TensorProto element types by code, for the message.
fn type_name(code: i64) -> String {
    match code {
        1 => "float32".into(),
        6 => "int32".into(),
        7 => "int64".into(),
        9 => "bool".into(),
        10 => "float16".into(),
        11 => "float64".into(),
        16 => "bfloat16".into(),
        c => format!("type {c} (ONNX TensorProto code)"),
    }
}

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let from_bool = imp.is_bool(x);
    match cx.int("to", 0) {
        1 if from_bool => add_node(imp, cx, Cast { to: CastTo::Float }.into(), vec![x]),
        1 => alias(imp, cx),
        9 if from_bool => alias(imp, cx),
        9 => add_node(imp, cx, Cast { to: CastTo::Bool }.into(), vec![x]),
        to => Err(cx.err(format!(
            "casts an activation to {}; amp computes activations in float32 and takes a Cast of one only to float32 or bool",
            type_name(to)
        ))),
    }
}
