"""Evaluates a QDQ ONNX model (from `amp-host export --format qdq`) in float64 with numpy: the graph's own
arithmetic, exact up to f64 rounding, as a yardstick for onnxruntime's float32 evaluation of it.

    python scripts/qdq_f64.py MODEL INPUTS.npz OUT.npz

INPUTS.npz holds one array per model input, named as the input (`inputs` for a single-input model). Runs
them in the model's fixed batch size and writes every output, named as in the model, to OUT.npz (the
samples that fill whole batches). DequantizeLinear and QuantizeLinear follow the ONNX definitions (round
half to even, saturate); every other op is computed in float64. Covers the ops of amp's MiniLM exports
(examples/minilm); any other op stops the script, naming the node.
"""

import argparse
import math
import sys

import numpy as np
import onnx
from onnx import helper, numpy_helper

ERF = np.vectorize(math.erf, otypes=[np.float64])


def per_axis(p, x, axis):
    """A per-channel scale or zero point `p`, shaped to broadcast along `axis` of `x`."""
    if p.ndim == 1 and x.ndim > 1:
        shape = [1] * x.ndim
        shape[axis] = -1
        return p.reshape(shape)
    return p


def dequantize(x, s, z, axis):
    z = np.zeros((), np.int64) if z is None else z.astype(np.int64)
    return (x.astype(np.int64) - per_axis(z, x, axis)) * per_axis(s.astype(np.float64), x, axis)


def quantize(x, s, z, axis):
    info = np.iinfo(z.dtype)
    q = np.round(x / per_axis(s.astype(np.float64), x, axis)) + per_axis(z.astype(np.int64), x, axis)
    return np.clip(q, info.min, info.max).astype(z.dtype)


def layer_norm(x, scale, bias, axis, eps):
    axes = tuple(range(axis % x.ndim, x.ndim))
    mean = x.mean(axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + (0 if bias is None else bias)


def softmax(x, axis):
    e = np.exp(x - x.max(axis, keepdims=True))
    return e / e.sum(axis, keepdims=True)


def gemm(a, b, c, at):
    a = a.T if at.get("transA", 0) else a
    b = b.T if at.get("transB", 0) else b
    y = at.get("alpha", 1.0) * (a @ b)
    return y if c is None else y + at.get("beta", 1.0) * c


def reshape(x, shape):
    return x.reshape([x.shape[i] if d == 0 else d for i, d in enumerate(shape)])


def cast(x, to):
    dtype = helper.tensor_dtype_to_np_dtype(to)
    return x.astype(np.float64 if np.issubdtype(dtype, np.floating) else dtype)


def gelu(x, approximate):
    if approximate not in (b"none", "none"):
        sys.exit(f"Gelu approximate={approximate!r} is not covered")
    return 0.5 * x * (1 + ERF(x / math.sqrt(2)))


def reduce_sum(x, axes, keepdims):
    return x.sum(None if axes is None else tuple(axes), keepdims=bool(keepdims))


OPS = {
    "DequantizeLinear": lambda x, at: dequantize(x[0], x[1], x[2] if len(x) > 2 else None, at.get("axis", 1)),
    "QuantizeLinear": lambda x, at: quantize(x[0], x[1], x[2], at.get("axis", 1)),
    "Reshape": lambda x, at: reshape(x[0], x[1]),
    "Transpose": lambda x, at: x[0].transpose(at["perm"]),
    "Gemm": lambda x, at: gemm(x[0], x[1], x[2] if len(x) > 2 else None, at),
    "MatMul": lambda x, at: x[0] @ x[1],
    "Add": lambda x, at: x[0] + x[1],
    "Sub": lambda x, at: x[0] - x[1],
    "Mul": lambda x, at: x[0] * x[1],
    "Div": lambda x, at: x[0] / x[1],
    "Softmax": lambda x, at: softmax(x[0], at.get("axis", -1)),
    "Gelu": lambda x, at: gelu(x[0], at.get("approximate", "none")),
    "LayerNormalization": lambda x, at: layer_norm(
        x[0], x[1], x[2] if len(x) > 2 else None, at.get("axis", -1), at.get("epsilon", 1e-5)
    ),
    "ReduceSum": lambda x, at: reduce_sum(x[0], x[1] if len(x) > 1 else None, at.get("keepdims", 1)),
    "Cast": lambda x, at: cast(x[0], at["to"]),
    "Gather": lambda x, at: np.take(x[0], x[1], axis=at.get("axis", 0)),
}


def wide(a):
    return a.astype(np.float64) if a.dtype.kind == "f" else a


def run(graph, constants, feed):
    env = dict(constants)
    env.update(feed)
    for node in graph.node:
        op = OPS.get(node.op_type)
        if op is None:
            sys.exit(f"node {node.name!r}: {node.op_type} is not covered by this evaluator")
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        env[node.output[0]] = op([env[i] if i else None for i in node.input], attrs)
    return {o.name: env[o.name] for o in graph.output}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("inputs")
    ap.add_argument("out")
    a = ap.parse_args()
    graph = onnx.load(a.model).graph
    constants = {i.name: wide(numpy_helper.to_array(i)) for i in graph.initializer}
    data = np.load(a.inputs)
    xs = {i.name: wide(data[i.name if i.name in data.files else "inputs"]) for i in graph.input}
    count = len(next(iter(xs.values())))
    batch = graph.input[0].type.tensor_type.shape.dim[0].dim_value or count
    runs = [
        run(graph, constants, {k: v[i : i + batch] for k, v in xs.items()})
        for i in range(0, count // batch * batch, batch)
    ]
    np.savez(a.out, **{k: np.concatenate([r[k] for r in runs]) for k in runs[0]})


if __name__ == "__main__":
    main()
