"""Exposures, their GSU sequences and the label streams' samples as training tensors.

A sample emitted in hour H belongs to an exposure reported in H or up to ``look-back``
hours before (a slow sample 1 h after t0, a moment exit sample at the watch cap), so the
features come from ``live_exposures`` and ``exposure_sequences`` of the hours its
exposures were reported in. Everything is vectorised: an exposure-id join by Arrow's
hash lookup, the fixed-size-list sequence columns read as zero-copy (rows, L) views,
catalog rows of every sequence item by sorted-id search. One row per exposure is kept
(numpy, compact dtypes); a batch gathers rows and widens to the model's int64.

Content rows (``content_table``): row 0 is padding (zeros), then the catalog's short
videos, then its rooms, so one table serves the room query and the GSU items of both
domains. Items are looked up by id in the *current* catalog (not by the sequences'
``emb_row``), so a catalog refreshed since the sequences were written still resolves.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import torch

from ml.cross.catalog_view import CatalogView
from ml.cross.gsu import sequence_view
from ml.cross.history import LIVE_BASE
from ml.models.inputs import RankingInputs, gap_buckets
from ml.moment.features import FRESHNESS, ROOM_COUNTERS, USER_FEATURES, WINDOWS
from ml.schema import GSUS, PAGES, TASKS

FRESHNESS_CHOICES = tuple(f.removeprefix("f") for f in FRESHNESS)  # ("30s", "5m")
SEQ_FIELDS = ("item_id", "author_id", "category", "action", "mask", "gap_ms")
# Samples: the columns a training batch needs.
SAMPLE_COLUMNS = ["exposure_id", "emit_ms", *[f"y_{t}" for t in TASKS], *[f"m_{t}" for t in TASKS]]
EXPOSURE_COLUMNS = [
    "exposure_id", "user_id", "room_id", "author_id", "page", "t0_ms", "hour_of_day",
    "day_of_week",
]  # fmt: skip


class MissingExposureError(LookupError):
    """A sample whose exposure is in none of the exposure partitions given."""


def room_feature_columns(freshness: str) -> list[str]:
    """The real-time room features at one freshness: counts then CTRs (12 columns)."""
    if freshness not in FRESHNESS_CHOICES:
        raise ValueError(f"freshness {freshness!r}: one of {FRESHNESS_CHOICES}")
    f = f"f{freshness}"
    counts = [f"room_{c}_{w}_{f}" for w in WINDOWS for c in ROOM_COUNTERS]
    return counts + [f"room_ctr_{w}_{f}" for w in WINDOWS]


@dataclass(frozen=True)
class ContentTable:
    """The catalog's content embeddings as one table: 0 = padding, 1.. short videos, then rooms."""

    table: np.ndarray  # float32 (1 + n_videos + n_rooms, E)
    catalog: CatalogView

    @classmethod
    def from_catalog(cls, catalog: CatalogView) -> ContentTable:
        sv, rm = catalog.short_videos.embedding, catalog.rooms.embedding
        dim = sv.shape[1] if len(sv) else rm.shape[1] if len(rm) else 32
        table = np.zeros((1 + len(sv) + len(rm), dim), np.float32)
        table[1 : 1 + len(sv)] = sv
        table[1 + len(sv) :] = rm
        return cls(table, catalog)

    @property
    def room_offset(self) -> int:
        return 1 + len(self.catalog.short_videos.embedding)

    def room_rows(self, room_ids: np.ndarray) -> np.ndarray:
        r = self.catalog.rooms.rows_of(room_ids)
        return np.where(r >= 0, r + self.room_offset, 0).astype(np.int32)

    def item_rows(self, item_ids: np.ndarray, actions: np.ndarray) -> np.ndarray:
        """Rows of history items (any shape): the action's domain picks the catalog table."""
        flat_items, flat_actions = item_ids.reshape(-1), actions.reshape(-1)
        live = flat_actions >= LIVE_BASE
        out = np.zeros(len(flat_items), np.int32)
        sv = self.catalog.short_videos.rows_of(flat_items[~live])
        out[~live] = np.where(sv >= 0, sv + 1, 0)
        out[live] = self.room_rows(flat_items[live])
        return out.reshape(item_ids.shape)


