#!/usr/bin/env python3
"""The detector example: ddddocr's character detector (`common_det.onnx`, YOLOX-style: a Focus of strided
Slices, SiLU as Sigmoid·Mul, an SPP of MaxPools, nearest Resize, three heads joined into one [1, 3549, 6]
output), with images rendered here and their annotated boxes.

The model ships inside the `ddddocr` wheel on PyPI (20 MB, so nothing of it is committed): the script downloads
the wheel with pip (no install), takes the model out, renders click-captcha-like images (letters and digits
in two DejaVu faces, coloured, outlined and rotated, on blurred colour fields) at 320×320, and preprocesses
them as ddddocr does (letterbox into 416×416 with grey 114, BGR, 0–255 floats). Every box the renderer
draws is kept as an annotation, so mAP@0.5 (examples/metrics/map50.py) is measured against the truth, not
against the FP32 model.

    /tmp/amp-py/bin/python scripts/make_detector.py [OUT]      (OUT: examples/ddddocr_det, git-ignored)

Writes to OUT:
  model.onnx    the detector as shipped
  val.npz       inputs (64, 3, 416, 416) float32; no labels (tune it with a metric of its own)
  boxes.npz     boxes (M, 5): image index, x0, y0, x1, y1 in the 416×416 input's pixels
  fixture.npz   inputs/calib/fp32/qdq_a8w8/qdq_a16w8/qdq_a16w16 (4 samples; stats over 8), as the examples'
  stats.json    fixtures are, for host/tests/detector.rs (run with --ignored once this script has run)
  tensors_aNwM.npz  every quantized tensor of onnxruntime's QDQ model on the first image
  meta.json     mAP@0.5 of onnxruntime FP32 and of its QDQ models on the 64 images
Needs numpy, onnx, onnxruntime and pillow (the venv of scripts/make_examples.py).
"""
import glob
import json
import os
import subprocess
import sys
import tempfile
import zipfile

import numpy as np
import onnx
from PIL import Image, ImageDraw, ImageFilter, ImageFont

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_examples as mx  # noqa: E402

WHEEL = "ddddocr==1.6.1"
SIZE, CANVAS, IMAGES = 416, 320, 64
FIXTURE_SAMPLES, CALIB_SAMPLES = 4, 8
FONTS = ["/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf", "/usr/share/fonts/truetype/dejavu/DejaVuSerif.ttf"]
GLYPHS = [chr(c) for c in [*range(ord("A"), ord("Z") + 1), *range(ord("0"), ord("9") + 1)]]


def fetch_model(out):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", WHEEL, "-d", d],
                       check=True)
        wheel = glob.glob(os.path.join(d, "ddddocr-*.whl"))[0]
        with zipfile.ZipFile(wheel) as z, open(out, "wb") as f:
            f.write(z.read("ddddocr/common_det.onnx"))


