//! ONNX Tile (constant repeats) and Expand (a constant shape broadcast against the input's) of an activation
//! → IR Tile.

use amp_device::ir::Tile;

use crate::import::node::{dyn_input, get_const, unary, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = imp.shape_of(dyn_input(imp, cx, 0)?).to_vec();
    let given = get_const(imp, cx, 1)?
        .ok_or_else(|| cx.err("input 1 is missing"))?
        .to_i64();
    let reps: Vec<usize> = if cx.op() == "Tile" {
        given.iter().map(|&r| r.max(0) as usize).collect()
    } else {
        if given.len() > x.len() {
            return Err(cx.err(format!(
                "shape {given:?} has more axes than the input {x:?}; amp keeps the batch axis first"
            )));
        }
        // numpy broadcasting aligns the shape with the input's last axes
        let pad = x.len() - given.len();
        x.iter()
            .enumerate()
            .map(|(a, &d)| match a.checked_sub(pad).map(|k| given[k]) {
                Some(t) if d == 1 && t > 1 && a > 0 => Ok(t as usize),
                Some(t) if t == 1 || t == d as i64 || (a == 0 && d == 1) => Ok(1),
                None => Ok(1),
                Some(t) => Err(cx.err(format!(
                    "cannot expand axis {a} of {x:?} to {t} (shape {given:?})"
                ))),
            })
            .collect::<Result<_, _>>()?
    };
    unary(imp, cx, Tile { reps }.into())
}
