"""The `ai-writer` command.

    ai-writer [FILE]                      the studio
    ai-writer continue FILE [-n 3] [--length 200] [--seed S] [--model PATH] [--story FILE] [--json [--alternatives K]]
    ai-writer context FILE [--cursor N] [--story FILE] [--json]
    ai-writer history FILE [--all] [--json]  the version tree of NAME.history.jsonl beside FILE
    ai-writer eval FILE... [--model PATH] [--json]
    ai-writer scan FILE [--model PATH] [--device D] [--top N] [--json]
    ai-writer export-onnx MODEL OUT.onnx [--vocab PATH]
    ai-writer convert MODEL OUT.safetensors|OUT.gguf|OUT_FOLDER [--type f32|f16|bf16|q8_0] [--vocab PATH]
    ai-writer serve-api [--host H] [--port P] [--api-key KEY] [--model PATH]  an OpenAI-compatible /v1 API
    ai-writer serve [FILE] [--host H] [--port P] [--token]  the studio in a browser, one per tab
    ai-writer config-path

Every failure the user can cause (config, model file, manuscript) ends with one
line on stderr and exit status 2, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

from ai_writer.studio.config import RANGES, ConfigError, load_config, user_config_path
from ai_writer.studio.data.manuscript_file import ManuscriptError, load_manuscript, read_manuscript


class UserError(Exception):
    """A problem with the user's input, reported as one line."""


def open_engine(config, model: str | None = None, device: str | None = None, state: str | None = None):
    from ai_writer.backends import LoadError

    from ai_writer.studio.engine_loading import load_engine

    try:
        return load_engine(config.model, model, device, state)
    except LoadError as exc:
        raise UserError(str(exc)) from None


def read_story(args):
    """The story for args.file: --story FILE, else the manuscript's own NAME.story.toml (none for stdin)."""
    from ai_writer.backends.writing.story import Story
    from ai_writer.studio.data.story_file import StoryError, load_story, story_path_for

    if args.story:
        path = Path(args.story).expanduser()
        if not path.is_file():
            raise UserError(f"{path}: no such story file")
    elif args.file != "-":
        path = story_path_for(Path(args.file))
    else:
        return Story()
    try:
        return load_story(path)
    except StoryError as exc:
        raise UserError(str(exc)) from None


def read_up_to_cursor(args) -> str:
    text = read_manuscript(args.file)
    cursor = getattr(args, "cursor", None)
    if cursor is None:
        return text
    if not 0 <= cursor <= len(text):
        raise UserError(f"--cursor {cursor} is outside the manuscript (0..{len(text)} characters)")
    return text[:cursor]


def run_request(engine, config, request):
    """(the Finished event, the Job: its choices) of one request, on a service of its own (closed after)."""
    import queue

    from ai_writer.backends.writing.generation import Failed, Finished

    from ai_writer.studio.generation_setup import make_service

    service = make_service(config, engine)
    events: queue.Queue = queue.Queue()
    try:
        job = service.submit(request, events.put)
        while True:
            event = events.get()
            if isinstance(event, Failed):
                raise UserError(f"generation failed: {event.message}")
            if isinstance(event, Finished) and event.request_id == job.id:
                return event, job
    finally:
        service.close()


def choices_json(log, row: int) -> list[dict]:
    """Each token candidate `row` wrote: its text (as the model wrote it, before any paragraph indent), p, p_raw
    and the alternatives the model weighed."""
    tokens = []
    for step in range(log.steps(row)):
        choice = log.choice(row, step)
        tokens.append({"text": choice.text, "p": choice.p, "p_raw": choice.p_raw,
                       "alternatives": [{"text": a.text, "p": a.p, "p_raw": a.p_raw} for a in choice.alternatives]})
    return tokens


