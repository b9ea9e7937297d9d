//! Clip: x limited to [min, max], by the same selects the fused epilogue uses.

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::backend::reference::requant::clamp;
use crate::ir::Clip;

impl Kernel for Clip {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let (min, max) = (self.min, self.max);
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| clamp(v, min, max)))
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::reference::ops::testing::run_fp32;
    use crate::ir::Clip;

    #[test]
    fn limits_to_the_bounds() {
        let op = Clip { min: 0.0, max: 6.0 };
        let y = run_fp32(&op.into(), &[(&[1, 3], &[7.5, -1.0, 2.0])], &[1, 3]);
        assert_eq!(y.data, vec![6.0, 0.0, 2.0]);
    }
}
