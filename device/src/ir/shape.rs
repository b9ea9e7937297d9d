//! Shape arithmetic the ops share: convolution output sizes and numpy broadcasting.

pub fn conv_out(
    size: usize,
    k: usize,
    stride: usize,
    pad_a: usize,
    pad_b: usize,
    dil: usize,
    ceil: bool,
) -> Result<usize, String> {
    let eff = dil * (k - 1) + 1;
    let padded = size + pad_a + pad_b;
    if padded < eff {
        return Err(format!(
            "kernel extent {eff} is larger than the padded input {padded}"
        ));
    }
    let span = padded - eff;
    Ok(if ceil {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    })
}

/// Offset into an operand of shape `operand` of the element at flat index `idx` of the broadcast result
/// `out` (shapes right-aligned; size-1 dims repeat).
pub fn broadcast_offset(out: &[usize], operand: &[usize], idx: usize) -> usize {
    let mut rem = idx;
    let mut off = 0;
    let mut stride = 1;
    for d in (0..out.len()).rev() {
        let i = rem % out[d];
        rem /= out[d];
        let sd = d as isize - (out.len() as isize - operand.len() as isize);
        if sd >= 0 {
            let dim = operand[sd as usize];
            off += if dim == 1 { 0 } else { i } * stride;
            stride *= dim;
        }
    }
    off
}

/// Numpy-style broadcast of two shapes.
pub fn broadcast(a: &[usize], b: &[usize]) -> Result<Vec<usize>, String> {
    let n = a.len().max(b.len());
    let mut out = vec![0; n];
    for i in 0..n {
        let da = if i + a.len() >= n {
            a[i + a.len() - n]
        } else {
            1
        };
        let db = if i + b.len() >= n {
            b[i + b.len() - n]
        } else {
            1
        };
        out[i] = match (da, db) {
            (x, y) if x == y => x,
            (1, y) => y,
            (x, 1) => x,
            _ => return Err(format!("shapes {a:?} and {b:?} do not broadcast")),
        };
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn broadcast_follows_numpy() {
        assert_eq!(
            broadcast(&[1, 16, 4, 4], &[16, 1, 1]).unwrap(),
            vec![1, 16, 4, 4]
        );
        assert!(broadcast(&[1, 3], &[4]).is_err());
    }
}