def command_continue(args) -> int:
    from ai_writer.models.textprep import format_continuation, paragraph_indent

    from ai_writer.studio.generation_setup import build_request

    longest = RANGES[("generation", "length")][1]
    if args.length is not None and args.length > longest:
        raise UserError(f"--length {args.length} is more than {longest}, the longest candidate allowed")
    if args.alternatives is not None and not args.json:
        raise UserError("--alternatives goes with --json (the choices are printed in the JSON object)")
    config = load_config(args.config)
    text = read_manuscript(args.file)
    story = read_story(args)
    engine = open_engine(config, args.model, args.device, args.state)
    request = build_request(config, text, story, n=args.n, length=args.length, seed=args.seed)
    request = replace(request, alternatives=args.alternatives or 0)  # nothing recorded unless asked for
    compare = args.compare_state or config.generation.compare_state
    if compare:
        from ai_writer.studio.compared_state import read_compared_state

        try:
            request = replace(request, compare_state=read_compared_state(compare, engine))
        except ValueError as exc:
            raise UserError(str(exc)) from None
    final, job = run_request(engine, config, request)
    indent = paragraph_indent(text)
    candidates = [format_continuation(t, indent) for t in final.texts]
    sources = start_names(engine, request)
    if args.json:
        info = engine.info
        result = {"model": info.model_path, "backend": info.backend, "device": info.device,
                  "seed": request.sampling.seed, "candidates": candidates}
        if sources:
            result["starts"] = sources
        if job.choices is not None:
            result["choices"] = [choices_json(job.choices, row) for row in range(len(final.texts))]
        print(json.dumps(result, ensure_ascii=False))
    else:
        for number, candidate in enumerate(candidates, start=1):
            start = f", from {sources[number - 1]}" if sources else ""
            print(f"── candidate {number} ({len(candidate)} characters{start}) ──")
            print(candidate)
    return 0


def start_names(engine, request) -> list[str]:
    """Each candidate's start when two are compared (the state files' names; "none" for no state), else []."""
    if request.compare_state is None or request.n < 2:
        return []
    own = getattr(engine, "tuned", None)
    own_name = Path(own.path).stem if own is not None else "none"
    other = request.n // 2
    return [own_name] * (request.n - other) + [Path(request.compare_state.path).stem] * other


def command_context(args) -> int:
    from ai_writer.studio.context_report import context_json, context_lines
    from ai_writer.studio.generation_setup import build_request, make_service

    config = load_config(args.config)
    text = read_up_to_cursor(args)
    story = read_story(args)
    engine = open_engine(config, args.model, args.device, args.state)
    service = make_service(config, engine)
    try:
        plan = service.plan(build_request(config, text, story))
    finally:
        service.close()
    if args.json:
        print(json.dumps(context_json(plan), ensure_ascii=False))
    else:
        for line in context_lines(plan):
            print(line)
    return 0


def command_history(args) -> int:
    """The version tree: requests, candidates, the path taken (✓), favourites (★), detached nodes, edits."""
    from ai_writer.studio.data.history import HistoryLog
    from ai_writer.studio.data.version_tree import build_tree
    from ai_writer.studio.history_report import tree_json, tree_lines
    from ai_writer.studio.i18n import choose_language, set_language, tr

    config = load_config(args.config)
    set_language(choose_language(config.studio.language))
    path = Path(args.file)
    text = read_manuscript(path).replace("\r\n", "\n")  # positions count line breaks as the editor does
    log = HistoryLog.for_manuscript(path)
    records = log.read_records()
    if log.last_error and not records:
        raise UserError(log.last_error)
    for warning in log.warnings:  # a damaged line costs that line only
        print(f"ai-writer: {warning}", file=sys.stderr)
    tree = build_tree(records, text, log.warnings)
    if args.json:
        print(json.dumps({"manuscript": str(path), "history": str(log.path), **tree_json(tree)}, ensure_ascii=False))
    elif not tree.nodes and not tree.edits_after:
        print(tr("history_empty"))
    else:
        for line in tree_lines(tree, show_pruned=args.all):
            print(line)
    return 0


