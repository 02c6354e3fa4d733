"""A normal (not editable) install: the sdist and wheel that `python -m build` makes, installed into a
fresh virtual environment and run from a folder where the repository is not importable.

The environment borrows this one's dependencies (torch, textual, ...) through a .pth line, which adds
their folder without running its .pth files, so the repository's editable install stays out of it.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import signal
import site
import subprocess
import sys
import tarfile
import time
import zipfile
from pathlib import Path

import pytest

from tests.helpers import REPO


def _project() -> dict:
    import tomllib

    return tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


VERSION = _project()["project"]["version"]

SOURCES = ("pyproject.toml", "setup.py", "MANIFEST.in", "README.md", "config.toml", "studio", "backends", "models")
MANUSCRIPT = "　　第一章　山雨欲来\n　　他走进了房间，四下看了看。\n"
BIN = "Scripts" if os.name == "nt" else "bin"


def _run(command, cwd, env=None, timeout=120, **kwargs):
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, timeout=timeout,
                          **kwargs)
    assert done.returncode == 0, (command, done.stdout.decode(errors="replace"), done.stderr.decode(errors="replace"))
    return done


def _build(work: Path) -> Path:
    """sdist from a copy of the sources, then the wheel from the unpacked sdist, as `python -m build`."""
    source = work / "src"
    source.mkdir()
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    hook = "import sys, setuptools.build_meta as b; print(getattr(b, sys.argv[1])(sys.argv[2]))"
    sdist = work / "sdist"
    name = _run([sys.executable, "-c", hook, "build_sdist", sdist], cwd=source).stdout.decode().split()[-1]
    with tarfile.open(sdist / name) as archive:
        archive.extractall(work / "unpacked", **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))
    unpacked = work / "unpacked" / name[: -len(".tar.gz")]
    wheel = _run([sys.executable, "-c", hook, "build_wheel", work / "dist"], cwd=unpacked).stdout.decode().split()[-1]
    return work / "dist" / wheel


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(wheel, the fresh environment's folder, an environment for its commands, a working folder)."""
    work = tmp_path_factory.mktemp("install")
    wheel = _build(work)
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=work)
    python = venv / BIN / ("python.exe" if os.name == "nt" else "python")
    purelib = _run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=work)
    borrowed = [p for p in site.getsitepackages() if Path(p).is_dir()]
    (Path(purelib.stdout.decode().strip()) / "_borrowed_dependencies.pth").write_text("\n".join(borrowed) + "\n")
    _run([sys.executable, "-m", "pip", "--python", python, "install", "--quiet", "--no-deps", "--no-index",
          "--disable-pip-version-check", wheel], cwd=work)
    run_dir = work / "run"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("TEXTUAL")}
    env.update(XDG_CONFIG_HOME=str(work / "xdg-config"), XDG_DATA_HOME=str(work / "xdg-data"),
               HOME=str(work / "home"), LANG="C.UTF-8", LC_ALL="C.UTF-8")
    return wheel, venv, env, run_dir


def ai_writer(installed, *argv, timeout=120):
    _, venv, env, run_dir = installed
    return subprocess.run([str(venv / BIN / "ai-writer"), *map(str, argv)], cwd=run_dir, env=env,
                          capture_output=True, timeout=timeout)


def test_the_wheel_carries_the_defaults_the_model_and_the_native_source(installed):
    wheel = zipfile.ZipFile(installed[0])
    names = set(wheel.namelist())
    assert wheel.read("ai_writer/studio/defaults.toml") == (REPO / "config.toml").read_bytes()  # the one source, copied
    assert {"ai_writer/models/bundled/zh-novel-rwkv7.safetensors", "ai_writer/models/bundled/zh-novel-rwkv7.json",
            "ai_writer/backends/engines/native/rwkv7_step.c", "ai_writer/models/world_vocab_v20230424.txt"} <= names
    # one import package: nothing at the top of site-packages under a generic name
    assert {name.split("/")[0] for name in names} - {"ai_writer"} == {f"ai_writer_studio-{VERSION}.dist-info"}
    assert not any(name.startswith(("ai_writer/tests/", "ai_writer/bench/")) for name in names)


def test_every_package_folder_is_in_pyproject():
    listed = set(_project()["tool"]["setuptools"]["packages"])
    folders = {"ai_writer." + ".".join(p.parent.relative_to(REPO).parts)
               for top in ("studio", "backends", "models") for p in (REPO / top).rglob("*.py")
               if "__pycache__" not in p.parts}
    assert listed == folders


