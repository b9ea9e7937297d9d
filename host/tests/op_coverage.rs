//! Every op of the IR has an entry in every layer: an ONNX import that produces it, a reference kernel and a
//! QNN lowering (which may refuse some attributes or precisions, saying why). The reference and QNN lists
//! are also checked by the compiler: their dispatch matches every op, so a missing entry does not build.

use amp_device::backend::{qnn, reference};
use amp_device::ir::OpKind;
use amp_host::import::ops::REGISTRY;

#[test]
fn every_ir_op_has_an_import_a_reference_kernel_and_a_qnn_lowering() {
    let mut missing = Vec::new();
    for &k in OpKind::ALL {
        if !REGISTRY.iter().any(|e| e.produces.contains(&k)) {
            missing.push(format!("{}: no ONNX import produces it", k.name()));
        }
        if !reference::KERNELS.contains(&k) {
            missing.push(format!("{}: no reference kernel", k.name()));
        }
        if !qnn::LOWERINGS.contains(&k) {
            missing.push(format!("{}: no QNN lowering", k.name()));
        }
    }
    assert!(missing.is_empty(), "{missing:#?}");
}

#[test]
fn each_layer_lists_each_op_once_and_the_importer_each_onnx_op_once() {
    for (layer, list) in [("reference", reference::KERNELS), ("qnn", qnn::LOWERINGS)] {
        let mut sorted = list.to_vec();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), list.len(), "{layer} lists an op twice");
        assert_eq!(
            sorted.len(),
            OpKind::ALL.len(),
            "{layer} lists an op the IR lacks"
        );
    }
    let mut names: Vec<&str> = REGISTRY.iter().map(|e| e.onnx).collect();
    let n = names.len();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), n, "an ONNX op is registered twice");
}
