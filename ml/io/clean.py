"""``python -m ml.io.clean s3://bucket/prefix``: delete an S3 data root (``make clean FORCE=1``).

Every object under the prefix goes, through the same s3fs client (endpoint, credentials,
deadlines) the pipeline uses. A bare bucket (``s3://bucket``) is refused: that would be
the whole bucket, not a data root inside it. Local roots are ``rm -rf`` in the Makefile.
"""

from __future__ import annotations

import sys

from ml.io.store import StorageError, Store


def remove_root(root: str) -> int:
    """Delete every object under the S3 data root ``root``; how many there were."""
    if not root.startswith("s3://"):
        raise StorageError(f"{root!r} is not an s3:// data root")
    prefix = root[len("s3://") :].strip("/").split("/", 1)
    if len(prefix) < 2 or not prefix[1]:
        raise StorageError(
            f"refusing to delete {root!r}: that is a whole bucket, not a data root inside it "
            "(LIVECROSS_HOME=s3://bucket/prefix)"
        )
    store = Store(root)
    store.check_reachable()
    with store._guard(f"list {root!r}") as call:
        n = len(call("find", store.url("")[len("s3://") :]))
    store.delete("")
    return n


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m ml.io.clean s3://bucket/prefix", file=sys.stderr)
        return 2
    try:
        n = remove_root(args[0])
    except StorageError as e:
        print(f"python -m ml.io.clean: error: {e}", file=sys.stderr)
        return 1
    print(f"deleted {n} objects under {args[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
