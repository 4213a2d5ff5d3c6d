"""Stream a recorded sequence through an rnnx model served by Triton (``rnnx export --format triton``).

The server keeps the hidden state (the onnxruntime flavour: Triton's implicit state; the
python flavour, ``--triton-backend python``: rnnx.runtime inside Triton): the client only
sends one time step per request under a sequence id, flagging the first and the last. The
same client works against both flavours (tests/triton_server runs it on a real server).

    python examples/triton_client.py localhost:8001 MODEL_NAME signal.npy y.npy
"""

import sys

import numpy as np
import tritonclient.grpc as grpcclient


def step_inputs(input_name: str, x_t: np.ndarray) -> list:
    """The request inputs for one step ``x_t`` of shape (1, 1, features...)."""
    inp = grpcclient.InferInput(input_name, list(x_t.shape), "FP32")
    inp.set_data_from_numpy(x_t.astype(np.float32))
    return [inp]


def stream(url: str, model: str, xs: np.ndarray, sequence_id: int = 1) -> np.ndarray:
    """Send ``xs`` (T, features...) one step per request; returns the outputs (T, out...)."""
    client = grpcclient.InferenceServerClient(url)
    ys = []
    for t, x_t in enumerate(xs):
        result = client.infer(
            model,
            step_inputs("x", x_t[None, None]),
            sequence_id=sequence_id,
            sequence_start=(t == 0),
            sequence_end=(t == len(xs) - 1),
        )
        ys.append(result.as_numpy("y")[0, 0])
    return np.stack(ys)


if __name__ == "__main__":
    url, model, inputs_path, outputs_path = sys.argv[1:5]
    np.save(outputs_path, stream(url, model, np.load(inputs_path)))
