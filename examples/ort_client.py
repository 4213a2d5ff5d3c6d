"""Stream an rnnx-exported ONNX model step by step with only onnxruntime, numpy and json.

Usage: python ort_client.py model.onnx inputs.npy outputs.npy
inputs.npy holds one sequence (T, *features); outputs.npy receives (T, *outputs).
"""

import json
import sys

import numpy as np
import onnxruntime as ort

model_path, inputs_path, outputs_path = sys.argv[1:4]
sess = ort.InferenceSession(model_path, providers=["CPUExecutionProvider"])
spec = json.loads(sess.get_modelmeta().custom_metadata_map["rnnx.spec"])
# fresh stream: zero state at batch size 1, shapes straight from the contract
state = {s["input"]: np.zeros([1 if d == "batch" else d for d in s["shape"]], s["dtype"]) for s in spec["state"]}
out_names = [spec["output"]["name"]] + [s["output"] for s in spec["state"]]
xs = np.load(inputs_path).astype(spec["input"]["dtype"])
ys = []
for x_t in xs:  # one time step per call: (1, 1, *features)
    y, *new = sess.run(out_names, {spec["input"]["name"]: x_t[None, None], **state})
    state = {s["input"]: v for s, v in zip(spec["state"], new)}  # carry the state
    ys.append(y[0, 0])
np.save(outputs_path, np.stack(ys))
