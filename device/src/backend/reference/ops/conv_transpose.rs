//! ConvTranspose as the Conv it equals: the input spread out `strides` apart with zeros between, padded by
//! the kernel's reach less the pads (cropped where the pads are larger), convolved at stride 1 with the
//! kernel flipped and its channel axes swapped. Every output is the same sum of the same products as the
//! scatter definition (the inserted zeros add exact zeros), so the conv family's exact integer sums apply.
//! The flipped weights are made once per model.

use super::{Cx, Kernel, Out, State};
use crate::backend::reference::conv::{conv_f32, conv_quant};
use crate::backend::reference::requant::QuantMac;
use crate::backend::reference::ArrayRef;
use crate::ir::{Conv, ConvTranspose, Graph, Node};

/// Weights `[cin, cout, kh, kw]` as a Conv's `[cout, cin, kh, kw]`, each kernel rotated by 180°.
fn flipped(w: &[f32], ws: &[usize]) -> Vec<f32> {
    let (ci, co, kh, kw) = (ws[0], ws[1], ws[2], ws[3]);
    let mut out = vec![0f32; w.len()];
    for i in 0..ci {
        for o in 0..co {
            for y in 0..kh {
                for x in 0..kw {
                    let src = ((i * co + o) * kh + y) * kw + x;
                    let dst = ((o * ci + i) * kh + (kh - 1 - y)) * kw + (kw - 1 - x);
                    out[dst] = w[src];
                }
            }
        }
    }
    out
}

/// The flipped weights of one ConvTranspose: floats in FP32, the integer-domain parameters when quantized.
pub(crate) enum Flipped {
    Real(Vec<f32>),
    Quant(Box<QuantMac>),
}

impl ConvTranspose {
    /// The stride-1 Conv this op equals on its spread input.
    fn as_conv(&self) -> Conv {
        Conv {
            strides: [1, 1],
            pads: [0; 4],
            dilations: self.dilations,
            group: 1,
        }
    }

    /// The input `[n, c, h, w]` spread `strides` apart and padded (or cropped) so that a stride-1 Conv with
    /// kernel `k` gives this op's output; returns the data and its shape.
    fn spread(&self, x: &ArrayRef, k: [usize; 2], out: &mut Vec<f32>) -> [usize; 4] {
        let (n, c, h, w) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3]);
        let (s, d, p, op) = (self.strides, self.dilations, self.pads, self.output_padding);
        // leading rows/columns before input 0 (negative: cropped)
        let lead = |a: usize| (d[a] * (k[a] - 1)) as isize - p[a] as isize;
        let size = |a: usize, len: usize| {
            ((len - 1) * s[a] + 1) as isize + lead(a) + (d[a] * (k[a] - 1) + op[a]) as isize
                - p[a + 2] as isize
        };
        let (sh, sw) = (size(0, h).max(0) as usize, size(1, w).max(0) as usize);
        out.clear();
        out.resize(n * c * sh * sw, 0.0);
        let (ly, lx) = (lead(0), lead(1));
        for (plane, dst) in x
            .data
            .chunks_exact(h * w)
            .zip(out.chunks_exact_mut(sh * sw))
        {
            for (yi, row) in plane.chunks_exact(w).enumerate() {
                let y = ly + (yi * s[0]) as isize;
                if y < 0 || y >= sh as isize {
                    continue;
                }
                let drow = &mut dst[y as usize * sw..][..sw];
                for (xi, &v) in row.iter().enumerate() {
                    let xo = lx + (xi * s[1]) as isize;
                    if xo >= 0 && xo < sw as isize {
                        drow[xo as usize] = v;
                    }
                }
            }
        }
        [n, c, sh, sw]
    }
}

impl Kernel for ConvTranspose {
    fn run(&self, cx: Cx) -> Result<Out, String> {
        let Some(State::Flipped(f)) = cx.state else {
            return Err("its flipped weights were not prepared".into());
        };
        let ws = cx.ins[1].shape;
        let cws = [ws[1], ws[0], ws[2], ws[3]];
        let mut spread = cx.bufs.take(0);
        let shape = self.spread(&cx.ins[0], [ws[2], ws[3]], &mut spread);
        let x = ArrayRef {
            shape: &shape,
            data: &spread,
        };
        let conv = self.as_conv();
        let y = match (f, cx.mac) {
            (Flipped::Quant(q), Some(_)) => {
                let e = cx.need_enc(0)?;
                conv_quant(&conv, &x, &cws, q, e, &cx.epi, cx.bufs, None)
            }
            (Flipped::Real(w), None) => {
                let w = ArrayRef {
                    shape: &cws,
                    data: w,
                };
                let bias = cx.ins.get(2).map(|b| b.data);
                conv_f32(&conv, &x, &w, bias, &cx.epi, cx.bufs, None)
            }
            _ => Err("its weights were prepared for another precision".into()),
        };
        cx.bufs.give(spread);
        y.map(Out::Done)
    }

