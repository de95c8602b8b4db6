"""Storage resource: the data root (local directory or S3), chosen by ``LIVECROSS_HOME``."""

from __future__ import annotations

import os

import dagster as dg

from ml.io.store import DEFAULT_HOME, Store, s3_storage_options

_AWS_VARS = {
    "aws_access_key_id": "AWS_ACCESS_KEY_ID",
    "aws_secret_access_key": "AWS_SECRET_ACCESS_KEY",
    "aws_region": "AWS_REGION",
    "s3_endpoint_url": "AWS_ENDPOINT_URL",
}


class LakeStorage(dg.ConfigurableResource):
    """Where the lake, oracle, models and TensorBoard logs live.

    ``root`` is a local path or ``s3://bucket/prefix``. For S3 the credentials come from
    ``dagster.EnvVar`` (see ``storage_from_env``) or, if unset, botocore's usual chain.
    ``storage_timeout_s`` bounds each S3 call, retries included; unset, it is
    ``$LIVECROSS_STORAGE_TIMEOUT_S`` or 30 s (see ``ml.io.store.storage_timeout_s``).
    """

    root: str = DEFAULT_HOME
    s3_endpoint_url: str | None = None
    aws_access_key_id: str | None = None
    aws_secret_access_key: str | None = None
    aws_region: str | None = None
    storage_timeout_s: float | None = None

    def store(self, root: str | None = None) -> Store:
        """The Store for ``root`` (default: this resource's root), with these credentials."""
        root = root or self.root
        if not root.startswith("s3://"):
            return Store(root, timeout_s=self.storage_timeout_s)
        store = Store(
            root,
            s3_storage_options(
                endpoint_url=self.s3_endpoint_url,
                key=self.aws_access_key_id,
                secret=self.aws_secret_access_key,
                region=self.aws_region,
                timeout_s=self.storage_timeout_s,
            ),
            timeout_s=self.storage_timeout_s,
        )
        # One listing of the bucket: an unreachable endpoint or a missing bucket is named
        # now, not reported later as a missing table or an unmaterialized partition.
        store.check_reachable()
        return store


class LandingZone(dg.ConfigurableResource):
    """The landing zone the log sinks write to: ``<root>/landing/...``.

    By default the same root as the lake; ``root`` points it elsewhere (another bucket).
    """

    storage: LakeStorage
    root: str | None = None

    def store(self) -> Store:
        return self.storage.store(self.root)


def storage_from_env() -> LakeStorage:
    """The storage resource for ``LIVECROSS_HOME``; secrets stay ``EnvVar`` references."""
    root = os.environ.get("LIVECROSS_HOME", DEFAULT_HOME)
    if not root.startswith("s3://"):
        return LakeStorage(root=root)
    # Only variables that are set become EnvVars: an unset EnvVar is a config error.
    secrets = {field: dg.EnvVar(var) for field, var in _AWS_VARS.items() if os.environ.get(var)}
    if "s3_endpoint_url" not in secrets and os.environ.get("AWS_ENDPOINT_URL_S3"):
        secrets["s3_endpoint_url"] = dg.EnvVar("AWS_ENDPOINT_URL_S3")
    return LakeStorage(root=root, **secrets)


def landing_from_env(storage: LakeStorage) -> LandingZone:
    return LandingZone(storage=storage, root=os.environ.get("LIVECROSS_LANDING") or None)
