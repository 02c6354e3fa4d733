"""Run the `rwkv` PyPI package (the test oracle) on an RWKV-5.2 or RWKV-6 checkpoint, in its own process.

    python rwkv56_package_run.py MODEL.pth REQUEST.json OUT.pt VERSION     (VERSION: 5.2 or 6)

REQUEST.json: {"prompt": [ids], "steps": [ids]}. OUT.pt holds the logits after the
prompt (its sequence path), after each step, and the final state (3 tensors per
layer: att_xx (C,), att_kv (H, N, N) [key, value], ffn_xx (C,)), as the package
computes them with strategy "cpu fp32". RWKV_V7_ON must not be set: it rebinds the
package's RWKV class to RWKV-7.
"""

import json
import os
import sys

os.environ.pop("RWKV_V7_ON", None)
os.environ.setdefault("RWKV_JIT_ON", "1")
os.environ["RWKV_CUDA_ON"] = "0"

import torch  # noqa: E402
from rwkv.model import RWKV  # noqa: E402


def main(model, request_path, out_path, version):
    request = json.load(open(request_path))
    model = RWKV(model, strategy="cpu fp32", verbose=False)
    assert model.version == float(version), f"the package read this checkpoint as v{model.version}, not v{version}"
    logits, state = model.forward(request["prompt"], None)
    results = {"prompt": logits.clone(), "steps": []}
    for token in request["steps"]:
        logits, state = model.forward([token], state)
        results["steps"].append(logits.clone())
    results["steps"] = torch.stack(results["steps"]) if results["steps"] else torch.empty(0)
    results["state"] = [t.clone() for t in state]
    torch.save(results, out_path)


if __name__ == "__main__":
    main(*sys.argv[1:5])