def test_the_installed_code_is_the_wheels_not_the_repositorys(installed):
    _, venv, env, run_dir = installed
    python = venv / BIN / ("python.exe" if os.name == "nt" else "python")
    probe = ("import ai_writer.studio.config as c, ai_writer.backends, ai_writer.models as models; print(c.__file__); "
             "print(c.DEFAULTS_PATH); print(models.__file__)")
    lines = _run([python, "-c", probe], cwd=run_dir, env=env).stdout.decode().splitlines()
    assert all(Path(line).resolve().is_relative_to(venv.resolve()) for line in lines), lines
    assert Path(lines[1]).name == "defaults.toml"


@pytest.mark.parametrize("argv", [["--help"], ["continue", "--help"], ["eval", "--help"], ["export-onnx", "--help"],
                                  ["convert", "--help"], ["config-path"]])
def test_every_installed_command_starts(installed, argv):
    done = ai_writer(installed, *argv)
    assert done.returncode == 0 and done.stderr == b"", done.stderr.decode()
    out = done.stdout.decode()
    if argv == ["config-path"]:
        assert out.strip() == str(Path(installed[2]["XDG_CONFIG_HOME"]) / "ai-writer-studio" / "config.toml")
    else:
        assert out.startswith("usage: ai-writer") and (argv[0] in out or "continue" in out)


def test_installed_continue_with_a_tiny_model(installed, tiny_model):
    manuscript = installed[3] / "tiny-novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    done = ai_writer(installed, "continue", manuscript, "--model", tiny_model, "-n", 2, "--length", 15,
                     "--seed", 3, "--json")
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout.decode("utf-8"))
    assert result["model"] == str(tiny_model) and result["seed"] == 3
    assert len(result["candidates"]) == 2 and all(len(c.replace("\n　　", "\n")) == 15 for c in result["candidates"])


def test_installed_continue_uses_the_bundled_model_by_default(installed):
    _, venv, _, run_dir = installed
    manuscript = run_dir / "novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    done = ai_writer(installed, "continue", manuscript, "-n", 1, "--length", 8, "--seed", 1, "--json")
    assert done.returncode == 0, done.stderr.decode()
    result = json.loads(done.stdout.decode("utf-8"))
    model = Path(result["model"]).resolve()
    assert model.name == "zh-novel-rwkv7.safetensors" and model.is_relative_to(venv.resolve())
    assert len(result["candidates"]) == 1 and result["candidates"][0]


@pytest.mark.skipif(os.name == "nt", reason="needs a POSIX pseudo-terminal")
def test_the_installed_studio_opens_in_a_terminal_and_quits(installed, tiny_model):
    import fcntl
    import struct
    import termios

    _, venv, env, run_dir = installed
    manuscript = run_dir / "studio-novel.txt"
    manuscript.write_text(MANUSCRIPT, encoding="utf-8")
    config = run_dir / "studio.toml"
    config.write_text(f'[model]\npath = "{tiny_model}"\nbackend = "torch"\n[studio]\nlanguage = "en"\n',
                      encoding="utf-8")
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 140, 0, 0))
    proc = subprocess.Popen([str(venv / BIN / "ai-writer"), "--config", str(config), str(manuscript)],
                            stdin=slave, stdout=slave, stderr=slave, cwd=run_dir, start_new_session=True,
                            env={**env, "TERM": "xterm-256color", "COLORTERM": "truecolor"})
    os.close(slave)
    output = bytearray()

    def read_until(done, seconds):
        end = time.monotonic() + seconds
        while not done() and time.monotonic() < end and proc.poll() is None:
            if select.select([master], [], [], 0.05)[0]:
                try:
                    output.extend(os.read(master, 65536))
                except OSError:  # EIO: the studio closed the terminal
                    break
        return done()

    try:
        # the manuscript on screen, and the model named in the status line (maybe cut short: "tiny.safete…")
        assert read_until(lambda: "四下看了看".encode() in output and b"tiny.safe" in output, 60), \
            bytes(output[-600:]).decode(errors="replace")
        os.write(master, b"\x11")  # ctrl+q
        read_until(lambda: proc.poll() is not None, 20)  # keep reading: a full terminal would block its exit
        proc.wait(timeout=5)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=10)
        os.close(master)
    assert proc.returncode == 0, bytes(output[-600:]).decode(errors="replace")
    assert b"Traceback" not in output
    assert manuscript.read_text(encoding="utf-8") == MANUSCRIPT
