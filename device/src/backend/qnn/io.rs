//! Moving data across the graph's boundary: NCHW ↔ NHWC, floats ↔ fixed-point codes.

use crate::quant::Encoding;

/// Moves the channel axis of `n` samples of NCHW shape `s` to the end (NHWC), or back with `to_nhwc` false.
fn permute_channels(x: &[f32], n: usize, s: &[usize], to_nhwc: bool) -> Vec<f32> {
    let (c, h, w) = (s[1], s[2], s[3]);
    let mut out = vec![0f32; x.len()];
    for b in 0..n {
        for ch in 0..c {
            for y in 0..h {
                for xx in 0..w {
                    let nchw = ((b * c + ch) * h + y) * w + xx;
                    let nhwc = ((b * h + y) * w + xx) * c + ch;
                    if to_nhwc {
                        out[nhwc] = x[nchw];
                    } else {
                        out[nchw] = x[nhwc];
                    }
                }
            }
        }
    }
    out
}

pub(super) fn to_nhwc(x: &[f32], n: usize, s: &[usize]) -> Vec<f32> {
    permute_channels(x, n, s, true)
}

pub(super) fn to_nchw(x: &[f32], n: usize, s: &[usize]) -> Vec<f32> {
    permute_channels(x, n, s, false)
}

pub(super) fn encode(x: &[f32], e: &Encoding) -> Vec<u8> {
    if e.bits == 16 {
        x.iter()
            .flat_map(|&v| (e.quantize(v) as u16).to_le_bytes())
            .collect()
    } else {
        x.iter().map(|&v| e.quantize(v) as u8).collect()
    }
}

pub(super) fn decode(b: &[u8], e: &Encoding) -> Vec<f32> {
    let deq = |q: f64| ((q + e.offset as f64) * e.scale as f64) as f32;
    if e.bits == 16 {
        b.chunks_exact(2)
            .map(|c| deq(u16::from_le_bytes([c[0], c[1]]) as f64))
            .collect()
    } else {
        b.iter().map(|&q| deq(q as f64)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trip() {
        let x: Vec<f32> = (0..2 * 3 * 2 * 2).map(|v| v as f32).collect();
        let s = [2, 3, 2, 2];
        assert_eq!(to_nchw(&to_nhwc(&x, 2, &s), 2, &s), x);
        assert_eq!(&to_nhwc(&x, 2, &s)[..3], &[0.0, 4.0, 8.0]);
    }

    #[test]
    fn codes_round_trip_on_the_grid() {
        let e = Encoding::from_min_max(-1.0, 3.0, 16);
        let x: Vec<f32> = [-1.0f32, 0.0, 0.5, 2.99]
            .iter()
            .map(|&v| e.fake(v))
            .collect();
        assert_eq!(decode(&encode(&x, &e), &e), x);
    }
}
