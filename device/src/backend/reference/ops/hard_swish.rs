//! HardSwish: x · clamp(x / 6 + 1/2, 0, 1).

use super::{Cx, Kernel, Out};
use crate::backend::reference::elementwise::map;
use crate::ir::HardSwish;

impl Kernel for HardSwish {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        Ok(map(&cx.ins[0], cx.bufs, &cx.epi, |v| {
            v * (v / 6.0 + 0.5).clamp(0.0, 1.0)
        }))
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::reference::ops::testing::run_fp32;
    use crate::ir::HardSwish;

    #[test]
    fn matches_the_onnx_definition() {
        let x = [-4.0, -1.0, 0.0, 1.0, 4.0];
        let y = run_fp32(&HardSwish.into(), &[(&[1, 5], &x)], &[1, 5]);
        for (g, w) in y.data.iter().zip([0.0, -1.0 / 3.0, 0.0, 2.0 / 3.0, 4.0]) {
            assert!((g - w).abs() < 1e-6, "{g} vs {w}");
        }
    }
}
