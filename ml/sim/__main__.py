"""``python -m ml.sim --out DIR --start 2026-01-01-00:00 --hours N --users U --seed S``.

Progress goes to stderr, one summary line to stdout. Any other SimConfig field can be
set with ``--set name=value`` (e.g. ``--set b_highlight=3.0``).
"""

from __future__ import annotations

import argparse
import dataclasses
import difflib
import sys

from ml.hours import InvalidHourError, parse_hour
from ml.io.store import StorageError
from ml.sim.config import SimConfig
from ml.sim.run import simulate

_DEFAULTS = SimConfig()


def _hour(text: str) -> str:
    try:
        parse_hour(text)
    except InvalidHourError as e:
        raise argparse.ArgumentTypeError(str(e)) from e
    return text


def _int_at_least(lo: int):
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if v < lo:
            raise argparse.ArgumentTypeError(f"must be >= {lo}, got {v}")
        return v

    return parse


def _rate(hi: float = 1.0):
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not 0.0 <= v < hi and not (hi == 1.0 and v == 1.0):
            raise argparse.ArgumentTypeError(
                f"must be in [0, {hi}{']' if hi == 1.0 else ')'}, got {v}"
            )
        return v

    return parse


def _override(text: str) -> tuple[str, object]:
    name, sep, value = text.partition("=")
    fields = {f.name: f for f in dataclasses.fields(SimConfig)}
    if not sep or name not in fields:
        close = difflib.get_close_matches(name, fields, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else " (see ml/sim/config.py)"
        raise argparse.ArgumentTypeError(
            f"expected NAME=VALUE with NAME a SimConfig field, got {text!r}{hint}"
        )
    default = getattr(_DEFAULTS, name)
    try:
        if isinstance(default, bool):
            parsed: object = value.lower() in ("1", "true", "yes")
        elif isinstance(default, int):
            parsed = int(value)
        elif isinstance(default, float):
            parsed = float(value)
        elif isinstance(default, tuple):
            parsed = tuple(type(default[0])(x) for x in value.split(","))
        else:
            parsed = value
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{name}: cannot read {value!r} as {type(default).__name__}"
        ) from None
    return name, parsed


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m ml.sim",
        description="Seeded live-streaming + short-video platform simulator: writes landing/ and oracle/.",
        epilog="More hours of the same world: the same --start, --seed and --users with a "
        "larger --hours write the earlier hours' event and segment files byte for byte again "
        "and add the later ones (the catalog export grows; the catalog as of an earlier hour "
        "does not change). "
        "Every SimConfig field (ml/sim/config.py) can be set with --set NAME=VALUE.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--out", required=True, help="data root: a local directory or s3://bucket/prefix"
    )
    p.add_argument(
        "--start",
        type=_hour,
        default=_DEFAULTS.start,
        help="first hour, YYYY-MM-DD-HH:00 or YYYY-MM-DD-HH (UTC)",
    )
    p.add_argument(
        "--hours", type=_int_at_least(1), default=_DEFAULTS.hours, help="hours of logs to write"
    )
    p.add_argument(
        "--users", type=_int_at_least(10), default=_DEFAULTS.users, help="users in the world"
    )
    p.add_argument(
        "--seed", type=_int_at_least(0), default=_DEFAULTS.seed, help="the world's random seed"
    )
    p.add_argument(
        "--late-rate",
        type=_rate(),
        default=_DEFAULTS.late_rate,
        help="fraction reported 1–3 h late",
    )
    p.add_argument(
        "--dup-rate",
        type=_rate(),
        default=_DEFAULTS.dup_rate,
        help="fraction re-delivered (same event_id)",
    )
    p.add_argument(
        "--bad-rate",
        type=_rate(0.5),
        default=_DEFAULTS.bad_rate,
        help="fraction of malformed lines",
    )
    p.add_argument(
        "--corrupt-files",
        type=_int_at_least(0),
        default=_DEFAULTS.corrupt_files,
        help="landing files written truncated",
    )
    p.add_argument(
        "--max-lines-per-file",
        type=_int_at_least(1),
        default=_DEFAULTS.max_lines_per_file,
        help="landing lines per file before a new part starts",
    )
    p.add_argument(
        "--threads", type=_int_at_least(0), default=_DEFAULTS.threads, help="gzip threads (0: auto)"
    )
    p.add_argument(
        "--set",
        type=_override,
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="any other SimConfig field, repeatable (e.g. --set b_highlight=3.0)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress bar on stderr")
    return p  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    values = {
        "start": args.start,
        "hours": args.hours,
        "users": args.users,
        "seed": args.seed,
        "late_rate": args.late_rate,
        "dup_rate": args.dup_rate,
        "bad_rate": args.bad_rate,
        "corrupt_files": args.corrupt_files,
        "max_lines_per_file": args.max_lines_per_file,
        "threads": args.threads,
    }
    values.update(dict(args.set))
    try:
        cfg = SimConfig(**values)
    except (ValueError, TypeError) as e:
        parser.error(str(e))
    try:
        summary = simulate(cfg, args.out, progress=not args.quiet)
    except StorageError as e:
        print(f"python -m ml.sim: error: {e}", file=sys.stderr)
        return 1
    print(summary.line())
    return 0


if __name__ == "__main__":
    sys.exit(main())
