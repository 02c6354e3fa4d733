"""Run the `rwkv` PyPI package (the test oracle) on a checkpoint, in its own process.

    python rwkv_package_run.py MODEL[.pth] REQUEST.json OUT.pt VERSION [STRATEGY]   (VERSION: 4, 5.2, 6 or 7)

REQUEST.json: {"prompt": [ids], "steps": [ids], "state_file": optional path}. With a state file
(RWKV-5/6/7) the package starts as state-tuning runners start it: each layer's att_kv is its
blocks.N.att.time_state transposed (1, 2), the token-shift states zeros. OUT.pt holds the logits
after the prompt (the package's sequence path), after each step, and the final state (RWKV-4: 5
tensors per layer, att_xx, aa, bb, pp, ffn_xx; RWKV-5/6/7: 3, att_xx, att_kv, ffn_xx), as the
package computes them with STRATEGY (default "cpu fp32"; "cuda fp16" on a GPU), all as float32 on the CPU. The package reads its flags at import and
RWKV_V7_ON rebinds its RWKV class to RWKV-7, so the flag is set for VERSION 7 only and every run
is a process of its own. For RWKV-4 to 6 the package's own reading of the version must be VERSION.
"""

import json
import os
import sys

VERSIONS = ("4", "5.2", "6", "7")
if __name__ == "__main__" and (len(sys.argv) not in (5, 6) or sys.argv[4] not in VERSIONS):
    sys.exit(f"usage: rwkv_package_run.py MODEL[.pth] REQUEST.json OUT.pt VERSION [STRATEGY] "
             f"(VERSION one of {', '.join(VERSIONS)})")
if sys.argv[4:5] == ["7"]:
    os.environ["RWKV_V7_ON"] = "1"
else:
    os.environ.pop("RWKV_V7_ON", None)
os.environ.setdefault("RWKV_JIT_ON", "1")
os.environ["RWKV_CUDA_ON"] = "0"

import torch  # noqa: E402
from rwkv.model import RWKV  # noqa: E402


def main(model_path, request_path, out_path, version, strategy="cpu fp32"):
    request = json.load(open(request_path))
    name = model_path[: -len(".pth")] if model_path.endswith(".pth") else model_path  # the package adds .pth
    if version == "7":
        model = RWKV(name, strategy=strategy)  # the RWKV-7 class: no verbose, no version attribute
    else:
        model = RWKV(name, strategy=strategy, verbose=False)
        assert model.version == float(version), f"the package read this checkpoint as v{model.version}, not v{version}"
    logits, state = model.forward(request["prompt"], initial_state(model, request.get("state_file"), version))
    results = {"prompt": logits.float().cpu().clone(), "steps": []}
    for token in request["steps"]:
        logits, state = model.forward([token], state)
        results["steps"].append(logits.float().cpu().clone())
    results["steps"] = torch.stack(results["steps"]) if results["steps"] else torch.empty(0)
    results["state"] = [t.float().cpu().clone() for t in state]
    torch.save(results, out_path)


def initial_state(model, state_file, version):
    if not state_file:
        return None
    assert version != "4", "state files are RWKV-5/6/7 states (3 tensors per layer)"
    raw = torch.load(state_file, map_location="cpu", weights_only=True)
    C, state = model.args.n_embd, []
    for i in range(model.args.n_layer):
        state += [torch.zeros(C), raw[f"blocks.{i}.att.time_state"].transpose(1, 2).float().contiguous(), torch.zeros(C)]
    return state


if __name__ == "__main__":
    main(*sys.argv[1:6])
