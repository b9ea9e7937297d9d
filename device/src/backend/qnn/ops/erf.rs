//! Erf: HTP has no Erf op, so a config with one is unsupported there (and pruned).

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::Erf;

impl Lower for Erf {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        Err(cx.unsupported("QNN HTP has no Erf op"))
    }
}
