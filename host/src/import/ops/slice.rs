//! ONNX Slice of an activation → IR Slice; ONNX Split → one IR Slice per output. A Slice of constants folds
//! at import (`const_nodes.rs`).

use amp_device::ir::Op;

use crate::import::node::{
    add_node_as, dyn_input, get_const, norm_axis, slice_args, slice_ranges, Ctx,
};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let shape = imp.shape_of(x).to_vec();
    let (starts, ends, axes, steps) = slice_args(imp, cx, shape.len())?;
    // the batch axis may be named only to keep it whole: from its start, step 1, to its end
    if let Some(k) = axes.iter().position(|&a| a == 0) {
        let whole = (starts[k] == 0 || starts[k] <= i32::MIN as i64)
            && ends[k] >= i32::MAX as i64
            && steps.get(k).is_none_or(|&s| s == 1);
        if !whole {
            return Err(cx.err(format!(
                "slices the batch axis (starts {}, ends {}); amp keeps every sample",
                starts[k], ends[k]
            )));
        }
    }
    let sl = slice_ranges(&shape, &starts, &ends, &axes, &steps).map_err(|m| cx.err(m))?;
    add_node_as(
        imp,
        cx,
        cx.name.clone(),
        cx.output()?,
        Op::Slice(sl),
        vec![x],
    )
}

/// Split into the sizes given (the `split` input since opset 13, the attribute before), or into equal parts
/// (`num_outputs` since opset 18, else one per output), the last part taking the remainder.
pub(crate) fn import_split(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let shape = imp.shape_of(x).to_vec();
    let axis = norm_axis(cx.int("axis", 0), shape.len()).map_err(|m| cx.err(m))?;
    if axis == 0 {
        return Err(cx.err("splits the batch axis; amp keeps every sample"));
    }
    let outs: Vec<&str> = cx.node.output.iter().map(|s| s.as_str()).collect();
    let given = if imp.opset >= 13 {
        get_const(imp, cx, 1)?.map(|c| c.to_i64())
    } else {
        cx.ints("split")
    };
    let d = shape[axis];
    let sizes: Vec<usize> = match given {
        Some(v) => v.iter().map(|&s| s.max(0) as usize).collect(),
        None => {
            let n = outs.len().max(1);
            let part = d.div_ceil(n);
            (0..n)
                .map(|k| part.min(d.saturating_sub(k * part)))
                .collect()
        }
    };
    if sizes.len() != outs.len() || sizes.iter().sum::<usize>() != d || sizes.contains(&0) {
        return Err(cx.err(format!(
            "split sizes {sizes:?} for {} outputs do not cover axis {axis} of {d}",
            outs.len()
        )));
    }
    let mut start = 0;
    for (k, (out, len)) in outs.iter().zip(sizes).enumerate() {
        let mut sl = amp_device::ir::Slice {
            starts: vec![0; shape.len()],
            steps: vec![1; shape.len()],
            lens: shape.clone(),
        };
        (sl.starts[axis], sl.lens[axis]) = (start, len);
        start += len;
        if !out.is_empty() {
            let name = format!("{}:{k}", cx.name);
            add_node_as(imp, cx, name, out, Op::Slice(sl), vec![x])?;
        }
    }
    Ok(())
}
