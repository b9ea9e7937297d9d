//! Against Qualcomm's real libQnnHtp.so (x86_64 HTP emulation, from `scripts/fetch-qnn-runtime.sh`). These
//! tests fail, not skip, when the library is missing.

use std::path::{Path, PathBuf};

use qnn_sys::*;

fn htp() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../qnn-runtime/lib");
    locate_htp(Some(&dir)).expect("libQnnHtp.so: run scripts/fetch-qnn-runtime.sh first")
}

#[test]
fn loads_the_htp_provider_and_reports_versions() {
    let lib = Library::load(&htp()).unwrap();
    assert_eq!(lib.backend_id, 6);
    assert_eq!(lib.provider_name, "HTP_QTI_AISW");
    assert_eq!((lib.core_api.major, lib.core_api.minor), (2, 40));
    assert_eq!((lib.backend_api.major, lib.backend_api.minor), (5, 51));
    assert!(lib.build_id().unwrap().starts_with("v2.51.0"));
}

#[test]
fn missing_and_foreign_libraries_are_clear_errors() {
    let e = Library::load(Path::new("/nonexistent/libQnnHtp.so"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("/nonexistent/libQnnHtp.so"), "{e}");
    let e = Library::load(Path::new("libm.so.6"))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not a QNN backend library"), "{e}");
    let e = locate_in(
        "libQnnHtp.so",
        &[PathBuf::from("/nowhere"), PathBuf::from("/elsewhere")],
    )
    .err()
    .unwrap()
    .to_string();
    assert!(
        e.contains("/nowhere/libQnnHtp.so, /elsewhere/libQnnHtp.so")
            && e.contains("fetch-qnn-runtime.sh"),
        "{e}"
    );
}

/// u8 [1,6,6,4] → Conv2d 3×3 pad 1 (s8 weights HWIO, s32 bias) → u8, against the integer definition.
#[test]
fn conv2d_a8w8_runs_within_one_lsb() {
    let lib = Library::load(&htp()).unwrap();
    let backend = Backend::new(lib).unwrap();
    let device = Device::htp(backend.clone(), 73).unwrap();
    let profile = Profile::basic(backend.clone()).unwrap();
    let ctx = Context::new(backend, Some(device)).unwrap();
    let g = Graph::new(ctx, "conv").unwrap();
    let (h, w, ci, co) = (6usize, 6usize, 4usize, 4usize);
    let (s_in, s_w, s_out, o_in, o_out) = (0.02f32, 0.01f32, 0.05f32, -10i32, -128i32);
    let x: Vec<u8> = (0..h * w * ci).map(|i| ((i * 37) % 251) as u8).collect();
    let wq: Vec<i8> = (0..9 * ci * co)
        .map(|i| ((i * 13) % 61) as i8 - 30)
        .collect();
    let bias: Vec<i32> = (0..co as i32).map(|c| c * 50 - 80).collect();
    let inp = g
        .tensor(&TensorSpec::input(
            "x",
            DATATYPE_UFIXED_POINT_8,
            &[1, 6, 6, 4],
            Quant::scale_offset(s_in, o_in),
        ))
        .unwrap();
    let wb: Vec<u8> = wq.iter().map(|&v| v as u8).collect();
    let wt = g
        .tensor(&TensorSpec::constant(
            "w",
            DATATYPE_SFIXED_POINT_8,
            &[3, 3, 4, 4],
            Quant::scale_offset(s_w, 0),
            &wb,
        ))
        .unwrap();
    let bb: Vec<u8> = bias.iter().flat_map(|v| v.to_le_bytes()).collect();
    let bt = g
        .tensor(&TensorSpec::constant(
            "b",
            DATATYPE_SFIXED_POINT_32,
            &[4],
            Quant::scale_offset(s_in * s_w, 0),
            &bb,
        ))
        .unwrap();
    let out = g
        .tensor(&TensorSpec::output(
            "y",
            DATATYPE_UFIXED_POINT_8,
            &[1, 6, 6, 4],
            Quant::scale_offset(s_out, o_out),
        ))
        .unwrap();
    g.node(
        "conv",
        "Conv2d",
        &[
            ParamSpec::U32Tensor("stride", vec![2], vec![1, 1]),
            ParamSpec::U32Tensor("pad_amount", vec![2, 2], vec![1, 1, 1, 1]),
        ],
        &[inp, wt, bt],
        &[out],
    )
    .unwrap();
    g.finalize(None).unwrap();
    let mut y = vec![0u8; h * w * co];
    g.execute(&[(inp, &x)], &mut [(out, &mut y)], Some(&profile))
        .unwrap();
    assert!(profile
        .event_us(PROFILE_EVENTTYPE_EXECUTE)
        .unwrap()
        .is_some());
    let mut max = 0i32;
    for oy in 0..h {
        for ox in 0..w {
            for c in 0..co {
                let mut acc = bias[c] as i64;
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = (oy as i64 + ky - 1, ox as i64 + kx - 1);
                        if iy < 0 || ix < 0 || iy >= h as i64 || ix >= w as i64 {
                            continue;
                        }
                        for k in 0..ci {
                            let a =
                                x[(iy as usize * w + ix as usize) * ci + k] as i64 + o_in as i64;
                            acc +=
                                a * wq[((ky as usize * 3 + kx as usize) * ci + k) * co + c] as i64;
                        }
                    }
                }
                let real = acc as f64 * s_in as f64 * s_w as f64;
                let q = ((real / s_out as f64).round() - o_out as f64).clamp(0.0, 255.0) as i32;
                max = max.max((q - y[(oy * w + ox) * co + c] as i32).abs());
            }
        }
    }
    assert!(max <= 1, "max |diff| {max} LSB");
}

#[test]
fn a_rejected_op_config_is_an_error_naming_the_node() {
    let lib = Library::load(&htp()).unwrap();
    let backend = Backend::new(lib).unwrap();
    let ctx = Context::new(backend, None).unwrap();
    let g = Graph::new(ctx, "bad").unwrap();
    let q = Quant::ScaleOffset {
        scale: 0.1,
        offset: 0,
    };
    let a = g
        .tensor(&TensorSpec::input(
            "a",
            DATATYPE_UFIXED_POINT_8,
            &[1, 4, 4, 2],
            q.clone(),
        ))
        .unwrap();
    // A8W16 (u8 activations, s16 weights) is not an HTP Conv2d config
    let w = vec![0u8; 2 * 2 * 2 * 2 * 2];
    let wt = g
        .tensor(&TensorSpec::constant(
            "w",
            DATATYPE_SFIXED_POINT_16,
            &[2, 2, 2, 2],
            Quant::scale_offset(0.001, 0),
            &w,
        ))
        .unwrap();
    let y = g
        .tensor(&TensorSpec::output(
            "y",
            DATATYPE_UFIXED_POINT_8,
            &[1, 3, 3, 2],
            q,
        ))
        .unwrap();
    let e = g
        .node(
            "conv_a8w16",
            "Conv2d",
            &[
                ParamSpec::U32Tensor("stride", vec![2], vec![1, 1]),
                ParamSpec::U32Tensor("pad_amount", vec![2, 2], vec![0, 0, 0, 0]),
            ],
            &[a, wt],
            &[y],
        )
        .expect_err("A8W16 must be rejected")
        .to_string();
    assert!(
        e.contains("backendValidateOpConfig") && e.contains("conv_a8w16"),
        "{e}"
    );
}
