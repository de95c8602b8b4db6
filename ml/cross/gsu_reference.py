"""The GSUs written the obvious way, one exposure at a time with pandas: the definition
the fast path (``ml.cross.gsu``) is checked against by the tests, the leakage check and
the benchmark's peer. Slow (milliseconds per exposure); never on the hot path."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.cross.catalog_view import CatalogView
from ml.cross.gsu import DEFAULT_LEN, FIELDS, GSUS
from ml.cross.history import DEFAULT_CAP, FLAG_LONG_VIEW, LIVE_ENTER, LIVE_EXIT, SV_PLAY


def reference_rows(
    rows: pd.DataFrame,
    t0: int,
    room_author: int,
    room_embedding: np.ndarray | None,
    video_embeddings: np.ndarray,
    length: int = DEFAULT_LEN,
    cap: int = DEFAULT_CAP,
) -> tuple[dict[str, pd.DataFrame], np.ndarray]:
    """The selected history rows of each GSU, in sequence order, and the top-k scores.

    ``rows``: one user's history rows in store order (history[H-1], then the hour's own)."""
    r = rows[rows.report_time_ms < t0].tail(cap)
    plays = r[r.action == SV_PLAY]
    out = {"sv_short": plays.iloc[::-1].head(length)}
    cand = plays[plays.emb_row >= 0]
    scores = np.zeros(0, np.float32)
    if room_embedding is not None and len(cand):
        emb = video_embeddings[cand.emb_row.to_numpy()].astype(np.float64)
        s = (emb @ room_embedding.astype(np.float64)).astype(np.float32)
        ranked = cand.assign(_score=s, _recency=np.arange(len(cand))).sort_values(
            ["_score", "_recency"], ascending=False
        )
        out["sv_topk"] = ranked.head(length)
        scores = out["sv_topk"]["_score"].to_numpy(np.float32)
    else:
        out["sv_topk"] = cand.head(0)
    out["author"] = r[r.author_id == room_author].iloc[::-1].head(length)
    out["long_view"] = r[(r["flags"] & FLAG_LONG_VIEW) > 0].iloc[::-1].head(length)
    out["live"] = r[r.action.isin([LIVE_ENTER, LIVE_EXIT])].iloc[::-1].head(length)
    return out, scores


def reference_sequences(
    rows: pd.DataFrame,
    exposure: dict,
    catalog: CatalogView,
    length: int = DEFAULT_LEN,
    cap: int = DEFAULT_CAP,
) -> dict[str, list]:
    """The output columns (as ``exposure_sequences`` stores them) of one exposure
    (exposure_id, user_id, room_id, author_id, t0_ms)."""
    room_row = catalog.rooms.rows_of(np.array([exposure["room_id"]]))[0]
    room_emb = catalog.rooms.embedding[room_row] if room_row >= 0 else None
    t0 = int(exposure["t0_ms"])
    picked, scores = reference_rows(
        rows,
        t0,
        int(exposure["author_id"]),
        room_emb,
        catalog.short_videos.embedding,
        length,
        cap,
    )
    out: dict[str, list] = {}
    for g in GSUS:
        sel = picked[g]
        n = len(sel)
        for f, (_, pad) in FIELDS.items():
            if f == "gap_ms":
                vals = (t0 - sel.event_time_ms).tolist()
            elif f == "mask":
                vals = [1] * n
            else:
                vals = sel[f].tolist()
            out[f"{g}_{f}"] = [int(v) for v in vals] + [pad] * (length - n)
        out[f"{g}_len"] = n
        out[f"{g}_max_report_ms"] = int(sel.report_time_ms.max()) if n else -1
    out["sv_topk_score"] = [float(s) for s in scores] + [0.0] * (length - len(scores))
    return out
