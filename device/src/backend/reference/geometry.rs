//! The sizes of one convolution and its im2col layout, shared by the f32/f64 and the int8 conv kernels.

use crate::ir::{conv_out, Conv};

/// Below this many output pixels per sample, one GEMM per sample is too narrow to run well.
pub(crate) const MIN_GEMM_WIDTH: usize = 128;

pub(crate) fn out_dims(c: &Conv, x: &[usize], w: &[usize]) -> Result<(usize, usize), String> {
    let (s, p, d) = (c.strides, c.pads, c.dilations);
    Ok((
        conv_out(x[2], w[2], s[0], p[0], p[2], d[0], false)?,
        conv_out(x[3], w[3], s[1], p[1], p[3], d[1], false)?,
    ))
}

/// Output indices `[lo, hi)` along one axis whose input index `o·stride + tap − pad` falls inside the input.
fn valid_range(
    tap: usize,
    stride: usize,
    pad: usize,
    len: usize,
    out_len: usize,
) -> (usize, usize) {
    // smallest o with o·stride + tap ≥ pad
    let lo = pad.saturating_sub(tap).div_ceil(stride);
    // largest o with o·stride + tap − pad ≤ len − 1
    if tap > len - 1 + pad {
        return (0, 0);
    }
    let hi = ((len - 1 + pad - tap) / stride + 1).min(out_len);
    (lo.min(hi), hi)
}

/// The sizes of one Conv.
pub(crate) struct Geom {
    pub n: usize,
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub cin_g: usize,
    pub kh: usize,
    pub kw: usize,
    pub oh: usize,
    pub ow: usize,
    pub group: usize,
    pub s: [usize; 2],
    pub d: [usize; 2],
    pub pads: [usize; 4],
}

impl Geom {
    pub fn new(c: &Conv, xs: &[usize], ws: &[usize]) -> Result<Geom, String> {
        if xs.len() != 4 || ws.len() != 4 {
            return Err(format!(
                "expects NCHW input and OIHW weight, found {xs:?} and {ws:?}"
            ));
        }
        if c.group == 0 || xs[1] != ws[1] * c.group || ws[0] % c.group != 0 {
            return Err(format!(
                "input has {} channels and weight {:?} with {} groups: they do not fit",
                xs[1], ws, c.group
            ));
        }
        let (oh, ow) = out_dims(c, xs, ws)?;
        Ok(Geom {
            n: xs[0],
            cin: xs[1],
            h: xs[2],
            w: xs[3],
            cout: ws[0],
            cin_g: ws[1],
            kh: ws[2],
            kw: ws[3],
            oh,
            ow,
            group: c.group,
            s: c.strides,
            d: c.dilations,
            pads: c.pads,
        })
    }
    pub fn p(&self) -> usize {
        self.oh * self.ow
    }
    pub fn k(&self) -> usize {
        self.cin_g * self.kh * self.kw
    }
    pub fn cout_g(&self) -> usize {
        self.cout / self.group
    }
    pub fn plane(&self) -> usize {
        self.h * self.w
    }
    pub fn depthwise(&self) -> bool {
        self.cin_g == 1 && self.cout_g() == 1
    }
    pub fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.s == [1, 1] && self.pads == [0; 4]
    }
    pub fn shape(&self) -> Vec<usize> {
        vec![self.n, self.cout, self.oh, self.ow]
    }
}

/// Writes the im2col columns of one group of one sample (`xg`: `cin_g` planes) into `cols`, a `[k, ld]`
/// matrix, at columns `col0 .. col0 + p`.
pub(crate) fn im2col<T: Copy>(g: &Geom, xg: &[T], cols: &mut [T], ld: usize, col0: usize, zero: T) {
    let (p, ow) = (g.p(), g.ow);
    for ci in 0..g.cin_g {
        for ky in 0..g.kh {
            let (ylo, yhi) = valid_range(ky * g.d[0], g.s[0], g.pads[0], g.h, g.oh);
            for kx in 0..g.kw {
                let row = (ci * g.kh + ky) * g.kw + kx;
                let dst = &mut cols[row * ld + col0..][..p];
                let (xlo, xhi) = valid_range(kx * g.d[1], g.s[1], g.pads[1], g.w, g.ow);
                if ylo >= yhi || xlo >= xhi {
                    dst.fill(zero);
                    continue;
                }
                dst[..ylo * ow].fill(zero);
                dst[yhi * ow..].fill(zero);
                let start = xlo * g.s[1] + kx * g.d[1] - g.pads[1];
                for oy in ylo..yhi {
                    let iy = oy * g.s[0] + ky * g.d[0] - g.pads[0];
                    let src = &xg[(ci * g.h + iy) * g.w..][..g.w];
                    let d = &mut dst[oy * ow..][..ow];
                    d[..xlo].fill(zero);
                    d[xhi..].fill(zero);
                    if g.s[1] == 1 {
                        d[xlo..xhi].copy_from_slice(&src[start..start + (xhi - xlo)]);
                    } else {
                        for (i, dv) in d[xlo..xhi].iter_mut().enumerate() {
                            *dv = src[start + i * g.s[1]];
                        }
                    }
                }
            }
        }
    }
}