@dataclass
class ExposureRows:
    """Model inputs of a set of exposures, one row each (numpy, compact dtypes)."""

    exposure_id: pa.Array
    t0_ms: np.ndarray
    user_id: np.ndarray
    room_id: np.ndarray
    author_id: np.ndarray
    context: np.ndarray  # int8 (N, 3)
    room_row: np.ndarray  # int32
    room_feats: np.ndarray  # float32 (N, 12)
    user_feats: np.ndarray  # float32 (N, 8)
    # (N, G, L): item, author (int64), category, row, gap (int32), action (int8), mask (bool)
    seq: dict[str, np.ndarray]
    # The id fields as rows of the model's hashed tables (``hash_for``), so a batch does
    # not hash the same ids again on every step; None: raw ids go to the model.
    table_rows: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.t0_ms)

    def hash_for(self, model) -> ExposureRows:
        """These rows with the id fields hashed once into ``model``'s table rows."""
        raw = {"user_id": self.user_id, "room_id": self.room_id, "author_id": self.author_id,
               "seq_item": self.seq["item"], "seq_author": self.seq["author"]}  # fmt: skip
        rows = {
            f: model.table_rows(f, torch.from_numpy(np.array(a, np.int64)))  # a writable copy
            .numpy()
            .astype(np.int32)
            for f, a in raw.items()
        }
        return dataclasses.replace(self, table_rows=rows)

    def inputs(self, idx: np.ndarray, content: torch.Tensor) -> RankingInputs:
        """RankingInputs of rows ``idx`` (int64 widening happens here, per batch)."""

        def long(a: np.ndarray) -> torch.Tensor:
            return torch.from_numpy(np.ascontiguousarray(a[idx], np.int64))

        s = self.seq
        ids = self.table_rows or {
            "user_id": self.user_id, "room_id": self.room_id, "author_id": self.author_id,
            "seq_item": s["item"], "seq_author": s["author"],
        }  # fmt: skip
        return RankingInputs(
            user_id=long(ids["user_id"]),
            room_id=long(ids["room_id"]),
            author_id=long(ids["author_id"]),
            context=long(self.context),
            room_row=long(self.room_row),
            content_table=content,
            room_feats=torch.from_numpy(self.room_feats[idx]),
            user_feats=torch.from_numpy(self.user_feats[idx]),
            seq_item=long(ids["seq_item"]),
            seq_author=long(ids["seq_author"]),
            seq_category=long(s["category"]),
            seq_row=long(s["row"]),
            seq_gap=long(s["gap"]),
            seq_action=long(s["action"]),
            seq_mask=torch.from_numpy(s["mask"][idx]),
            hashed=self.table_rows is not None,
        )


def _log1p(table: pa.Table, columns: list[str]) -> np.ndarray:
    cols = [table.column(c).to_numpy().astype(np.float32) for c in columns]
    return (
        np.log1p(np.maximum(np.stack(cols, axis=1), 0))
        if cols
        else np.zeros((table.num_rows, 0), np.float32)
    )


def _page_codes(pages: pa.ChunkedArray) -> np.ndarray:
    idx = pc.index_in(pages, value_set=pa.array(PAGES))
    return pc.fill_null(pc.add(idx, 1), 0).to_numpy(zero_copy_only=False).astype(np.int8)


def exposure_rows(
    exposures: pa.Table,
    sequences: pa.Table | None,
    content: ContentTable,
    freshness: str,
    seq_len: int,
) -> ExposureRows:
    """Join one hour's exposures with its sequences (by exposure_id) into ExposureRows.
    ``sequences`` None: Cross is off, the sequence fields are empty padding."""
    n = exposures.num_rows
    rf = room_feature_columns(freshness)
    counts, ctrs = rf[:-2], rf[-2:]
    room_feats = np.concatenate(
        [_log1p(exposures, counts), np.stack([exposures.column(c).to_numpy() for c in ctrs], 1)],
        axis=1,
    ).astype(np.float32)
    context = np.stack(
        [
            exposures.column("hour_of_day").to_numpy().astype(np.int8),
            exposures.column("day_of_week").to_numpy().astype(np.int8),
            _page_codes(exposures.column("page")),
        ],
        axis=1,
    )
    g = len(GSUS)
    if sequences is None:
        shape = (n, g, seq_len)
        seq = {
            "item": np.zeros(shape, np.int64), "author": np.zeros(shape, np.int64),
            "category": np.zeros(shape, np.int32), "row": np.zeros(shape, np.int32),
            "gap": np.zeros(shape, np.int32), "action": np.zeros(shape, np.int8),
            "mask": np.zeros(shape, np.bool_),
        }  # fmt: skip
    else:
        seq = _sequence_arrays(exposures, sequences, content, seq_len)
    ids = exposures.column("exposure_id").combine_chunks()
    return ExposureRows(
        exposure_id=ids,
        t0_ms=exposures.column("t0_ms").to_numpy(),
        user_id=exposures.column("user_id").to_numpy(),
        room_id=exposures.column("room_id").to_numpy(),
        author_id=exposures.column("author_id").to_numpy(),
        context=context,
        room_row=content.room_rows(exposures.column("room_id").to_numpy()),
        room_feats=room_feats,
        user_feats=_log1p(exposures, USER_FEATURES),
        seq=seq,
    )


