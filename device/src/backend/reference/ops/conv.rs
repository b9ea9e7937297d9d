//! Conv: the conv family's kernels (f32 in FP32, exact integer sums when quantized); small "same" depthwise
//! convs get their weights laid out for the flat kernel once per model.

use super::{Cx, Kernel, Out, State};
use crate::backend::reference::conv::{conv_f32, conv_quant, FlatDw};
use crate::backend::reference::requant::QuantMac;
use crate::ir::{Conv, Graph, Node};

impl Kernel for Conv {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let flat = match cx.state {
            Some(State::FlatDepthwise(f)) => Some(f),
            _ => None,
        };
        let y = match cx.mac {
            Some(q) => {
                let e = cx.need_enc(0)?;
                conv_quant(
                    self,
                    &cx.ins[0],
                    cx.ins[1].shape,
                    q,
                    e,
                    &cx.epi,
                    cx.bufs,
                    flat,
                )
            }
            None => {
                let bias = cx.ins.get(2).map(|b| b.data);
                conv_f32(self, &cx.ins[0], &cx.ins[1], bias, &cx.epi, cx.bufs, flat)
            }
        };
        y.map(Out::Done)
    }

    fn prepare(&self, g: &Graph, n: &Node, mac: Option<&QuantMac>) -> Option<State> {
        let mut input = g.tensors[n.inputs[0]].shape.clone();
        input[0] = 1;
        let w = &g.tensors[n.inputs[1]].shape;
        let flat = match mac {
            Some(q) => FlatDw::new(self, &input, w, &q.codes, q.codes64.as_deref()),
            None => FlatDw::new(self, &input, w, g.const_data(n.inputs[1])?, None),
        };
        flat.map(State::FlatDepthwise)
    }
}
