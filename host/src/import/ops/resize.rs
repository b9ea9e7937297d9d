//! ONNX Resize and Upsample (4-D, nearest or linear, over H and W) → IR Resize: scales from the scales or
//! sizes input, the coordinate and nearest modes as given (the defaults differ before opset 11).

use amp_device::ir::{CoordMode, NearestMode, Resize, ResizeMode};

use crate::import::node::{add_node, dyn_input, get_const, Ctx};
use crate::import::{ImportError, Importer};

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let x = dyn_input(imp, cx, 0)?;
    let s = imp.shape_of(x).to_vec();
    if s.len() != 4 {
        return Err(cx.err(format!("input {s:?}: amp resizes NCHW tensors")));
    }
    let (scales_in, sizes_in) = if cx.op() == "Upsample" || imp.opset < 11 {
        (
            get_const(imp, cx, 1)?
                .map(|c| c.to_f32())
                .or_else(|| cx.attr("scales").map(|a| a.floats.clone())),
            None,
        )
    } else {
        (
            get_const(imp, cx, 2)?
                .map(|c| c.to_f32())
                .filter(|v| !v.is_empty()),
            get_const(imp, cx, 3)?.map(|c| c.to_i64()),
        )
    };
    let scales: [f32; 2] = match (scales_in, sizes_in) {
        (Some(sc), _) if sc.len() == 4 => {
            if sc[0] != 1.0 || sc[1] != 1.0 {
                return Err(cx.err("resizing the batch or channel axis is not supported"));
            }
            [sc[2], sc[3]]
        }
        (_, Some(sz)) if sz.len() == 4 => [sz[2] as f32 / s[2] as f32, sz[3] as f32 / s[3] as f32],
        _ => return Err(cx.err("needs 4 scales or 4 sizes")),
    };
    let mode = match cx.string("mode", "nearest").as_str() {
        "nearest" => ResizeMode::Nearest,
        "linear" | "bilinear" => ResizeMode::Linear,
        m => return Err(cx.err(format!("mode {m:?} is not supported (nearest, linear)"))),
    };
    let default_coord = if cx.op() == "Upsample" || imp.opset < 11 {
        "asymmetric"
    } else {
        "half_pixel"
    };
    let coord = match cx
        .string("coordinate_transformation_mode", default_coord)
        .as_str()
    {
        "half_pixel" => CoordMode::HalfPixel,
        "pytorch_half_pixel" => CoordMode::PytorchHalfPixel,
        "asymmetric" => CoordMode::Asymmetric,
        "align_corners" => CoordMode::AlignCorners,
        m => {
            return Err(cx.err(format!(
                "coordinate_transformation_mode {m:?} is not supported"
            )))
        }
    };
    let default_nearest = if cx.op() == "Upsample" || imp.opset < 11 {
        "floor"
    } else {
        "round_prefer_floor"
    };
    let nearest = match cx.string("nearest_mode", default_nearest).as_str() {
        "round_prefer_floor" => NearestMode::RoundPreferFloor,
        "round_prefer_ceil" => NearestMode::RoundPreferCeil,
        "floor" => NearestMode::Floor,
        "ceil" => NearestMode::Ceil,
        m => return Err(cx.err(format!("nearest_mode {m:?} is not supported"))),
    };
    add_node(
        imp,
        cx,
        Resize {
            mode,
            coord,
            nearest,
            scales,
        }
        .into(),
        vec![x],
    )
}
