//! MaxPool → PoolMax2d.

use super::{pool_params, Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::MaxPool;

impl Lower for MaxPool {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        cx.node("PoolMax2d", &pool_params(&self.0))
    }
}
