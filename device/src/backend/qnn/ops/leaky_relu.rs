//! LeakyRelu → Prelu with alpha as a one-element static tensor at the output's width.

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::LeakyRelu;
use crate::quant::Encoding;

impl Lower for LeakyRelu {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        let mut ins = cx.inputs()?;
        let alpha = [self.alpha];
        let e = Encoding::for_constant(&alpha, cx.width());
        let name = format!("{}.alpha", cx.n.name);
        ins.push(cx.b.static_values(&name, &vec![1; cx.rank()], &alpha, e)?);
        cx.emit("Prelu", &[], &ins)
    }
}
