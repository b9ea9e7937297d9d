//! Resize → Resize (nearest with floor, and linear), or ResizeNearestNeighbor with half-pixel centres where
//! that is the same function: HTP's Resize takes `nearest_mode` floor only.

use qnn_sys::ParamSpec;

use super::{Lower, NodeCx};
use crate::backend::qnn::Result;
use crate::ir::{CoordMode, NearestMode, Resize, ResizeMode};

impl Lower for Resize {
    fn lower(&self, cx: &mut NodeCx) -> Result<()> {
        if cx.rank() != 4 {
            return Err(cx.unsupported("resizing a tensor not of rank 4"));
        }
        let coord = match self.coord {
            CoordMode::HalfPixel => 0,
            CoordMode::PytorchHalfPixel => 1,
            CoordMode::AlignCorners => 2,
            CoordMode::Asymmetric => 3,
        };
        let nearest = match self.nearest {
            NearestMode::RoundPreferFloor => 0,
            NearestMode::RoundPreferCeil => 1,
            NearestMode::Floor => 2,
            NearestMode::Ceil => 3,
        };
        let mode = match self.mode {
            ResizeMode::Nearest => 0,
            ResizeMode::Linear => 1,
        };
        if mode == 0 && self.nearest != NearestMode::Floor {
            // TF-style half-pixel nearest rounds halves up, which is ONNX's round_prefer_ceil, and any rounding
            // when an integer upscale leaves no halves
            let (src, out) = (cx.in_shape(0), cx.out_shape());
            let integer_up = (2..4).all(|d| out[d] >= src[d] && out[d] % src[d] == 0);
            let half = matches!(
                self.coord,
                CoordMode::HalfPixel | CoordMode::PytorchHalfPixel
            );
            if !(half && (self.nearest == NearestMode::RoundPreferCeil || integer_up)) {
                return Err(cx.unsupported(
                    "nearest resize other than floor, or half-pixel rounding halves up",
                ));
            }
            let params = [
                ParamSpec::Bool("align_corners", false),
                ParamSpec::Bool("half_pixel_centers", true),
            ];
            return cx.node("ResizeNearestNeighbor", &params);
        }
        let mut params = vec![
            ParamSpec::Bool("exclude_outside", false),
            ParamSpec::U32("transformation_mode", coord),
            ParamSpec::U32("interpolation_mode", mode),
        ];
        if mode == 0 {
            params.push(ParamSpec::U32("nearest_mode", nearest));
        }
        cx.node("Resize", &params)
    }
}
