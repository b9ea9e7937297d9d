//! Gather: each index's row of the table (negative indices count from the end, as ONNX's do).

use super::{Cx, Kernel, Out};
use crate::backend::Array;
use crate::ir::Gather;

impl Kernel for Gather {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let (table, idx) = (&cx.ins[0], &cx.ins[1]);
        let rows = table.shape[0];
        let row = table.data.len() / rows;
        let mut out = Vec::with_capacity(idx.data.len() * row);
        for &v in idx.data {
            let i = if v < 0.0 { v + rows as f32 } else { v };
            if !(0.0..rows as f32).contains(&i) || i.fract() != 0.0 {
                return Err(format!("index {v} outside the table's {rows} rows"));
            }
            let i = i as usize;
            out.extend_from_slice(&table.data[i * row..(i + 1) * row]);
        }
        let shape = [idx.shape, &table.shape[1..]].concat();
        Ok(Out::Real(Array::new(shape, out)))
    }
}
