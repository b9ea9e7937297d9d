#!/usr/bin/env python3
"""Make one-op (or few-op) ONNX models and their onnxruntime fixtures, for ops the examples do not cover.

Run by hand (not in CI), from the repository root, with the venv of scripts/make_examples.py:

    /tmp/amp-py/bin/python scripts/make_op_fixtures.py [CASE ...]

Writes, for each CASE, tests/fixtures/ops/CASE/:
  model.onnx    the model, opset 13
  fixture.npz   inputs (S, ...), calib (C, ...): deterministic uniform inputs (a model of several inputs: one
                array per input, named as the input, and calib_NAME); fp32: onnxruntime's outputs;
                qdq_a8w8 / qdq_a16w8 / qdq_a16w16: onnxruntime's outputs of the QDQ model built with amp's
                encoding rules (scripts/make_examples.py's qdq_model)
  stats.json    min/max of every tensor over `calib`
host/tests/onnxruntime_ops.rs checks the reference backend against them.
"""
import json
import zlib
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_examples as mx  # noqa: E402

ROOT = mx.ROOT
SAMPLES, CALIB = 16, 48


def model(name, nodes, inits, in_shape, out_name, out_shape, opset=13, inputs=None):
    """A one-input model (`x` of `in_shape`), or one with `inputs`: {name: per-sample shape, or (shape, element
    type) for an integer input}."""
    inputs = inputs or {"x": in_shape}
    typed = {k: v if isinstance(v, tuple) else (v, TensorProto.FLOAT) for k, v in inputs.items()}
    g = helper.make_graph(nodes, name, [helper.make_tensor_value_info(k, t, ["N", *s])
                                        for k, (s, t) in typed.items()],
                          [helper.make_tensor_value_info(out_name, TensorProto.FLOAT, ["N", *out_shape])],
                          [numpy_helper.from_array(v if isinstance(v, np.ndarray) and v.dtype in (np.int64, np.bool_)
                                                   else np.asarray(v, np.float32), k) for k, v in inits.items()])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="amp-make-op-fixtures")
    m.ir_version = 8
    onnx.checker.check_model(m)
    return m


def mask_model(name, to_bias, fill):
    """Scores `x` plus the bias an int64 `mask` makes (unsqueezed, cast to float, inverted: `pad`), through
    `to_bias` (nodes from `pad` to `bias`, reading the constant `fill`, -30), then Softmax over the keys."""
    return model(name, [
        helper.make_node("Unsqueeze", ["mask", "axis1"], ["m1"], name="mask/unsqueeze"),
        helper.make_node("Cast", ["m1"], ["mf"], name="mask/cast", to=TensorProto.FLOAT),
        helper.make_node("Sub", ["one", "mf"], ["pad"], name="mask/pad"),
        *to_bias,
        helper.make_node("Add", ["x", "bias"], ["s"], name="masked"),
        helper.make_node("Softmax", ["s"], ["y"], name="probs", axis=-1),
    ], {"axis1": np.array([1], np.int64), "one": np.array(1.0, np.float32), fill: np.array(-30.0, np.float32)},
        None, "y", [2, 8], inputs={"x": [2, 8], "mask": ([8], TensorProto.INT64)})


