"""Dagster's Preview / Beta / Supersession warnings, kept out of the commands users run.

The project uses a few Dagster APIs that Dagster marks as preview or beta (partitioned
asset checks, multi-dimension partition mappings), knowingly and with Dagster pinned to
one version (pyproject.toml), and users run ``dagster asset materialize``, which Dagster
marks as superseded by ``dg launch``. Each of these prints a multi-line warning on every
load of the definitions, in every process (CLI, code server, every step worker): noise
that tells a user nothing they can act on and buries the messages that matter.

Two places filter them, both with the filter defined here:

- ``assets/definitions.py`` imports this module first, before any asset module, so
  loading the definitions (CLI, code servers, step workers, tests) warns about none of
  them; this also filters the warning classes themselves.
- ``make setup`` installs a one-line ``.pth`` file into ``.venv`` (``python -m
  assets.quiet_warnings --install-pth``) holding the text filter, so that it is in place
  when any interpreter of the venv starts: the ``dagster`` CLI warns that
  ``asset_materialize_command`` is superseded before it imports any project code. The
  line imports only ``warnings`` (it runs at every start of the venv's Python).

Deprecation warnings are left alone: they name something that will break on upgrade.
"""

from __future__ import annotations

import argparse
import sys
import sysconfig
import warnings
from pathlib import Path

# The wording dagster_shared.utils.warnings gives each of the three (matched by text, so
# that the .pth line needs no dagster import).
MESSAGE = (
    r"(?s).*\bis (currently in (preview|beta), and may have breaking changes"
    r"|superseded and its usage is discouraged)"
)
PTH_NAME = "livecross-quiet-warnings.pth"


def filter_by_text() -> None:
    warnings.filterwarnings("ignore", message=MESSAGE, category=Warning)


def filter_by_class() -> None:
    try:
        from dagster_shared.utils.warnings import (
            BetaWarning,
            PreviewWarning,
            SupersessionWarning,
        )
    except ImportError:  # dagster not installed: nothing of it to silence
        return
    for category in (PreviewWarning, BetaWarning, SupersessionWarning):
        warnings.filterwarnings("ignore", category=category)


def pth_line() -> str:
    """The .pth line: a .pth line starting with ``import`` is executed at startup."""
    return f"import warnings; warnings.filterwarnings('ignore', message={MESSAGE!r}, category=Warning)\n"


def install_pth(site_packages: str | None = None) -> tuple[Path, bool]:
    """Write (or refresh) the .pth file into the running interpreter's site-packages;
    (its path, whether it was written)."""
    path = Path(site_packages or sysconfig.get_paths()["purelib"]) / PTH_NAME
    if path.exists() and path.read_text() == pth_line():
        return path, False
    path.write_text(pth_line())
    return path, True


filter_by_text()
filter_by_class()


if __name__ == "__main__":
    p = argparse.ArgumentParser(
        prog="python -m assets.quiet_warnings",
        description="Silence Dagster's preview/beta/supersession warnings in this venv.",
    )
    p.add_argument(
        "--install-pth", action="store_true", help=f"write {PTH_NAME} into site-packages"
    )
    args = p.parse_args()
    if args.install_pth:
        path, written = install_pth()
        if written:
            print(f"installed the warning filter: {path}")
    sys.exit(0)