def _sequence_arrays(
    exposures: pa.Table, sequences: pa.Table, content: ContentTable, seq_len: int
) -> dict[str, np.ndarray]:
    """(N, G, L) arrays of the exposures' sequences, in the exposures' row order."""
    sequences = sequences.combine_chunks()
    pos = pc.index_in(exposures.column("exposure_id"), value_set=sequences.column("exposure_id"))
    if pos.null_count:
        missing = exposures.filter(pc.is_null(pos)).column("exposure_id").slice(0, 3).to_pylist()
        raise MissingExposureError(
            f"{pos.null_count} exposures have no sequence row (e.g. {missing})"
        )
    order = pos.to_numpy(zero_copy_only=False)

    def field(f: str) -> np.ndarray:  # (N, G, L), gathered in exposure order
        views = [sequence_view(sequences.column(f"{g}_{f}"), seq_len) for g in GSUS]
        return np.stack(views, axis=1)[order]

    item, action = field("item_id"), field("action")
    return {
        "item": item,
        "author": field("author_id"),
        "category": (field("category") + 1).astype(np.int32),  # pad -1 -> 0
        "row": content.item_rows(item, action),
        "gap": gap_buckets(field("gap_ms")).astype(np.int32),
        "action": action.astype(np.int8),
        "mask": field("mask").astype(np.bool_),
    }


def concat_rows(parts: list[ExposureRows]) -> ExposureRows:
    """Several hours' ExposureRows as one (row order: the parts in order)."""
    if len(parts) == 1:
        return parts[0]
    cat = np.concatenate
    return ExposureRows(
        exposure_id=pa.concat_arrays([p.exposure_id for p in parts]),
        t0_ms=cat([p.t0_ms for p in parts]),
        user_id=cat([p.user_id for p in parts]),
        room_id=cat([p.room_id for p in parts]),
        author_id=cat([p.author_id for p in parts]),
        context=cat([p.context for p in parts]),
        room_row=cat([p.room_row for p in parts]),
        room_feats=cat([p.room_feats for p in parts]),
        user_feats=cat([p.user_feats for p in parts]),
        seq={k: cat([p.seq[k] for p in parts]) for k in parts[0].seq},
    )


@dataclass
class SampleRows:
    """One label stream's samples: which exposure row each belongs to, when it was emitted,
    its labels and masks."""

    stream: str
    row: np.ndarray  # int64, into the ExposureRows the samples were joined to
    emit_ms: np.ndarray  # int64
    y: np.ndarray  # float32 (S, T)
    m: np.ndarray  # bool (S, T)

    def __len__(self) -> int:
        return len(self.emit_ms)


def join_samples(stream: str, samples: pa.Table, rows: ExposureRows) -> SampleRows:
    """Each sample's exposure row (Arrow hash lookup on exposure_id); a sample whose
    exposure is not among ``rows`` fails naming how many and which."""
    pos = pc.index_in(samples.column("exposure_id"), value_set=rows.exposure_id)
    if pos.null_count:
        missing = samples.filter(pc.is_null(pos)).column("exposure_id").slice(0, 3).to_pylist()
        raise MissingExposureError(
            f"{pos.null_count} {stream} samples refer to exposures that are in none of the "
            f"exposure partitions read (e.g. {missing})"
        )
    return SampleRows(
        stream=stream,
        row=pos.to_numpy(zero_copy_only=False).astype(np.int64),
        emit_ms=samples.column("emit_ms").to_numpy().astype(np.int64),
        y=np.stack([samples.column(f"y_{t}").to_numpy() for t in TASKS], 1).astype(np.float32),
        m=np.stack(
            [samples.column(f"m_{t}").to_numpy(zero_copy_only=False) for t in TASKS], 1
        ).astype(np.bool_),
    )
