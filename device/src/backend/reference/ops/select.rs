//! Where: input 1 where the condition (input 0, booleans) holds, else input 2, with numpy broadcasting
//! over all three; the executor quantizes the result to the output's encoding.

use super::{Cx, Kernel, Out};
use crate::backend::Array;
use crate::ir::{broadcast, broadcast_offset, Where};

impl Kernel for Where {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let [c, a, b] = &cx.ins[..] else {
            return Err(format!("{} inputs, Where takes three", cx.ins.len()));
        };
        let shape = broadcast(c.shape, &broadcast(a.shape, b.shape)?)?;
        let n: usize = shape.iter().product();
        let mut out = cx.bufs.take(n);
        let same = |x: &[usize]| x == shape.as_slice();
        if same(c.shape) && same(a.shape) && same(b.shape) {
            for (o, ((&c, &a), &b)) in out.iter_mut().zip(c.data.iter().zip(a.data).zip(b.data)) {
                *o = if c != 0.0 { a } else { b };
            }
        } else {
            for (i, o) in out.iter_mut().enumerate() {
                let at = |x: &[usize]| broadcast_offset(&shape, x, i);
                *o = if c.data[at(c.shape)] != 0.0 {
                    a.data[at(a.shape)]
                } else {
                    b.data[at(b.shape)]
                };
            }
        }
        Ok(Out::Real(Array::new(shape, out)))
    }
}

#[cfg(test)]
mod tests {
    use crate::backend::reference::ops::testing::run_fp32;
    use crate::ir::Where;

    #[test]
    fn selects_by_the_condition_with_and_without_broadcasting() {
        let c: &[f32] = &[1.0, 0.0, 0.0, 1.0];
        let (a, b): (&[f32], &[f32]) = (&[1.0, 2.0, 3.0, 4.0], &[-1.0, -2.0, -3.0, -4.0]);
        let same = run_fp32(
            &Where.into(),
            &[(&[1, 4], c), (&[1, 4], a), (&[1, 4], b)],
            &[1, 4],
        );
        assert_eq!(same.data, vec![1.0, -2.0, -3.0, 4.0]);
        // a condition per column of a 2 × 2, a scalar fill
        let spread = run_fp32(
            &Where.into(),
            &[(&[1, 1, 2], &c[..2]), (&[1], &[-9.0]), (&[1, 2, 2], b)],
            &[1, 2, 2],
        );
        assert_eq!(spread.shape, vec![1, 2, 2]);
        assert_eq!(spread.data, vec![-9.0, -2.0, -9.0, -4.0]);
    }
}
