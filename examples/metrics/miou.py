"""Mean intersection-over-union of a segmenter, as a metric command:

    amp-host tune --model examples/digits_seg/model.onnx --data examples/digits_seg/val.npz \\
        --metric-cmd 'python examples/metrics/miou.py --masks examples/digits_seg/masks.npz'

amp appends the path of an .npz of the model's outputs (one array per output, named as in the model,
samples in --data order); the first output holds per-pixel class scores (N, C, H, W). The masks file holds
`masks` (N, H, W), the true class of every pixel. Prints the mean over classes (present in the masks or
predicted) of |predicted ∩ true| / |predicted ∪ true| as its last line. numpy only."""
import argparse

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--masks", required=True, help=".npz with a `masks` array (N, H, W), in --data order")
p.add_argument("outputs", help="the .npz amp writes")
a = p.parse_args()
masks = np.load(a.masks)["masks"]
outputs = np.load(a.outputs)
scores = outputs[outputs.files[0]]
pred = scores.argmax(axis=1)
masks = masks[: len(pred)]
ious = []
for c in range(scores.shape[1]):
    union = np.logical_or(pred == c, masks == c).sum()
    if union:
        ious.append(np.logical_and(pred == c, masks == c).sum() / union)
print(f"{len(pred)} images, {len(ious)} classes")
print(float(np.mean(ious)))
