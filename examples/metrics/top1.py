"""Top-1 accuracy as a metric command: `amp-host tune ... --metric-cmd 'python examples/metrics/top1.py
--labels DATA.npz'`. amp appends the path of an .npz holding the model's outputs (one array per output,
named as in the model, samples in --data order); the first output's rows are class scores. Prints the
accuracy as its last line. numpy only."""
import argparse

import numpy as np

p = argparse.ArgumentParser()
p.add_argument("--labels", required=True, help=".npz with a `labels` array, in --data order")
p.add_argument("outputs", help="the .npz amp writes")
a = p.parse_args()
labels = np.load(a.labels)["labels"]
outputs = np.load(a.outputs)
scores = outputs[outputs.files[0]]
scores = scores.reshape(scores.shape[0], -1)
n = scores.shape[0]
# argmax takes the first of equal scores, as amp's top-1 does
print(f"{n} samples")
print(float((scores.argmax(axis=1) == labels[:n]).mean()))
