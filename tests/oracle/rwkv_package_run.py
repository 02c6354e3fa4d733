"""Run the `rwkv` PyPI package (the test oracle) on a checkpoint, in its own process.

    python rwkv_package_run.py MODEL_WITHOUT_.pth REQUEST.json OUT.pt

REQUEST.json: {"prompt": [ids], "steps": [ids], "state_file": optional path}. With a state file
the package starts as state-tuning runners start it: each layer's att_kv is its
blocks.N.att.time_state transposed (1, 2), the token-shift states zeros. OUT.pt holds the logits after the
prompt, after each step, and the final state, as the package computes them with
strategy "cpu fp32". The package reads its flags at import, and RWKV_V7_ON rebinds
its RWKV class, so each architecture runs in a separate process.
"""

import json
import os
import sys

os.environ.setdefault("RWKV_V7_ON", "1")
os.environ.setdefault("RWKV_JIT_ON", "1")
os.environ["RWKV_CUDA_ON"] = "0"

import torch  # noqa: E402
from rwkv.model import RWKV  # noqa: E402


def main(model, request_path, out_path):
    request = json.load(open(request_path))
    model = RWKV(model, strategy="cpu fp32")
    logits, state = model.forward(request["prompt"], initial_state(model, request.get("state_file")))
    results = {"prompt": logits.clone(), "steps": []}
    for token in request["steps"]:
        logits, state = model.forward([token], state)
        results["steps"].append(logits.clone())
    results["steps"] = torch.stack(results["steps"]) if results["steps"] else torch.empty(0)
    results["state"] = [t.clone() for t in state]
    torch.save(results, out_path)


def initial_state(model, state_file):
    if not state_file:
        return None
    raw = torch.load(state_file, map_location="cpu", weights_only=True)
    C, state = model.args.n_embd, []
    for i in range(model.args.n_layer):
        state += [torch.zeros(C), raw[f"blocks.{i}.att.time_state"].transpose(1, 2).float().contiguous(), torch.zeros(C)]
    return state


if __name__ == "__main__":
    main(*sys.argv[1:4])