def cases():
    rng = np.random.default_rng(2024)
    c = rng.uniform(0.2, 2.5, (1, 8, 1, 1)).astype(np.float32)
    floor = rng.uniform(-1.5, 0.5, (1, 8, 1, 1)).astype(np.float32)
    out = {}
    # a per-channel ceiling after a Relu (a clipped MobileNet's ReLU6 with per-channel bounds)
    out["relu_min_per_channel"] = model("relu_min_per_channel", [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Min", ["r", "ceiling"], ["y"], name="min"),
    ], {"ceiling": c}, [8, 6, 6], "y", [8, 6, 6])
    out["max_per_channel_floor"] = model("max_per_channel_floor", [
        helper.make_node("Max", ["x", "floor"], ["y"], name="max"),
    ], {"floor": floor}, [8, 6, 6], "y", [8, 6, 6])
    out["min_scalar"] = model("min_scalar", [
        helper.make_node("Min", ["x", "s"], ["y"], name="min"),
    ], {"s": np.array([0.75], np.float32)}, [8, 6, 6], "y", [8, 6, 6])
    # the larger of two branches of the same input
    out["max_of_two_branches"] = model("max_of_two_branches", [
        helper.make_node("Mul", ["x", "k"], ["a"], name="scale"),
        helper.make_node("Add", ["x", "b"], ["b2"], name="shift"),
        helper.make_node("Max", ["a", "b2"], ["y"], name="max"),
    ], {"k": np.array([-0.5], np.float32), "b": c * 0.5}, [8, 6, 6], "y", [8, 6, 6])
    # the element-wise ops of transformers: Gelu as opset 20 writes it and as exporters decompose it (Erf),
    # an RMS-style norm (Pow 2, ReduceMean, Pow 0.5, Reciprocal), and Neg, Abs, Sqrt, Exp
    out["gelu"] = model("gelu", [
        helper.make_node("Gelu", ["x"], ["y"], name="gelu"),
    ], {}, [8, 6, 6], "y", [8, 6, 6], opset=20)
    out["gelu_erf"] = model("gelu_erf", [
        helper.make_node("Div", ["x", "sqrt2"], ["s"], name="scale"),
        helper.make_node("Erf", ["s"], ["e"], name="erf"),
        helper.make_node("Add", ["e", "one"], ["e1"], name="plus_one"),
        helper.make_node("Mul", ["x", "e1"], ["xe"], name="times_x"),
        helper.make_node("Mul", ["xe", "half"], ["y"], name="half"),
    ], {"sqrt2": np.array([np.sqrt(2.0)], np.float32), "one": np.array([1.0], np.float32),
        "half": np.array([0.5], np.float32)}, [8, 6, 6], "y", [8, 6, 6])
    out["rms_norm"] = model("rms_norm", [
        helper.make_node("Pow", ["x", "two"], ["sq"], name="square"),
        helper.make_node("ReduceMean", ["sq"], ["ms"], name="mean", axes=[1], keepdims=1),
        helper.make_node("Pow", ["ms", "half"], ["rms"], name="root"),
        helper.make_node("Reciprocal", ["rms"], ["inv"], name="inverse"),
        helper.make_node("Mul", ["x", "inv"], ["y"], name="normalise"),
    ], {"two": np.array(2.0, np.float32), "half": np.array(0.5, np.float32)}, [8, 6, 6], "y", [8, 6, 6])
    out["neg_abs_sqrt_exp"] = model("neg_abs_sqrt_exp", [
        helper.make_node("Neg", ["x"], ["n"], name="neg"),
        helper.make_node("Abs", ["n"], ["a"], name="abs"),
        helper.make_node("Sqrt", ["a"], ["r"], name="sqrt"),
        helper.make_node("Neg", ["r"], ["nr"], name="neg_root"),
        helper.make_node("Exp", ["nr"], ["y"], name="exp"),
    ], {}, [8, 6, 6], "y", [8, 6, 6])
    # LayerNorm over the last axis of a [T, D] sequence, as opset 17 writes it and as exporters decompose
    # it; the decomposed one is fused to one LayerNorm as QNN's converter fuses it, so its QDQ oracle is the
    # fused model's (gamma ones and beta zeros: exact at every width, so amp's operand rules do not enter)
    ln_inits = {"gamma": np.ones(16, np.float32), "beta": np.zeros(16, np.float32)}
    out["layer_norm"] = model("layer_norm", [
        helper.make_node("LayerNormalization", ["x", "gamma", "beta"], ["y"], name="ln", axis=-1,
                         epsilon=1e-5),
    ], ln_inits, [6, 16], "y", [6, 16], opset=17)
    out["layer_norm_decomposed"] = model("layer_norm_decomposed", [
        helper.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[-1], keepdims=1),
        helper.make_node("Sub", ["x", "m"], ["d"], name="centre"),
        helper.make_node("Pow", ["d", "two"], ["d2"], name="square"),
        helper.make_node("ReduceMean", ["d2"], ["v"], name="variance", axes=[-1], keepdims=1),
        helper.make_node("Add", ["v", "eps"], ["ve"], name="plus_eps"),
        helper.make_node("Sqrt", ["ve"], ["s"], name="std"),
        helper.make_node("Div", ["d", "s"], ["n"], name="normalise"),
        helper.make_node("Mul", ["n", "gamma"], ["g"], name="gamma"),
        helper.make_node("Add", ["g", "beta"], ["y"], name="beta"),
    ], {"two": np.array(2.0, np.float32), "eps": np.array(1e-5, np.float32), **ln_inits}, [6, 16], "y",
        [6, 16])
    # InstanceNorm over each channel's spatial values (style transfer, GAN generators, some segmenters),
    # with a scale and bias per channel
    out["instance_norm"] = model("instance_norm", [
        helper.make_node("InstanceNormalization", ["x", "scale", "bias"], ["y"], name="in", epsilon=1e-5),
    ], {"scale": np.array([0.5, -1.25, 2.0, 1.0], np.float32),
        "bias": np.array([0.1, -0.3, 0.0, 0.75], np.float32)}, [4, 6, 6], "y", [4, 6, 6])
    # YOLOX's Focus: the four phases of every other row and column, stacked on channels
    i64 = lambda *v: np.array(v, np.int64)  # noqa: E731
    focus_inits = {"z": i64(0), "o": i64(1), "end": i64(2 ** 62), "h": i64(2), "w": i64(3), "two": i64(2)}
    focus = []
    for k, (r, c) in enumerate(((0, 0), (1, 0), (0, 1), (1, 1))):
        rs, cs = ("z", "o")[r], ("z", "o")[c]
        focus += [helper.make_node("Slice", ["x", rs, "end", "h", "two"], [f"r{k}"], name=f"rows{k}"),
                  helper.make_node("Slice", [f"r{k}", cs, "end", "w", "two"], [f"p{k}"], name=f"cols{k}")]
    focus.append(helper.make_node("Concat", [f"p{k}" for k in range(4)], ["y"], name="stack", axis=1))
    out["slice_focus"] = model("slice_focus", focus, focus_inits, [3, 8, 8], "y", [12, 4, 4])
    # a reversed, clipped window of the channels and a Split whose halves gate each other (a GLU)
    out["slice_reverse"] = model("slice_reverse", [
        helper.make_node("Slice", ["x", "s", "e", "a", "st"], ["y"], name="reverse"),
    ], {"s": i64(-2, 1), "e": i64(-2 ** 62, 2 ** 62), "a": i64(1, 3), "st": i64(-3, 2)}, [8, 6, 6], "y", [3, 6, 3])
    out["split_glu"] = model("split_glu", [
        helper.make_node("Split", ["x", "sizes"], ["a", "b"], name="halves", axis=1),
        helper.make_node("Sigmoid", ["b"], ["g"], name="gate"),
        helper.make_node("Mul", ["a", "g"], ["y"], name="glu"),
    ], {"sizes": i64(4, 4)}, [8, 6, 6], "y", [4, 6, 6])
    # YOLOX's PAN: a SiLU upsampled (nearest) and concatenated with a branch of another range; HTP once copied
    # the upsampled codes into the Concat unrequantized (device/src/backend/qnn/ops/concat.rs)
    out["silu_resize_concat"] = model("silu_resize_concat", [
        helper.make_node("MaxPool", ["x"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Sigmoid", ["p"], ["g"], name="gate"),
        helper.make_node("Mul", ["p", "g"], ["silu"], name="silu"),
        helper.make_node("Resize", ["silu", "", "scales"], ["up"], name="upsample", mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
        helper.make_node("Mul", ["x", "two"], ["wide"], name="wide"),
        helper.make_node("Concat", ["up", "wide"], ["y"], name="join", axis=1),
    ], {"scales": np.array([1, 1, 2, 2], np.float32), "two": np.array(2.0, np.float32)}, [32, 8, 8], "y",
        [64, 8, 8])
    # sums over the width (the axes an input since opset 13) and the spread of the channels at each pixel
    out["reduce_sum"] = model("reduce_sum", [
        helper.make_node("ReduceSum", ["x", "axes"], ["y"], name="sum", keepdims=1),
    ], {"axes": i64(3)}, [8, 6, 6], "y", [8, 6, 1])
    out["reduce_max_min"] = model("reduce_max_min", [
        helper.make_node("ReduceMax", ["x"], ["hi"], name="max", axes=[1], keepdims=1),
        helper.make_node("ReduceMin", ["x"], ["lo"], name="min", axes=[1], keepdims=1),
        helper.make_node("Sub", ["hi", "lo"], ["y"], name="spread"),
    ], {}, [8, 6, 6], "y", [1, 6, 6])
    # pixel shuffles: PyTorch's (CRD), and TensorFlow's (DCR) followed by a SpaceToDepth of another block
    out["depth_to_space_crd"] = model("depth_to_space_crd", [
        helper.make_node("DepthToSpace", ["x"], ["y"], name="shuffle", blocksize=2, mode="CRD"),
    ], {}, [8, 6, 6], "y", [2, 12, 12])
    out["depth_space_blocks"] = model("depth_space_blocks", [
        helper.make_node("DepthToSpace", ["x"], ["a"], name="up", blocksize=2, mode="DCR"),
        helper.make_node("SpaceToDepth", ["a"], ["y"], name="down", blocksize=3),
    ], {}, [8, 6, 6], "y", [18, 4, 4])
    # attention-style scores normalised over a middle axis (opset 13: one axis, not flattened)
    out["softmax_middle_axis"] = model("softmax_middle_axis", [
        helper.make_node("Mul", ["x", "t"], ["z"], name="temperature"),
        helper.make_node("Softmax", ["z"], ["y"], name="softmax", axis=1),
    ], {"t": np.array(1.5, np.float32)}, [6, 12], "y", [6, 12])
    # a per-pixel gate broadcast over the channels by Expand, and a map repeated by Tile
    out["expand_tile"] = model("expand_tile", [
        helper.make_node("ReduceMean", ["x"], ["m"], name="mean", axes=[1], keepdims=1),
        helper.make_node("Expand", ["m", "shape"], ["e"], name="broadcast"),
        helper.make_node("Mul", ["x", "e"], ["g"], name="gate"),
        helper.make_node("Tile", ["g", "reps"], ["y"], name="repeat"),
    ], {"shape": i64(1, 8, 1, 1), "reps": i64(1, 1, 2, 1)}, [8, 6, 6], "y", [8, 12, 6])
    # decoder upsampling: PyTorch's ConvTranspose2d(k=2, s=2) then Relu, and (k=3, s=2, padding=1,
    # output_padding=1) with asymmetric stride; a dilated one with uneven pads (HTP's TransposeConv2d has no
    # dilation: amp spreads the kernel with zero taps) and one sized by auto_pad
    w_up = rng.normal(0, 0.3, (8, 4, 2, 2)).astype(np.float32)
    out["conv_transpose_up_relu"] = model("conv_transpose_up_relu", [
        helper.make_node("ConvTranspose", ["x", "w", "b"], ["u"], name="up", kernel_shape=[2, 2],
                         strides=[2, 2]),
        helper.make_node("Relu", ["u"], ["y"], name="relu"),
    ], {"w": w_up, "b": rng.normal(0, 0.2, 4)}, [8, 6, 6], "y", [4, 12, 12])
    w3 = rng.normal(0, 0.25, (8, 5, 3, 3)).astype(np.float32)
    out["conv_transpose_output_padding"] = model("conv_transpose_output_padding", [
        helper.make_node("ConvTranspose", ["x", "w", "b"], ["y"], name="up", kernel_shape=[3, 3],
                         strides=[2, 1], pads=[1, 1, 1, 1], output_padding=[1, 0]),
    ], {"w": w3, "b": rng.normal(0, 0.2, 5)}, [8, 6, 6], "y", [5, 12, 6])
    out["conv_transpose_dilated"] = model("conv_transpose_dilated", [
        helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", kernel_shape=[3, 3],
                         strides=[2, 2], dilations=[2, 1], pads=[0, 1, 2, 0]),
    ], {"w": w3}, [8, 6, 6], "y", [5, 13, 12])
    out["conv_transpose_same"] = model("conv_transpose_same", [
        helper.make_node("ConvTranspose", ["x", "w"], ["y"], name="up", kernel_shape=[3, 3],
                         strides=[2, 2], auto_pad="SAME_UPPER"),
    ], {"w": w3}, [8, 6, 6], "y", [5, 12, 12])
    # a transformer's projection: a Linear over [tokens, features] (MatMul by a constant, then the bias), one
    # Gemm per token row for amp
    out["linear_tokens"] = model("linear_tokens", [
        helper.make_node("MatMul", ["x", "w"], ["p"], name="proj/matmul"),
        helper.make_node("Add", ["p", "b"], ["y"], name="proj"),
    ], {"w": rng.normal(0, 0.3, (8, 6)).astype(np.float32), "b": rng.normal(0, 0.2, 6).astype(np.float32)},
        [5, 8], "y", [5, 6])
    # grouped transposed convolutions: two groups, then one per channel (an FCN's learned bilinear-style
    # upsampling: 4×4 kernels, stride 2, pads 1)
    out["conv_transpose_groups"] = model("conv_transpose_groups", [
        helper.make_node("ConvTranspose", ["x", "wg", "bg"], ["u"], name="up_grouped", kernel_shape=[3, 3],
                         strides=[2, 2], pads=[1, 1, 1, 1], output_padding=[1, 1], group=2),
        helper.make_node("ConvTranspose", ["u", "wd"], ["y"], name="up_depthwise", kernel_shape=[4, 4],
                         strides=[2, 2], pads=[1, 1, 1, 1], group=6),
    ], {"wg": rng.normal(0, 0.3, (8, 3, 3, 3)).astype(np.float32), "bg": rng.normal(0, 0.2, 6),
        "wd": rng.normal(0.25, 0.1, (6, 1, 4, 4)).astype(np.float32)}, [8, 6, 6], "y", [6, 24, 24])
    # one attention step over heads already split: scores = (x/2)·(x + b)ᵀ, softmax over keys, times a
    # scaled x; both products multiply two activations (at 16 bits their second operand is symmetric)
    out["attention_rank4"] = model("attention_rank4", [
        helper.make_node("Mul", ["x", "half"], ["q"], name="scale_q"),
        helper.make_node("Add", ["x", "kb"], ["k"], name="key"),
        helper.make_node("Transpose", ["k"], ["kt"], name="key_t", perm=[0, 1, 3, 2]),
        helper.make_node("MatMul", ["q", "kt"], ["s"], name="scores"),
        helper.make_node("Softmax", ["s"], ["p"], name="softmax", axis=-1),
        helper.make_node("Mul", ["x", "vs"], ["v"], name="value"),
        helper.make_node("MatMul", ["p", "v"], ["y"], name="context"),
    ], {"half": np.array(0.5, np.float32), "kb": rng.normal(0, 0.5, (1, 2, 1, 4)).astype(np.float32),
        "vs": rng.uniform(0.5, 1.5, (1, 2, 1, 4)).astype(np.float32)}, [2, 6, 4], "y", [2, 6, 4])
    # two inputs: an image through a Conv, plus a second input of another range (a skip from elsewhere)
    out["two_inputs_conv_add"] = model("two_inputs_conv_add", [
        helper.make_node("Conv", ["image", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Mul", ["skip", "half"], ["s"], name="scale_skip"),
        helper.make_node("Add", ["c", "s"], ["a"], name="add"),
        helper.make_node("Relu", ["a"], ["y"], name="relu"),
    ], {"w": rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "b": rng.normal(0, 0.2, 4).astype(np.float32),
        "half": np.array([0.5], np.float32)}, None, "y", [4, 6, 6],
        inputs={"image": [3, 6, 6], "skip": [4, 6, 6]})
    # a transformer's embeddings: token ids (an int64 input) look up rows of a table, plus a second float
    # input (position embeddings computed elsewhere), then a LayerNorm
    out["embedding_gather"] = model("embedding_gather", [
        helper.make_node("Gather", ["table", "ids"], ["e"], name="embed", axis=0),
        helper.make_node("Add", ["e", "pos"], ["s"], name="add_pos"),
        helper.make_node("LayerNormalization", ["s", "gamma", "beta"], ["y"], name="norm", axis=-1,
                         epsilon=1e-5),
    ], {"table": rng.normal(0, 0.8, (40, 16)).astype(np.float32),
        "gamma": rng.uniform(0.5, 1.5, 16).astype(np.float32), "beta": rng.normal(0, 0.1, 16).astype(np.float32)},
        None, "y", [6, 16], opset=17, inputs={"ids": ([6], TensorProto.INT64), "pos": [6, 16]})
    # a BERT export's attention mask: int64, unsqueezed and cast to float, turned into an additive bias
    # (0 where a token is, -30 where padding is) on the scores, then Softmax over the keys
    out["attention_mask_cast"] = mask_model("attention_mask_cast", [
        helper.make_node("Mul", ["pad", "masked"], ["bias"], name="mask/bias"),
    ], "masked")
    # a transformers export's attention mask as `masked_fill` writes it: the inverted mask cast to bool
    # selects the fill value (here a finite one) where a key is padding, 0 elsewhere
    out["attention_mask_where"] = mask_model("attention_mask_where", [
        helper.make_node("Cast", ["pad"], ["padb"], name="mask/bool", to=TensorProto.BOOL),
        helper.make_node("Where", ["padb", "fill", "pad"], ["bias"], name="mask/fill"),
    ], "fill")
    # learned position embeddings as a traced export writes them: Range(0, the sequence length, 1) indexes a
    # constant table, added to the tokens (folded to a constant at import)
    out["positions_range"] = model("positions_range", [
        helper.make_node("Range", ["zero_i", "seq", "one_i"], ["ids"], name="pos/range"),
        helper.make_node("Gather", ["table", "ids"], ["pe"], name="pos/lookup", axis=0),
        helper.make_node("Add", ["x", "pe"], ["y"], name="add_pos"),
    ], {"zero_i": np.array(0, np.int64), "seq": np.array(6, np.int64), "one_i": np.array(1, np.int64),
        "table": rng.normal(0, 0.5, (10, 16)).astype(np.float32)}, [6, 16], "y", [6, 16], opset=13)
    # scores filled where the int64 mask is 0 (`scores.masked_fill(mask == 0, fill)`, here a finite fill),
    # then Softmax: the mask read through an Equal, the scores replaced, not added to
    out["scores_masked_fill"] = model("scores_masked_fill", [
        helper.make_node("Unsqueeze", ["mask", "axis1"], ["m1"], name="mask/unsqueeze"),
        helper.make_node("Equal", ["m1", "zero_i"], ["masked"], name="mask/is_padding"),
        helper.make_node("Where", ["masked", "fill", "x"], ["s"], name="mask/fill"),
        helper.make_node("Softmax", ["s"], ["y"], name="probs", axis=-1),
    ], {"axis1": np.array([1], np.int64), "zero_i": np.array(0, np.int64), "fill": np.array(-30.0, np.float32)},
        None, "y", [2, 8], inputs={"x": [2, 8], "mask": ([8], TensorProto.INT64)})
    # a decoder's causal mask, built from constants as exporters trace it (Range, Unsqueeze, Greater, Where:
    # folded at import) and added to the scores before the Softmax
    out["causal_mask"] = model("causal_mask", [
        helper.make_node("Range", ["zero_i", "six_i", "one_i"], ["r"], name="causal/range"),
        helper.make_node("Unsqueeze", ["r", "axis0"], ["cols"], name="causal/cols"),
        helper.make_node("Unsqueeze", ["r", "axis1"], ["rows"], name="causal/rows"),
        helper.make_node("Greater", ["cols", "rows"], ["future"], name="causal/future"),
        helper.make_node("Where", ["future", "fill", "zero"], ["bias"], name="causal/bias"),
        helper.make_node("Add", ["x", "bias"], ["s"], name="masked"),
        helper.make_node("Softmax", ["s"], ["y"], name="probs", axis=-1),
    ], {"zero_i": np.array(0, np.int64), "six_i": np.array(6, np.int64), "one_i": np.array(1, np.int64),
        "axis0": np.array([0], np.int64), "axis1": np.array([1], np.int64),
        "fill": np.array(-30.0, np.float32), "zero": np.array(0.0, np.float32)}, [6, 6], "y", [6, 6])
    # a recognizer's CTC head: class scores per time step, LogSoftmax over the classes
    out["log_softmax"] = model("log_softmax", [
        helper.make_node("LogSoftmax", ["x"], ["y"], name="log_probs", axis=-1),
    ], {}, [12, 6], "y", [12, 6])
    # booleans from a float activation: where a Relu is zero (Equal), its negation (Not) selects the Relu or
    # a constant (Where), and the same booleans as 0 and 1 (Cast to float) are added
    out["equal_not_where"] = model("equal_not_where", [
        helper.make_node("Relu", ["x"], ["r"], name="relu"),
        helper.make_node("Equal", ["r", "zero"], ["z"], name="is_zero"),
        helper.make_node("Not", ["z"], ["nz"], name="not_zero"),
        helper.make_node("Where", ["nz", "r", "low"], ["w"], name="select"),
        helper.make_node("Cast", ["nz"], ["f"], name="as_float", to=TensorProto.FLOAT),
        helper.make_node("Add", ["w", "f"], ["y"], name="add"),
    ], {"zero": np.array(0.0, np.float32), "low": np.array(-0.5, np.float32)}, [4, 6, 6], "y", [4, 6, 6])
    # the four comparisons of activations: with a constant on either side, and of two activations (never
    # within an LSB of each other but where x is near -0.75: near ties of two 16-bit activations on different
    # grids come out either way on HTP, measured with w against x itself)
    out["comparisons"] = model("comparisons", [
        helper.make_node("Greater", ["x", "half"], ["gt"], name="above_half"),
        helper.make_node("Where", ["gt", "x", "low"], ["w"], name="select"),
        helper.make_node("LessOrEqual", ["x", "minus_one"], ["le"], name="at_most_minus_one"),
        helper.make_node("Less", ["zero", "x"], ["lt"], name="positive"),
        helper.make_node("Add", ["x", "quarter"], ["sh"], name="shift"),
        helper.make_node("GreaterOrEqual", ["w", "sh"], ["ge"], name="above_shifted"),
        helper.make_node("Cast", ["le"], ["f1"], name="le_float", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["lt"], ["f2"], name="lt_float", to=TensorProto.FLOAT),
        helper.make_node("Cast", ["ge"], ["f3"], name="ge_float", to=TensorProto.FLOAT),
        helper.make_node("Add", ["w", "f1"], ["s1"], name="add1"),
        helper.make_node("Add", ["f2", "f3"], ["s2"], name="add2"),
        helper.make_node("Add", ["s1", "s2"], ["y"], name="add3"),
    ], {"half": np.array(0.5, np.float32), "low": np.array(-0.5, np.float32),
        "minus_one": np.array(-1.0, np.float32), "zero": np.array(0.0, np.float32),
        "quarter": np.array(0.25, np.float32)}, [4, 6, 6], "y",
        [4, 6, 6])
    # booleans moved and combined, as a padding mask is before it meets the scores: the int64 mask cast to
    # bool, unsqueezed and expanded, then And and Or with a comparison of the scores
    out["bool_moves_and_or"] = model("bool_moves_and_or", [
        helper.make_node("Cast", ["mask"], ["mb"], name="mask/bool", to=TensorProto.BOOL),
        helper.make_node("Unsqueeze", ["mb", "axis1"], ["mu"], name="mask/unsqueeze"),
        helper.make_node("Expand", ["mu", "rows"], ["me"], name="mask/expand"),
        helper.make_node("Greater", ["x", "zero"], ["pos"], name="positive"),
        helper.make_node("And", ["pos", "me"], ["both"], name="both"),
        helper.make_node("Or", ["pos", "mu"], ["any"], name="either"),
        helper.make_node("Where", ["both", "x", "low"], ["w"], name="select"),
        helper.make_node("Cast", ["any"], ["f"], name="either/float", to=TensorProto.FLOAT),
        helper.make_node("Add", ["w", "f"], ["y"], name="add"),
    ], {"axis1": np.array([1], np.int64), "rows": np.array([1, 4, 6], np.int64),
        "zero": np.array(0.0, np.float32), "low": np.array(-0.5, np.float32)},
        None, "y", [4, 6], inputs={"x": [4, 6], "mask": ([6], TensorProto.INT64)})
    # a decoder's causal mask as a constant boolean (GPT-2's `bias` buffer): the condition of a Where that fills
    # the scores, and And-ed with a padding mask
    out["causal_where"] = model("causal_where", [
        helper.make_node("Cast", ["mask"], ["pad"], name="mask/bool", to=TensorProto.BOOL),
        helper.make_node("Unsqueeze", ["pad", "axis1"], ["pu"], name="mask/unsqueeze"),
        helper.make_node("And", ["causal", "pu"], ["keep"], name="keep"),
        helper.make_node("Where", ["keep", "x", "fill"], ["s1"], name="padded"),
        helper.make_node("Softmax", ["s1"], ["p1"], name="padded/probs", axis=-1),
        helper.make_node("Where", ["causal", "x", "fill"], ["s2"], name="causal"),
        helper.make_node("Softmax", ["s2"], ["p2"], name="causal/probs", axis=-1),
        helper.make_node("Add", ["p1", "p2"], ["y"], name="add"),
    ], {"causal": np.tril(np.ones((6, 6), bool)), "axis1": np.array([1], np.int64),
        "fill": np.array(-30.0, np.float32)},
        None, "y", [6, 6], inputs={"x": [6, 6], "mask": ([6], TensorProto.INT64)})
    # a 4-D boolean moved out of and back into image order (NHWC on HTP): flattened, Xor-ed with a comparison
    # of the flattened scores, reshaped back to 4-D and read as Where's condition
    out["bool_flatten_xor"] = model("bool_flatten_xor", [
        helper.make_node("Greater", ["x", "zero"], ["pos"], name="positive"),
        helper.make_node("Flatten", ["pos"], ["pf"], name="positive/flatten", axis=1),
        helper.make_node("Flatten", ["x"], ["xf"], name="flatten", axis=1),
        helper.make_node("Less", ["xf", "half"], ["small"], name="small"),
        helper.make_node("Xor", ["pf", "small"], ["either"], name="either"),
        helper.make_node("Reshape", ["either", "image"], ["ei"], name="either/image"),
        helper.make_node("Where", ["ei", "x", "low"], ["y"], name="select"),
    ], {"zero": np.array(0.0, np.float32), "half": np.array(0.5, np.float32),
        "low": np.array(-0.5, np.float32), "image": np.array([0, 4, 3, 3], np.int64)},
        [4, 3, 3], "y", [4, 3, 3])
    # booleans sliced with a step, tiled back to width and joined to another comparison by a Concat, read as
    # Where's condition over the scores tiled alike
    out["bool_slice_tile_concat"] = model("bool_slice_tile_concat", [
        helper.make_node("Greater", ["x", "zero"], ["pos"], name="positive"),
        helper.make_node("Slice", ["pos", "s0", "s6", "s_axis", "s_step"], ["ps"], name="positive/even"),
        helper.make_node("Tile", ["ps", "twice_w"], ["pt"], name="positive/tile"),
        helper.make_node("Less", ["x", "low"], ["neg"], name="low"),
        helper.make_node("Concat", ["pt", "neg"], ["both"], name="both", axis=1),
        helper.make_node("Tile", ["x", "twice_c"], ["xx"], name="scores/tile"),
        helper.make_node("Where", ["both", "xx", "low"], ["y"], name="select"),
    ], {"zero": np.array(0.0, np.float32), "low": np.array(-0.5, np.float32),
        "s0": np.array([0], np.int64), "s6": np.array([6], np.int64), "s_axis": np.array([3], np.int64),
        "s_step": np.array([2], np.int64), "twice_w": np.array([1, 1, 1, 2], np.int64),
        "twice_c": np.array([1, 2, 1, 1], np.int64)},
        [4, 6, 6], "y", [8, 6, 6])
    return out


ORACLE = {"layer_norm_decomposed": "layer_norm", "gelu_erf": "gelu"}


def write(name, m):
    d = os.path.join(ROOT, "tests", "fixtures", "ops", name)
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.onnx")
    onnx.save(m, path)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    xs = {}
    for gi in m.graph.input:
        shape = [d.dim_param or d.dim_value for d in gi.type.tensor_type.shape.dim][1:]
        if gi.type.tensor_type.elem_type == TensorProto.INT64:
            # token ids: every row of the (first) table; a mask: 0 or 1
            rows = next((numpy_helper.to_array(i).shape[0] for i in m.graph.initializer if i.name == "table"), 2)
            xs[gi.name] = rng.integers(0, rows, (SAMPLES + CALIB, *shape)).astype(np.int64)
        else:
            xs[gi.name] = rng.uniform(-3.0, 3.0, (SAMPLES + CALIB, *shape)).astype(np.float32)
    # a single-input model's samples are `inputs`; several inputs are named as the model names them
    sample = {k: v[:SAMPLES] for k, v in xs.items()}
    calib = {k: v[SAMPLES:] for k, v in xs.items()}
    if len(xs) == 1:
        sample, calib = next(iter(sample.values())), next(iter(calib.values()))
    folded = mx.fold(path, "/tmp/amp_op_folded.onnx")
    stats = mx.all_tensor_stats(folded, calib)
    if name in ORACLE:
        oracle_path = "/tmp/amp_op_oracle.onnx"
        onnx.save(cases()[ORACLE[name]], oracle_path)
        folded = mx.fold(oracle_path, "/tmp/amp_op_folded.onnx")
        stats.update(mx.all_tensor_stats(folded, calib))
    with open(os.path.join(d, "stats.json"), "w") as f:
        json.dump(stats, f, indent=1, sort_keys=True)
    arrays = {"fp32": mx.run(path, sample)}
    if isinstance(sample, dict):
        arrays.update(sample)
        arrays.update({f"calib_{k}": v for k, v in calib.items()})
    else:
        arrays.update(inputs=sample, calib=calib)
    for a, w in ((8, 8), (16, 8), (16, 16)):
        arrays[f"qdq_a{a}w{w}"] = mx.run(mx.qdq_model(folded, stats, a, w), sample)
    np.savez_compressed(os.path.join(d, "fixture.npz"), **arrays)
    print(f"{name}: {SAMPLES} samples, output {arrays['fp32'].shape}")


def main():
    which = sys.argv[1:]
    for name, m in cases().items():
        if not which or name in which:
            write(name, m)


if __name__ == "__main__":
    main()
