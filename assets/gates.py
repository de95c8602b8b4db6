"""Asset checks whose blocking verdicts hold across runs (ml.io.gates).

``lake_check`` is ``dg.asset_check`` for every check of this project. A blocking one also
records its verdict beside the partition it judged (a check that raises counts as
failed), and ``assets.lake.require_published`` refuses a partition with a failed verdict
in any later run. While a check runs, reads of its own asset are not gated: a check
re-run after a threshold change must see the partition it judges.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
from collections.abc import Callable

import dagster as dg

from assets.partitions import HOUR_DIM, VARIANT_DIM
from ml.io.gates import record_verdict
from ml.io.lake import partition_dir, variant_dir

# The asset whose check is running in this step (None: an asset's own code is running).
CHECKING: contextvars.ContextVar[str | None] = contextvars.ContextVar("checking", default=None)


def partition_rel(asset: str, partition_key) -> str:
    """The lake path of ``asset``'s partition ``partition_key`` (hourly or hour|variant)."""
    if isinstance(partition_key, dg.MultiPartitionKey):
        keys = partition_key.keys_by_dimension
        return variant_dir(asset, keys[VARIANT_DIM], keys[HOUR_DIM])
    return partition_dir(asset, partition_key)


def _detail(result: dg.AssetCheckResult) -> str:
    """The figures a failed check computed, in one line (the verdict's reason)."""
    figures = []
    for k, v in (result.metadata or {}).items():
        value = getattr(v, "value", v)
        if isinstance(value, bool):
            continue
        if isinstance(value, float):
            figures.append(f"{k}={value:.4g}")
        elif isinstance(value, int):
            figures.append(f"{k}={value}")
    return ", ".join(figures)


def lake_check(
    *, asset: str, name: str | None = None, blocking: bool = False, **kwargs
) -> Callable:
    """``dg.asset_check(asset=, name=, blocking=, ...)`` (name: the function's by default);
    the function must take ``context`` and the ``storage`` resource when ``blocking``."""

    def decorate(fn: Callable) -> dg.AssetChecksDefinition:
        check_name = name or fn.__name__
        signature = inspect.signature(fn)
        if blocking and not {"context", "storage"} <= set(signature.parameters):
            raise TypeError(f"blocking check {check_name} must take `context` and `storage`")

        @functools.wraps(fn)
        def run(*args, **kw):
            bound = signature.bind(*args, **kw)
            token = CHECKING.set(asset)
            try:
                result = fn(*args, **kw)
            except Exception as e:
                if blocking:
                    _record(bound, False, f"the check raised {type(e).__name__}: {e}")
                raise
            finally:
                CHECKING.reset(token)
            if blocking:
                _record(bound, result.passed, "" if result.passed else _detail(result))
            return result

        def _record(bound, passed: bool, detail: str) -> None:
            context, storage = bound.arguments["context"], bound.arguments["storage"]
            rel = partition_rel(asset, context.partition_key)
            record_verdict(storage.store(), rel, check_name, passed, detail)

        return dg.asset_check(asset=asset, name=check_name, blocking=blocking, **kwargs)(run)

    return decorate
