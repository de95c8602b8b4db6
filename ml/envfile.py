"""The repository's ``.env``: defaults that plain ``dagster ...`` commands pick up.

Dagster's CLI reads ``.env`` from its working directory and lets it *override* the
environment. Each line is therefore written as ``KEY=${KEY:-value}``: python-dotenv
resolves ``${KEY:-...}`` against the process environment first, so an exported ``KEY``
(a test's ``DAGSTER_HOME``, a shell's ``LIVECROSS_HOME``) still wins, and ``value`` is
only the default. ``make demo`` / ``make dev`` write DAGSTER_HOME and LIVECROSS_HOME here,
so ``dagster dev`` or ``dagster asset materialize -m assets.definitions`` run from the
repository root reach the same instance and data root without exporting anything.

``write_env_file`` updates or adds keys and keeps every other line (comments, keys a user
added by hand) as it was. No dagster import: ``python -m ml.envfile PATH KEY=VALUE ...``
is what the Makefile runs.
"""

from __future__ import annotations

import os
import re
import sys
import tempfile
from pathlib import Path

_KEY_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
# KEY=value, KEY="value", KEY='value', optionally after "export ".
_LINE_RE = re.compile(r"^\s*(?:export\s+)?(?P<key>[A-Za-z_][A-Za-z0-9_]*)\s*=\s*(?P<value>.*)$")
# What a value may hold and still be written bare: no quote, comment, escape or brace
# characters that python-dotenv would read differently.
_BARE_RE = re.compile(r"^[^\s\"'#\\{}$`]*$")


def env_line(key: str, value: str) -> str:
    """``KEY=${KEY:-value}`` (double-quoted when the value holds spaces and the like)."""
    if not _KEY_RE.match(key):
        raise ValueError(f"invalid variable name {key!r}")
    value = str(value)
    if any(c in value for c in '}\n\r"\\$`'):
        # dotenv's ${KEY:-default} cannot hold '}' and a newline ends the line; the rest
        # would need escapes that python-dotenv and shells do not read alike.
        raise ValueError(f"{key}: value {value!r} cannot be written to a .env file")
    default = f"${{{key}:-{value}}}"
    return f"{key}={default}" if _BARE_RE.match(value) else f'{key}="{default}"'


def _parse(line: str) -> tuple[str, str] | None:
    """(key, raw value) of an assignment line, or None (comment, blank, anything else)."""
    if line.lstrip().startswith("#"):
        return None
    m = _LINE_RE.match(line.rstrip("\r\n"))
    if not m:
        return None
    return m.group("key"), m.group("value").strip()


def write_env_file(path: str | os.PathLike, values: dict[str, str]) -> None:
    """Set ``values`` in the ``.env`` at ``path`` as ``KEY=${KEY:-value}`` lines: a key
    already there is rewritten in place (its first line; later duplicates are dropped),
    a new key is appended, every other line is kept. The file is replaced atomically."""
    p = Path(path)
    new = {k: env_line(k, v) for k, v in values.items()}
    lines = p.read_text().splitlines() if p.exists() else []
    out: list[str] = []
    done: set[str] = set()
    for line in lines:
        parsed = _parse(line)
        key = parsed[0] if parsed else None
        if key in new:
            if key not in done:
                out.append(new[key])
                done.add(key)
            continue
        out.append(line)
    out.extend(new[k] for k in new if k not in done)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=".env.tmp-")
    try:
        with os.fdopen(fd, "w") as f:
            f.write("\n".join(out) + "\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, p)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0].startswith("-"):
        print("usage: python -m ml.envfile PATH KEY=VALUE [KEY=VALUE ...]", file=sys.stderr)
        return 2
    values = {}
    for a in args[1:]:
        key, sep, value = a.partition("=")
        if not sep:
            print(f"python -m ml.envfile: expected KEY=VALUE, got {a!r}", file=sys.stderr)
            return 2
        values[key] = value
    try:
        write_env_file(args[0], values)
    except ValueError as e:
        print(f"python -m ml.envfile: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
