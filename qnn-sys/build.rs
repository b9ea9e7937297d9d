//! With `QNN_SDK_ROOT` set, runs bindgen on the SDK's headers into `OUT_DIR/sdk.rs` (never into the
//! repository) and enables the `qnn_sdk` cfg, under which a test compares the sizes and field offsets of
//! amp's own declarations with the SDK's. Without it, does nothing.

fn main() {
    println!("cargo:rerun-if-env-changed=QNN_SDK_ROOT");
    println!("cargo::rustc-check-cfg=cfg(qnn_sdk)");
    let Some(root) = std::env::var_os("QNN_SDK_ROOT") else {
        return;
    };
    let inc = std::path::Path::new(&root).join("include/QNN");
    let out = std::path::PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    let bindings = bindgen::Builder::default()
        .header(inc.join("QnnInterface.h").display().to_string())
        .header(inc.join("HTP/QnnHtpDevice.h").display().to_string())
        .clang_arg(format!("-I{}", inc.display()))
        .allowlist_type("QnnInterface_t|Qnn_Tensor_t|Qnn_TensorV1_t|Qnn_QuantizeParams_t|Qnn_Param_t|Qnn_OpConfig_t|Qnn_Scalar_t|QnnProfile_EventData_t|QnnDevice_Config_t|QnnHtpDevice_CustomConfig_t")
        .layout_tests(false)
        .generate()
        .expect("bindgen on QNN_SDK_ROOT/include/QNN (needs libclang-dev)");
    bindings
        .write_to_file(out.join("sdk.rs"))
        .expect("writing bindings");
    println!("cargo:rustc-cfg=qnn_sdk");
}
