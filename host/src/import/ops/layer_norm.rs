//! ONNX LayerNormalization (opset 17) → IR LayerNorm; scale and bias as `[D]` constants over the normalised
//! elements (a missing bias is zeros).

use amp_device::ir::LayerNorm;

use crate::import::node::{add_node, dyn_input, get_const, norm_axis, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let shape = imp.shape_of(x).to_vec();
    let axis = norm_axis(cx.int("axis", -1), shape.len()).map_err(|m| cx.err(m))?;
    let epsilon = cx.float("epsilon", 1e-5);
    let n: usize = shape[axis..].iter().product();
    let mut operand = |k: usize, what: &str, default: f32| -> Result<usize, ImportError> {
        let data = match get_const(imp, cx, k)?.map(|c| c.to_f32()) {
            Some(d) if d.len() == n => d,
            Some(d) if d.len() == 1 => vec![d[0]; n],
            Some(d) => {
                return Err(cx.err(format!(
                    "{what} has {} values for {n} normalised elements",
                    d.len()
                )))
            }
            None => vec![default; n],
        };
        Ok(imp
            .g
            .add_tensor(format!("{}.{what}", cx.name), vec![n], Some(data)))
    };
    let gamma = operand(1, "scale", 1.0)?;
    let beta = operand(2, "bias", 0.0)?;
    add_node(
        imp,
        cx,
        LayerNorm { axis, epsilon }.into(),
        vec![x, gamma, beta],
    )
}
