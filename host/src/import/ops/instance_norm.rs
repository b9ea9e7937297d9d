//! ONNX InstanceNormalization → IR InstanceNorm; scale and bias must be constants of one value per channel.

use amp_device::ir::InstanceNorm;

use crate::import::node::{add_node, dyn_input, get_const, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let channels = imp.shape_of(x).get(1).copied().unwrap_or(0);
    let mut operand = |k: usize, what: &str| -> Result<usize, ImportError> {
        let data = get_const(imp, cx, k)?
            .map(|c| c.to_f32())
            .ok_or_else(|| cx.err(format!("input {k} ({what}) is missing")))?;
        if data.len() != channels {
            return Err(cx.err(format!(
                "{what} has {} values for {channels} channels",
                data.len()
            )));
        }
        Ok(imp
            .g
            .add_tensor(format!("{}.{what}", cx.name), vec![channels], Some(data)))
    };
    let scale = operand(1, "scale")?;
    let bias = operand(2, "bias")?;
    let epsilon = cx.float("epsilon", 1e-5);
    add_node(
        imp,
        cx,
        InstanceNorm { epsilon }.into(),
        vec![x, scale, bias],
    )
}
