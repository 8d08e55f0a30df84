"""The tools' command lines, one module per tool, each with ``main(argv=None) -> int`` (the exit status).

``tools/NAME.py`` is a thin caller of ``vision_ssm.cli.NAME.main``, and the installed package runs
the same function as ``vssm-NAME`` (underscores as dashes; ``[project.scripts]`` in pyproject.toml),
so an installed package needs no ``sys.path`` edits.  A module's docstring is its ``--help`` text.
``vssm-train`` and ``vssm-validate`` live in :mod:`vision_ssm.train.cli`.
"""
from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Sequence

__all__ = ["REPO_ROOT", "recorded_command"]

# The checkout (or, installed, the folder holding the package): the default home of model_zoo.md,
# BENCHMARKS.md and outputs/ for the tools that update the repository's pages.
REPO_ROOT = Path(__file__).resolve().parents[2]


def recorded_command(tool: str, argv: Sequence[str] | None) -> str:
    """The command a result file records: ``python tools/TOOL.py ARGS`` (``vssm-TOOL`` runs the same
    code), the arguments ``argv`` (default: this process's) quoted for a shell."""
    args = sys.argv[1:] if argv is None else argv
    return f"python tools/{tool}.py " + " ".join(shlex.quote(a) for a in args)
