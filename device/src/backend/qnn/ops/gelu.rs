//! Gelu → Gelu (QNN's is the exact, erf form; ONNX's tanh approximation is refused rather than run
//! differently).

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Gelu;

impl Lower for Gelu {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        if self.tanh {
            return Err(cx.unsupported(
                "QNN's Gelu is the exact (erf) form; approximate=\"tanh\" has no HTP op",
            ));
        }
        cx.node("Gelu", &[])
    }
}