def render(rng):
    """One image and the boxes of the glyphs drawn on it (x0, y0, x1, y1, in its own pixels)."""
    field = rng.uniform(60, 230, (4, 4, 3)).astype(np.uint8)
    img = Image.fromarray(field).resize((CANVAS, CANVAS), Image.BICUBIC).filter(ImageFilter.GaussianBlur(8))
    boxes = []
    for _ in range(int(rng.integers(3, 7))):
        size = int(rng.integers(30, 56))
        font = ImageFont.truetype(FONTS[int(rng.integers(len(FONTS)))], size)
        tile = Image.new("RGBA", (size * 2, size * 2), (0, 0, 0, 0))
        colour = tuple(int(v) for v in rng.integers(0, 255, 3)) + (255,)
        ImageDraw.Draw(tile).text((size // 2, size // 3), GLYPHS[int(rng.integers(len(GLYPHS)))], font=font,
                                  fill=colour, stroke_width=2, stroke_fill=(255, 255, 255, 255))
        tile = tile.rotate(float(rng.uniform(-30, 30)), resample=Image.BICUBIC)
        tile = tile.crop(tile.getbbox())
        for _attempt in range(30):
            x = int(rng.integers(0, CANVAS - tile.width))
            y = int(rng.integers(0, CANVAS - tile.height))
            b = (x, y, x + tile.width, y + tile.height)
            if all(b[2] < o[0] or b[0] > o[2] or b[3] < o[1] or b[1] > o[3] for o in boxes):
                img.paste(tile, (x, y), tile)
                boxes.append(b)
                break
    return np.asarray(img.convert("RGB")), boxes


def preprocess(rgb):
    """ddddocr's letterbox: scaled to fit 416×416 at the top left, grey 114 elsewhere, BGR, CHW float."""
    r = min(SIZE / rgb.shape[0], SIZE / rgb.shape[1])
    im = Image.fromarray(rgb).resize((int(rgb.shape[1] * r), int(rgb.shape[0] * r)), Image.BILINEAR)
    out = np.full((SIZE, SIZE, 3), 114, np.uint8)
    out[:im.height, :im.width] = np.asarray(im)[..., ::-1]
    return out.transpose(2, 0, 1).astype(np.float32), r


def run(model, x):
    """onnxruntime's outputs, one sample at a time (the model is exported at batch 1)."""
    return np.concatenate([mx.run(model, x[i:i + 1]) for i in range(len(x))])


def map50(out, outputs):
    metric = os.path.join(mx.ROOT, "examples", "metrics", "map50.py")
    text = subprocess.run([sys.executable, metric, "--boxes", os.path.join(out, "boxes.npz"), outputs],
                          check=True, capture_output=True, text=True).stdout
    return float(text.split()[-1])


def every_tensor(qdq, x):
    """The value of every quantized tensor of the QDQ model on `x` (after its QuantizeLinear/DequantizeLinear
    pair), named as in the model: host/tests/detector.rs feeds each op onnxruntime's own inputs."""
    m = onnx.ModelProto()
    m.CopyFrom(qdq)
    names = [o for n in m.graph.node for o in n.output if o and not o.endswith(("__q", "__pre"))]
    del m.graph.output[:]
    m.graph.output.extend(onnx.helper.make_empty_tensor_value_info(nm) for nm in names)
    so = mx.ort.SessionOptions()
    so.graph_optimization_level = mx.ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    sess = mx.ort.InferenceSession(m.SerializeToString(), so, providers=["CPUExecutionProvider"])
    outs = sess.run(None, {sess.get_inputs()[0].name: x})
    return {o.name: v for o, v in zip(sess.get_outputs(), outs) if v.dtype == np.float32}


def stats(folded, calib):
    """Every tensor's min/max over `calib`, one sample at a time."""
    out = {}
    for i in range(len(calib)):
        for k, (lo, hi) in mx.all_tensor_stats(folded, calib[i:i + 1]).items():
            old = out.get(k, (lo, hi))
            out[k] = [min(lo, old[0]), max(hi, old[1])]
    return out


def main():
    out = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(mx.ROOT, "examples", "ddddocr_det"))
    os.makedirs(out, exist_ok=True)
    model = os.path.join(out, "model.onnx")
    if not os.path.exists(model):
        fetch_model(model)
    rng = np.random.default_rng(416)
    xs, boxes = [], []
    for i in range(IMAGES):
        rgb, bs = render(rng)
        x, r = preprocess(rgb)
        xs.append(x)
        boxes += [[i, *(np.array(b, np.float32) * r)] for b in bs]
    x = np.stack(xs)
    np.savez_compressed(os.path.join(out, "val.npz"), inputs=x)
    np.savez_compressed(os.path.join(out, "boxes.npz"), boxes=np.array(boxes, np.float32))
    fp32 = run(model, x)
    np.savez_compressed("/tmp/amp_det_fp32.npz", output=fp32)
    m = map50(out, "/tmp/amp_det_fp32.npz")
    print(f"{len(boxes)} boxes on {IMAGES} images; onnxruntime FP32 mAP@0.5 {m}", flush=True)

    folded = mx.fold(model, "/tmp/amp_det_folded.onnx")
    ranges = stats(folded, x[:CALIB_SAMPLES])
    with open(os.path.join(out, "stats.json"), "w") as f:
        json.dump(ranges, f, indent=1, sort_keys=True)
    sample = x[:FIXTURE_SAMPLES]
    arrays = {"inputs": sample, "calib": x[:CALIB_SAMPLES], "fp32": fp32[:FIXTURE_SAMPLES]}
    meta = {"source": f"{WHEEL} (ddddocr/common_det.onnx)", "images": IMAGES, "boxes": len(boxes),
            "onnxruntime_fp32_map50": float(m)}
    for a, w in ((8, 8), (16, 8), (16, 16)):
        q = mx.qdq_model(folded, ranges, a, w)
        arrays[f"qdq_a{a}w{w}"] = run(q, sample)
        np.savez_compressed(os.path.join(out, f"tensors_a{a}w{w}.npz"), **every_tensor(q, sample[:1]))
        np.savez_compressed("/tmp/amp_det_q.npz", output=run(q, x))
        meta[f"onnxruntime_qdq_a{a}w{w}_map50"] = map50(out, "/tmp/amp_det_q.npz")
        print(f"onnxruntime QDQ a{a}w{w} mAP@0.5 {meta[f'onnxruntime_qdq_a{a}w{w}_map50']:.4f}", flush=True)
    np.savez_compressed(os.path.join(out, "fixture.npz"), **arrays)
    with open(os.path.join(out, "meta.json"), "w") as f:
        json.dump(meta, f, indent=1)
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
