//! ONNX ops amp computes only at import, when their inputs are constants (shape subgraphs: Shape,
//! ConstantOfShape, Constant, Range); reached here, a node reads an activation.

use crate::import::node::Ctx;
use crate::import::{ImportError, Importer};

pub(crate) fn import(_imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    Err(cx.err(
        "is computed from the model's input at run time; amp folds it only when its inputs are constant",
    ))
}