    fn prepare(&self, g: &Graph, n: &Node, mac: Option<&QuantMac>) -> Option<State> {
        let ws = &g.tensors[n.inputs[1]].shape;
        Some(State::Flipped(match mac {
            Some(q) => Flipped::Quant(Box::new(QuantMac::new(
                flipped(&q.codes, ws),
                q.mult.clone(),
                q.bias.clone(),
                q.codes64.is_some(),
                q.codes_i8.is_some(),
            ))),
            None => Flipped::Real(flipped(g.const_data(n.inputs[1])?, ws)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::reference::buffers::Buffers;
    use crate::backend::reference::requant::Epilogue;
    use crate::ir::OpDef;

    /// ConvTranspose by its definition: every input scatters through the kernel.
    fn scatter(
        c: &ConvTranspose,
        x: &[f32],
        xs: [usize; 4],
        w: &[f32],
        ws: [usize; 4],
    ) -> Vec<f32> {
        let out = c.infer(&[&xs, &ws]).unwrap();
        let (oh, ow) = (out[2] as isize, out[3] as isize);
        // the output index input `i` reaches through tap `k` along spatial axis `a`
        let reach = |i: usize, k: usize, a: usize| {
            (i * c.strides[a] + k * c.dilations[a]) as isize - c.pads[a] as isize
        };
        let mut y = vec![0f32; out.iter().product()];
        for b in 0..xs[0] {
            for i in 0..xs[1] {
                for yi in 0..xs[2] {
                    for xi in 0..xs[3] {
                        let v = x[((b * xs[1] + i) * xs[2] + yi) * xs[3] + xi];
                        for o in 0..ws[1] {
                            for ky in 0..ws[2] {
                                for kx in 0..ws[3] {
                                    let (oy, ox) = (reach(yi, ky, 0), reach(xi, kx, 1));
                                    if oy < 0 || ox < 0 || oy >= oh || ox >= ow {
                                        continue;
                                    }
                                    let wv = w[((i * ws[1] + o) * ws[2] + ky) * ws[3] + kx];
                                    let at = ((b * ws[1] + o) as isize * oh + oy) * ow + ox;
                                    y[at as usize] += v * wv;
                                }
                            }
                        }
                    }
                }
            }
        }
        y
    }

    #[test]
    fn the_spread_conv_equals_the_scatter_definition() {
        // (strides, pads, dilations, output_padding, input, weight)
        #[rustfmt::skip]
        let cases = [
            ([2, 2], [0; 4], [1, 1], [0, 0], [2, 3, 4, 5], [3, 2, 2, 2]),
            ([2, 2], [1, 1, 1, 1], [1, 1], [1, 1], [1, 2, 5, 4], [2, 3, 3, 3]),
            ([3, 1], [2, 0, 1, 3], [1, 2], [2, 0], [1, 2, 3, 4], [2, 2, 3, 2]),
            ([1, 1], [0; 4], [1, 1], [0, 0], [1, 1, 3, 3], [1, 1, 1, 1]),
        ];
        for (strides, pads, dilations, output_padding, xs, ws) in cases {
            let c = ConvTranspose {
                strides,
                pads,
                dilations,
                output_padding,
                group: 1,
            };
            // small integers: every sum is exact
            let ints = |n: usize, m: usize, p: usize| -> Vec<f32> {
                (0..n)
                    .map(|i| ((i * m) % p) as f32 - (p / 2) as f32)
                    .collect()
            };
            let x = ints(xs.iter().product(), 7, 11);
            let w = ints(ws.iter().product(), 5, 9);
            let want = scatter(&c, &x, xs, &w, ws);
            let flip = flipped(&w, &ws);
            let mut spread = Vec::new();
            let xr = ArrayRef {
                shape: &xs,
                data: &x,
            };
            let shape = c.spread(&xr, [ws[2], ws[3]], &mut spread);
            let epi = Epilogue {
                clamp: None,
                quant: None,
                codes: false,
            };
            let got = conv_f32(
                &c.as_conv(),
                &ArrayRef {
                    shape: &shape,
                    data: &spread,
                },
                &ArrayRef {
                    shape: &[ws[1], ws[0], ws[2], ws[3]],
                    data: &flip,
                },
                None,
                &epi,
                &mut Buffers::default(),
                None,
            )
            .unwrap();
            assert_eq!(got.data, want, "{c:?}");
        }
    }
}