def command_eval(args) -> int:
    from ai_writer.backends.writing.evaluation import text_bits

    config = load_config(args.config)
    texts = {name: read_manuscript(name) for name in args.files}
    prep = replace(config.generation.text_prep, leading_newline=True)
    for name, text in texts.items():
        if len(prep.prepare(text)) < 2:  # the leading newline alone: no character to predict
            raise UserError(f"{name}: nothing to evaluate, the file holds no text")
    engine = open_engine(config, args.model, args.device, args.state)
    per_file, total_bits, total_chars = {}, 0.0, 0
    for name, text in texts.items():
        bits, chars = text_bits(engine, text, prep)
        per_file[name] = {"bits_per_char": bits / chars if chars else None, "chars": chars}
        total_bits, total_chars = total_bits + bits, total_chars + chars
    overall = total_bits / total_chars if total_chars else None
    if args.json:
        print(json.dumps({"model": engine.info.model_path, "bits_per_char": overall,
                          "chars": total_chars, "files": per_file}, ensure_ascii=False))
    else:
        width = max(len(name) for name in per_file)
        for name, row in per_file.items():
            bpc = "-" if row["bits_per_char"] is None else f"{row['bits_per_char']:.3f}"
            print(f"{name:<{width}}  {bpc:>6} bits/char  {row['chars']:>9,} chars")
        print(f"{'overall':<{width}}  {overall if overall is None else format(overall, '.3f'):>6} bits/char  {total_chars:>9,} chars")
    return 0


def command_scan(args) -> int:
    from ai_writer.backends.writing.scan import scan_text

    from ai_writer.studio.i18n import tr
    from ai_writer.studio.scan_report import scan_lines

    config = load_config(args.config)
    text = read_manuscript(args.file)
    prep = replace(config.generation.text_prep, leading_newline=True)
    if len(prep.prepare(text)) < 2:  # the leading newline alone: no character to predict
        raise UserError(tr("sc_empty", name=args.file))
    engine = open_engine(config, args.model, args.device, args.state)
    progress = None
    if sys.stderr.isatty():  # a long book: where the scan is, on one line that is cleared at the end
        def progress(done: int, total: int) -> None:
            print(f"\r\033[K{tr('sc_scanning', done=done, total=total)}", end="", file=sys.stderr, flush=True)
    try:
        scan = scan_text(engine, text, prep, on_progress=progress, top=args.top)
    finally:
        if progress is not None:
            print("\r\033[K", end="", file=sys.stderr, flush=True)
    if args.json:
        print(json.dumps({"file": args.file, "model": engine.info.model_path, **scan.to_json()}, ensure_ascii=False))
    else:
        for line in scan_lines(args.file, scan):
            print(line)
    return 0


def command_export_onnx(args) -> int:
    import shutil

    from ai_writer.backends.files.onnx_export import ExportError, export_onnx
    from ai_writer.backends.files.vocab import find_vocab

    model, out = Path(args.model).expanduser(), Path(args.out).expanduser()
    if out.suffix.lower() != ".onnx":
        raise UserError(f"{out}: the exported file's name must end in .onnx")
    vocab = Path(args.vocab).expanduser() if args.vocab else find_vocab(model)
    try:
        meta = export_onnx(model, out)
    except ExportError as exc:
        raise UserError(str(exc)) from None
    except OSError as exc:
        raise UserError(f"{out}: cannot write it ({exc.strerror or exc})") from None
    beside = out.with_suffix(".json")
    if vocab is not None and vocab.resolve() != beside.resolve():
        try:
            shutil.copyfile(vocab, beside)
        except OSError as exc:
            raise UserError(f"{beside}: cannot copy the vocabulary there ({exc.strerror or exc})") from None
    size = out.stat().st_size / 1e6
    from ai_writer.backends.files.onnx_export import ARCHITECTURE_NAMES

    name = ARCHITECTURE_NAMES.get(meta["architecture"], meta["architecture"])
    print(f"{out}: {name} {meta['n_layer']} x {meta['n_embd']}, vocabulary {meta['vocab_size']}, "
          f"{size:.1f} MB; vocabulary: {beside if vocab is not None else 'none found, put it at ' + str(beside)}")
    return 0


