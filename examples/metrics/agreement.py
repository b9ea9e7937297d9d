"""Top-1 agreement with the FP32 model, a metric that needs no labels: `--metric-cmd 'python
examples/metrics/agreement.py'`. Reads the config's outputs from the path amp appends and the FP32 outputs
of the same inputs from $AMP_FP32_OUTPUTS. numpy only."""
import os
import sys

import numpy as np

q = np.load(sys.argv[-1])
f = np.load(os.environ["AMP_FP32_OUTPUTS"])
name = q.files[0]
a = q[name].reshape(len(q[name]), -1).argmax(axis=1)
b = f[name].reshape(len(f[name]), -1).argmax(axis=1)
print(float((a == b).mean()))
