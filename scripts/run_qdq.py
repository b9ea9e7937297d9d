"""Runs a QDQ ONNX model (from `amp-host export --format qdq`) in onnxruntime, as users deploy it.

    python scripts/run_qdq.py MODEL INPUTS.npz OUT.npz [--ep cpu|qnn] [--htp-arch 73]

Checks the model with onnx.checker (full check, shapes inferred), then runs `inputs` of INPUTS.npz through
it in the model's fixed batch size and writes every output, named as in the model, to OUT.npz (the samples
that fill whole batches). `--ep qnn` runs on onnxruntime's QNN execution provider with the HTP backend
(onnxruntime-qnn; on x86_64 the HTP emulator) and CPU fallback disabled, so every node runs on HTP or the
session fails naming the nodes. Prints one JSON line: the provider, the number of samples and, when
INPUTS.npz holds `labels`, the top-1 accuracy of the first output.
"""

import argparse
import json
import sys

import numpy as np
import onnx
import onnxruntime as ort


def session(path, ep, htp_arch):
    so = ort.SessionOptions()
    if ep == "cpu":
        return ort.InferenceSession(path, sess_options=so, providers=["CPUExecutionProvider"])
    import onnxruntime_qnn

    ort.register_execution_provider_library("QNNExecutionProvider", onnxruntime_qnn.get_library_path())
    devices = [d for d in ort.get_ep_devices() if d.ep_name == "QNNExecutionProvider"]
    if not devices:
        sys.exit("onnxruntime lists no QNN execution provider device")
    so.add_session_config_entry("session.disable_cpu_ep_fallback", "1")
    so.add_provider_for_devices(
        devices, {"backend_path": onnxruntime_qnn.get_qnn_htp_path(), "htp_arch": str(htp_arch)}
    )
    # onnxruntime's DoubleQDQPairsRemover merges a requantizing DequantizeLinear -> QuantizeLinear pair into
    # the QuantizeLinear before it, so the op writing that tensor (a nearest Resize before a Concat) gets an
    # output encoding unlike its input's, which HTP does not requantize: measured on silu_resize_concat at
    # a8w8, 121 LSB with it and 1 LSB without (tests/qdq.rs)
    return ort.InferenceSession(path, sess_options=so, disabled_optimizers=["DoubleQDQPairsRemover"])


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("out")
    ap.add_argument("--ep", choices=["cpu", "qnn"], default="cpu")
    ap.add_argument("--htp-arch", type=int, default=73)
    a = ap.parse_args()
    onnx.checker.check_model(onnx.load(a.model), full_check=True)
    s = session(a.model, a.ep, a.htp_arch)
    data = np.load(a.inputs)
    ins = s.get_inputs()
    # one array per model input, named as the input; a single-input model's may be `inputs`
    xs = {i.name: data[i.name if i.name in data.files else "inputs"].astype(
        np.int64 if i.type == "tensor(int64)" else np.int32 if i.type == "tensor(int32)" else np.float32)
        for i in ins}
    count = len(next(iter(xs.values())))
    b = ins[0].shape[0] if isinstance(ins[0].shape[0], int) else count
    n = count // b * b
    names = [o.name for o in s.get_outputs()]
    runs = [s.run(None, {k: v[i : i + b] for k, v in xs.items()}) for i in range(0, n, b)]
    out = {name: np.concatenate([r[k] for r in runs]) for k, name in enumerate(names)}
    np.savez(a.out, **out)
    report = {"provider": s.get_providers()[0], "samples": n}
    labels = data.get("labels")
    if labels is not None:
        first = out[names[0]].reshape(n, -1)
        report["top1"] = float((first.argmax(1) == labels[:n]).mean())
    print(json.dumps(report))


if __name__ == "__main__":
    main()
