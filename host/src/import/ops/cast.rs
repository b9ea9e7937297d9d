//! ONNX Cast of an activation → no IR op. Activations are float32, so a Cast to float32 is the identity;
//! that is the Cast of an attention mask, whose integer input amp feeds as floats (see `read_as_float`).
//! A Cast of constants folds at import; any other Cast of an activation is refused, naming the type.

use crate::import::node::{alias, Ctx};
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
    match cx.int("to", 0) {
        1 => alias(imp, cx),
        to => Err(cx.err(format!(
            "casts an activation to {}; amp computes activations in float32 and takes a Cast of one only to float32",
            type_name(to)
        ))),
    }
}
