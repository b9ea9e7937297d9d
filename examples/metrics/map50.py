"""Mean average precision at IoU 0.5 of a YOLOX-style detector, as a metric command:

    amp-host tune --model examples/ddddocr_det/model.onnx --data examples/ddddocr_det/val.npz \\
        --metric-cmd 'python examples/metrics/map50.py --boxes examples/ddddocr_det/boxes.npz'

amp appends the path of an .npz of the model's outputs (one array per output, named as in the model,
samples in --data order). The first output holds raw predictions (N, A, 5 + classes) over the anchor points
of strides 8, 16 and 32 of a square input (`--size`, 416): x and y offsets in cells, log width and height,
objectness, class scores (already through a sigmoid). They are decoded as YOLOX does, kept above score
`--score` (0.1), reduced by greedy NMS at IoU 0.45 per image, and matched to the annotated boxes (`boxes`
(M, 5): image index, x0, y0, x1, y1 in input pixels; one class). Prints the area under the all-point
interpolated precision-recall curve (VOC's AP) as its last line. numpy only."""
import argparse

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--boxes", required=True, help=".npz with `boxes` (M, 5): image, x0, y0, x1, y1")
p.add_argument("--size", type=int, default=416)
p.add_argument("--score", type=float, default=0.1)
p.add_argument("outputs", help="the .npz amp writes")
a = p.parse_args()

out = np.load(a.outputs)
pred = out[out.files[0]].astype(np.float64)
truth = np.load(a.boxes)["boxes"]

grids, strides = [], []
for s in (8, 16, 32):
    n = a.size // s
    gx, gy = np.meshgrid(np.arange(n), np.arange(n))
    grids.append(np.stack([gx, gy], -1).reshape(-1, 2))
    strides.append(np.full((n * n, 1), s))
grid, stride = np.concatenate(grids), np.concatenate(strides)
if pred.shape[1] != len(grid):
    raise SystemExit(f"{pred.shape[1]} predictions per image, but a {a.size}×{a.size} input has {len(grid)}")


def iou(b, bs):
    x0, y0 = np.maximum(b[0], bs[:, 0]), np.maximum(b[1], bs[:, 1])
    x1, y1 = np.minimum(b[2], bs[:, 2]), np.minimum(b[3], bs[:, 3])
    inter = np.clip(x1 - x0, 0, None) * np.clip(y1 - y0, 0, None)
    area = lambda q: (q[..., 2] - q[..., 0]) * (q[..., 3] - q[..., 1])  # noqa: E731
    return inter / (area(b) + area(bs) - inter + 1e-9)


detections = []  # (score, true positive)
for i, p_i in enumerate(pred):
    xy = (p_i[:, :2] + grid) * stride
    wh = np.exp(np.clip(p_i[:, 2:4], -10, 10)) * stride
    boxes = np.concatenate([xy - wh / 2, xy + wh / 2], 1)
    scores = p_i[:, 4] * p_i[:, 5:].max(1)
    keep = scores > a.score
    boxes, scores = boxes[keep], scores[keep]
    order = np.argsort(-scores)
    kept = []
    while len(order):
        kept.append(order[0])
        order = order[1:][iou(boxes[order[0]], boxes[order[1:]]) <= 0.45]
    gt = truth[truth[:, 0] == i][:, 1:]
    used = np.zeros(len(gt), bool)
    for k in kept:
        hit = False
        if len(gt):
            o = iou(boxes[k], gt)
            o[used] = 0
            j = int(np.argmax(o))
            if o[j] >= 0.5:
                used[j] = hit = True
        detections.append((scores[k], hit))

n_true = int((truth[:, 0] < len(pred)).sum())
detections.sort(key=lambda d: -d[0])
tp = np.cumsum([d[1] for d in detections])
fp = np.cumsum([not d[1] for d in detections])
recall = np.concatenate([[0], tp / max(n_true, 1), [1]]) if len(detections) else np.array([0, 1])
precision = np.concatenate([[1], tp / np.maximum(tp + fp, 1), [0]]) if len(detections) else np.array([1, 0])
precision = np.maximum.accumulate(precision[::-1])[::-1]
ap = float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))
print(f"{len(pred)} images, {n_true} boxes, {len(detections)} detections")
print(ap)