def command_convert(args) -> int:
    from ai_writer.backends import LoadError
    from ai_writer.backends.files.convert import convert_model

    try:
        done = convert_model(args.model, args.out, args.vocab, args.type)
    except LoadError as exc:
        raise UserError(str(exc)) from None
    vocab = done["vocab"] or ("the World vocabulary inside" if done["vocab_size"] == 65536 else
                              f"none found, put it at {Path(args.out).with_suffix('.json')}")
    print(f"{args.out}: {done['architecture']} {done['n_layer']} x {done['n_embd']}, vocabulary {done['vocab_size']}, "
          f"{done['tensors']} tensors, {done['bytes'] / 1e6:.1f} MB, no pickle; vocabulary: {vocab}")
    return 0


def command_config_path(args) -> int:
    print(user_config_path())
    return 0


def check_studio_file(path: Path) -> None:
    """Refuse (one line) a manuscript the studio could not open, before any screen opens."""
    if path.is_dir():
        raise UserError(f"{path}: is a folder, not a manuscript")
    if path.exists():
        load_manuscript(path, for_editing=True)  # refuse what the editor cannot keep
    elif not path.parent.exists():
        raise UserError(f"{path}: the folder {path.parent} does not exist")


def command_studio(args) -> int:
    config = load_config(args.config)
    if args.file is not None:
        check_studio_file(Path(args.file))
    from ai_writer.studio.app import StudioApp
    from ai_writer.studio.walk_away import work_left_behind

    app = StudioApp(config, args.file)
    code = app.run() or 0
    try:
        for line in app.exit_lines:  # the terminal is back to normal: where the text is
            print(line, flush=True)
    except OSError:  # the terminal is gone (its window closed): the text is saved, nobody is there to read
        pass
    if app.service is not None:  # let a model call in flight finish
        app.service.close(wait=True)
    if work_left_behind():  # a model still loading: the manuscript is saved, end now rather than after the load
        os._exit(code)
    return code


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def add_model_options(parser) -> None:
    parser.add_argument("--model", metavar="PATH", help="a model file instead of the configured one")
    parser.add_argument("--device", help="cpu, cuda or auto")
    parser.add_argument("--state", metavar="FILE", help="a state-tuning file to start from instead of the configured one")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai-writer", description="Continue a novel with a local RWKV model.")
    parser.add_argument("--config", metavar="PATH", help="a config file laid over the defaults and your own")
    sub = parser.add_subparsers(dest="command")

    cont = sub.add_parser("continue", help="print candidate continuations of a manuscript (no studio)")
    cont.add_argument("file", help="a UTF-8 manuscript (.txt/.md), or - for standard input")
    cont.add_argument("-n", type=int, choices=range(1, 10), metavar="N", help="how many candidates (1-9)")
    cont.add_argument("--length", type=_positive_int, help="characters per candidate")
    cont.add_argument("--seed", type=int, help="reproduce a run")
    add_model_options(cont)
    cont.add_argument("--story", metavar="FILE", help="a story file (default: the manuscript's NAME.story.toml)")
    cont.add_argument("--compare-state", metavar="FILE",
                      help="the last half of the candidates start from this state file (side by side with the rest)")
    cont.add_argument("--json", action="store_true", help="one JSON object for scripts")
    cont.add_argument("--alternatives", type=int, choices=range(1, 51), metavar="K",
                      help="with --json: per candidate, each token's probability and the K the model liked best (1-50)")
    cont.set_defaults(run=command_continue)

    context = sub.add_parser("context", help="print exactly what the model reads for the next candidates, part by part")
    context.add_argument("file", help="a UTF-8 manuscript (.txt/.md), or - for standard input")
    context.add_argument("--cursor", type=int, metavar="N", help="the cursor, in characters from the start (default: the end)")
    context.add_argument("--story", metavar="FILE", help="a story file (default: the manuscript's NAME.story.toml)")
    add_model_options(context)
    context.add_argument("--json", action="store_true", help="one JSON object: parts, lore keys, what is cut, what is re-read")
    context.set_defaults(run=command_context)

    history = sub.add_parser("history", help="print the version tree of a manuscript's generation history")
    history.add_argument("file", help="the manuscript (its NAME.history.jsonl is read)")
    history.add_argument("--all", action="store_true", help="show pruned requests too")
    history.add_argument("--json", action="store_true", help="one JSON object: every request, flat, with its links")
    history.set_defaults(run=command_history)

    evaluate = sub.add_parser("eval", help="bits per character of text files under the model")
    evaluate.add_argument("files", nargs="+", metavar="FILE", help="UTF-8 text files")
    add_model_options(evaluate)
    evaluate.add_argument("--json", action="store_true", help="one JSON object: bits_per_char overall and per file")
    evaluate.set_defaults(run=command_eval)

    scan = sub.add_parser("scan", help="bits per character paragraph by paragraph, the most surprising spans, repeated loops")
    scan.add_argument("file", help="a UTF-8 manuscript (.txt/.md), or - for standard input")
    add_model_options(scan)
    scan.add_argument("--top", type=_positive_int, default=20, metavar="N", help="how many surprising spans (default 20)")
    scan.add_argument("--json", action="store_true", help="one JSON object: overall, paragraphs, spans, loops")
    scan.set_defaults(run=command_scan)

    export = sub.add_parser("export-onnx", help="write a model's recurrent step as an ONNX file (vocabulary beside it)")
    export.add_argument("model", metavar="MODEL", help="a model file (.safetensors or .pth)")
    export.add_argument("out", metavar="OUT.onnx", help="the file to write; its vocabulary goes to OUT.json")
    export.add_argument("--vocab", metavar="PATH", help="the vocabulary to copy beside it (default: the model's)")
    export.set_defaults(run=command_export_onnx)

    convert = sub.add_parser("convert", help="rewrite a model as plain .safetensors, or an RWKV-7 as .gguf (llama.cpp, "
                                             "Ollama) or a Hugging Face folder (fla)")
    convert.add_argument("model", metavar="MODEL", help="a model file or folder this program opens")
    convert.add_argument("out", metavar="OUT", help="OUT.safetensors (vocabulary to OUT.json), OUT.gguf, or a folder "
                                                    "name without a suffix (Hugging Face / fla layout)")
    convert.add_argument("--type", choices=("f32", "f16", "bf16", "q8_0"), default="f32",
                         help="the tensors' type in a .gguf (default f32)")
    convert.add_argument("--vocab", metavar="PATH", help="the vocabulary to copy beside it (default: the model's)")
    convert.set_defaults(run=command_convert)

    from ai_writer.studio.api.command import add_parser as add_serve_api

    add_serve_api(sub, add_model_options)

    from ai_writer.studio.web.command import add_parser as add_serve

    add_serve(sub)

    where = sub.add_parser("config-path", help="print where your own config file goes")
    where.set_defaults(run=command_config_path)
    return parser


def studio_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="ai-writer", description="Open the studio on a manuscript.")
    parser.add_argument("--config", metavar="PATH", help="a config file laid over the defaults and your own")
    parser.add_argument("file", nargs="?", help="a UTF-8 manuscript (.txt/.md); a new one if left out")
    return parser


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    parser = build_parser()
    commands = set(parser._subparsers._group_actions[0].choices)  # noqa: SLF001
    positionals = [a for i, a in enumerate(argv) if not a.startswith("-") and (i == 0 or argv[i - 1] != "--config")]
    if positionals and positionals[0] in commands or "-h" in argv[:1] or "--help" in argv[:1]:
        args = parser.parse_args(argv)
    else:
        args = studio_parser().parse_args(argv)
    run = getattr(args, "run", command_studio)
    try:
        return run(args)
    except (UserError, ConfigError, ManuscriptError) as exc:
        print(f"ai-writer: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # `ai-writer scan BOOK | head`: the reader stopped reading; say nothing more
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        except OSError:
            pass
        return 141


if __name__ == "__main__":
    sys.exit(main())
