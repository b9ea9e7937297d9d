//! ONNX ConvTranspose (2-D, NCHW) → IR ConvTranspose with a constant weight and optional bias.
//! Explicit pads, `auto_pad` and `output_shape` all resolve to the pads that crop the full output. Grouped
//! weights `[cin, cout/group, kh, kw]` are stored block-diagonal as `[cin, cout, kh, kw]`.

use amp_device::ir::ConvTranspose;

use crate::import::node::{add_node, conv_operands, explicit_pads, get_const, pair, Ctx};
use crate::import::{ImportError, Importer};

/// Grouped weights `[cin, cout_g, kh, kw]` as one group's `[cin, cout_g · group, kh, kw]`: input channel `i`
/// of group `i / (cin / group)` keeps its taps at that group's output channels, zeros elsewhere.
fn block_diagonal(w: &[f32], ws: &[usize], group: usize) -> Vec<f32> {
    let (cin, cout_g, taps) = (ws[0], ws[1], ws[2] * ws[3]);
    let cin_g = cin / group;
    let mut out = vec![0f32; cin * cout_g * group * taps];
    for i in 0..cin {
        let g = i / cin_g;
        let src = &w[i * cout_g * taps..][..cout_g * taps];
        out[(i * group + g) * cout_g * taps..][..cout_g * taps].copy_from_slice(src);
    }
    out
}

pub(crate) fn import(imp: &mut Importer, cx: &Ctx) -> Result<(), ImportError> {
    let (s, mut ws, mut ins) = conv_operands(imp, cx, "transposed convolutions")?;
    let group = cx.int("group", 1);
    if group < 1 || ws[0] % group as usize != 0 {
        return Err(cx.err(format!(
            "group {group}: the weight's {} input channels must split into that many groups",
            ws[0]
        )));
    }
    let group = group as usize;
    if group > 1 {
        let w = get_const(imp, cx, 1)?
            .ok_or_else(|| cx.err("weight is missing"))?
            .to_f32();
        let name = imp.g.tensors[ins[1]].name.clone();
        let data = block_diagonal(&w, &ws, group);
        ws[1] *= group;
        ins[1] = imp.g.add_tensor(name, ws.clone(), Some(data));
    }
    let k = [ws[2], ws[3]];
    let strides = pair(cx, "strides", 1)?;
    let dilations = pair(cx, "dilations", 1)?;
    let output_padding = match cx.ints("output_padding") {
        None => [0, 0],
        Some(v) if v.len() == 2 && v.iter().all(|&p| p >= 0) => [v[0] as usize, v[1] as usize],
        Some(v) => return Err(cx.err(format!("output_padding {v:?}: expected two values >= 0"))),
    };
    // the full output before cropping, per spatial axis
    let full: Vec<usize> = (0..2)
        .map(|a| (s[a + 2] - 1) * strides[a] + dilations[a] * (k[a] - 1) + 1 + output_padding[a])
        .collect();
    let auto = cx.string("auto_pad", "NOTSET");
    let target = match (auto.as_str(), cx.ints("output_shape")) {
        (_, Some(o)) => {
            let o = if o.len() == 4 { o[2..].to_vec() } else { o };
            if o.len() != 2 || o.iter().any(|&v| v <= 0) {
                return Err(cx.err(format!("output_shape {o:?}: expected two sizes")));
            }
            Some([o[0] as usize, o[1] as usize])
        }
        ("SAME_UPPER" | "SAME_LOWER", None) => Some([s[2] * strides[0], s[3] * strides[1]]),
        ("NOTSET" | "VALID", None) => None,
        (other, None) => return Err(cx.err(format!("auto_pad {other:?} is not supported"))),
    };
    let pads = match target {
        // ONNX: SAME_UPPER puts the smaller half first, every other mode the larger
        Some(t) => {
            let mut pads = [0; 4];
            for a in 0..2 {
                let total = full[a].checked_sub(t[a]).ok_or_else(|| {
                    cx.err(format!(
                        "output size {:?} is larger than the {} rows or columns the kernel reaches",
                        t, full[a]
                    ))
                })?;
                let (small, big) = (total / 2, total - total / 2);
                (pads[a], pads[a + 2]) = if auto == "SAME_UPPER" {
                    (small, big)
                } else {
                    (big, small)
                };
            }
            pads
        }
        None if auto == "VALID" => [0; 4],
        None => explicit_pads(cx)?,
    };
    add_node(
        imp,
        cx,
        ConvTranspose {
            strides,
            pads,
            dilations,
            output_padding,
            group,
        }
        .into(),
        ins,
    )
}
