"""The studio one browser tab runs: `python -m ai_writer.studio.web.child [--config C] [FILE]`.

Exactly `ai-writer [--config C] [FILE]` (the same main()), started by the server with Textual's
web driver. On Linux it also asks the kernel for SIGHUP when the server process dies, however it
dies: the studio then saves and exits as after a dropped SSH connection, instead of living on
without a browser and holding the manuscript's lock.
"""

from __future__ import annotations

import os
import signal
import sys

PARENT_ENV = "AI_WRITER_SERVE_PID"  # the server's PID, set in the child's environment
PR_SET_PDEATHSIG = 1


def hang_up_with_parent() -> None:
    """SIGHUP when the parent dies (Linux prctl); elsewhere nothing (the server hangs up itself when it can)."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGHUP, 0, 0, 0)
    except (OSError, AttributeError):
        return
    expected = os.environ.get(PARENT_ENV)
    if expected and expected.isdigit() and os.getppid() != int(expected):  # it died before prctl took effect
        sys.exit(0)


def main() -> int:
    hang_up_with_parent()
    from ai_writer.studio.cli import main as studio_main

    return studio_main(sys.argv[1:])


if __name__ == "__main__":
    sys.exit(main())
