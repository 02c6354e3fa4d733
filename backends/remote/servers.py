"""What each kind of OpenAI-compatible server takes beyond the standard fields, told by its /v1/models `owned_by`.

    kind = kind_of(owned_by)         # a ServerKind; GENERIC for a server not listed here
    kind.extras                      # which of AI-Writer's extra sampling fields it reads
    unavailable(kind, logprobs=...)  # "section.key" -> reason code for the settings a remote model cannot honour

The table is a starting guess: whether a server really takes `n` and `logprobs` is learned from
its answers (backends.remote.service) and remembered per server.
"""

from __future__ import annotations

from dataclasses import dataclass

EXTRAS = ("top_p_newline", "top_k", "min_p", "penalty_decay")  # sent as extra JSON fields where a server reads them


@dataclass(frozen=True)
class ServerKind:
    name: str  # what EngineInfo and the status line call it
    takes_n: bool  # n candidates in one request (else: n requests side by side)
    extras: tuple[str, ...] = ()  # the EXTRAS it reads
    top_k_off: int = 0  # the top_k it reads as "no cut" (the studio's 0)
    max_logprobs: int = 5  # the most alternatives per token it returns (OpenAI's limit unless known better)
    max_tokens: int | None = None  # the most tokens a request may ask for, where known
    neutral: tuple = ()  # (field, value): the server's own samplers the studio lacks, turned off
    concurrent: bool = True  # requests side by side may run at once (llama_cpp.server cuts one short for the next)


AI_WRITER = ServerKind("ai-writer", True, EXTRAS, 0, 20, 4096)  # `ai-writer serve-api` (studio/api/protocol.py)
GENERIC = ServerKind("openai", True)
KINDS = {  # owned_by -> kind
    "ai-writer": AI_WRITER,
    "vllm": ServerKind("vllm", True, ("top_k", "min_p"), -1, 20),
    "sglang": ServerKind("sglang", True, ("top_k", "min_p"), -1, 20),
    # llama-server (one choice a request) and llama_cpp.server: their repeat penalty is not the studio's (off)
    "llamacpp": ServerKind("llama.cpp", False, ("top_k", "min_p"), 0, 20, neutral=(("repeat_penalty", 1.0),)),
    "me": ServerKind("llama-cpp-python", False, ("top_k", "min_p"), 0, 20, neutral=(("repeat_penalty", 1.0),),
                     concurrent=False),
    "rwkv": ServerKind("rwkv-runner", False, ("top_k", "penalty_decay"), 0, 0),  # RWKV-Runner: no logprobs
    "library": ServerKind("ollama", False),  # Ollama's /v1 (its own models say "library")
    "ollama": ServerKind("ollama", False),
}

# reason codes (the studio words them: studio/i18n.py remote_setting_<code>)
NEEDS_TOKENIZER = "tokenizer"  # needs this machine's tokenizer (banned and penalty-exempt characters)
SERVER_LACKS = "server"  # this server does not take it
LOCAL_ONLY = "local"  # a setting of a model on this machine
LOCAL_SETTINGS = ("model.path", "model.vocab", "model.state", "model.device", "model.dtype", "model.unknown_char",
                  "model.window_refill", "generation.compare_state", "generation.state_cache_mb",
                  "generation.branch_state_mb", "generation.threads")


def kind_of(owned_by: str) -> ServerKind:
    return KINDS.get(str(owned_by or "").strip().lower(), GENERIC)


def unavailable(kind: ServerKind, logprobs: bool = True) -> dict[str, str]:
    """The settings a model on this kind of server cannot honour: "section.key" -> reason code.
    logprobs: whether the server gives probabilities (else [generation] alternatives has no effect)."""
    found = {key: LOCAL_ONLY for key in LOCAL_SETTINGS}
    found["generation.banned_chars"] = found["generation.penalty_exempt_chars"] = NEEDS_TOKENIZER
    for name in EXTRAS:
        if name not in kind.extras:
            found[f"sampling.{name}"] = SERVER_LACKS
    if not logprobs or kind.max_logprobs == 0:
        found["generation.alternatives"] = SERVER_LACKS
    return found


def extra_fields(kind: ServerKind, settings) -> dict:
    """The EXTRAS this kind reads, from a SamplingSettings (all of them always: llama.cpp's own defaults are
    top_k 40 and min_p 0.05, so leaving one out would not mean "off"), and its neutral fields."""
    fields = dict(kind.neutral)
    for name in kind.extras:
        value = getattr(settings, name)
        if name == "top_k" and value == 0:
            value = kind.top_k_off
        fields[name] = value
    return fields
