"""Row validation of raw events: one reason code per row (0 = valid).

The rules are checked in ``S.QUARANTINE_REASONS`` order and the first that applies
wins. ``validate_reference`` states them as Arrow compute expressions; ``validate_events``
gives the same codes from one compiled pass per record batch (the expressions make
about thirty passes over the table and copy every chunked column).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numba import njit

from ml import kernel_cache  # noqa: F401  (numba's cache: keyed by all kernel sources)
from ml import schema as S
from ml.hours import HOUR_MS

_CODE = {r: i + 1 for i, r in enumerate(S.QUARANTINE_REASONS)}
# The kernel's view of a row: presence of these fields, in this order ...
_FIELDS = (*S.ID_FIELDS, *S.TIME_FIELDS, "watch_ms", "duration_ms", "gift_value")
# ... and the codes of the rules it checks, in order (unknown_item is checked here).
_RULES = np.array(
    [_CODE[r] for r in S.QUARANTINE_REASONS if r not in ("empty_line", "invalid_utf8",
     "malformed_json", "wrong_type", "unknown_page", "unknown_item")], np.int8,
)  # fmt: skip
_PAGES = pa.array(S.PAGES, pa.string())
_TYPE_BYTES = np.frombuffer("".join(S.ALL_EVENT_TYPES).encode(), np.uint8)
_TYPE_OFF = np.cumsum([0] + [len(t) for t in S.ALL_EVENT_TYPES]).astype(np.int64)
# The kernel knows the rules by position; a change of the contract must be made there too.
assert S.ID_FIELDS[:2] == ("event_id", "event_type") and len(S.ID_FIELDS) == 5
assert S.QUARANTINE_REASONS[4:13] == (
    "missing_id", "unknown_event_type", "missing_field", "missing_time",
    "report_time_outside_partition", "event_time_absurd", "event_after_report",
    "negative_value", "absurd_value",
)  # fmt: skip


def validate_events(
    table: pa.Table, domain: str, hour_ms: int, known_items: pa.Array | None
) -> np.ndarray:
    """Reason code per row (0 = valid), first applicable reason in QUARANTINE_REASONS order."""
    if table.schema != S.RAW_EVENT_SCHEMA:
        return validate_reference(table, domain, hour_ms, known_items)
    allowed = np.array([t in S.EVENT_TYPES[domain] for t in S.ALL_EVENT_TYPES])
    required = np.zeros((len(S.ALL_EVENT_TYPES), len(_FIELDS)), np.bool_)
    for etype, fields in S.REQUIRED_BY_TYPE[domain].items():
        for name in fields:
            required[S.TYPE_CODE[etype], _FIELDS.index(name)] = True
    limits = np.array(
        [hour_ms, hour_ms + HOUR_MS, S.MIN_VALID_TIME_MS, S.MAX_REPORT_DELAY_MS,
         S.CLOCK_SKEW_MS, S.MAX_WATCH_MS, S.MAX_DURATION_MS], np.int64,
    )  # fmt: skip
    codes = np.zeros(table.num_rows, np.int8)
    row = 0
    for batch in table.to_batches():
        n = batch.num_rows
        if n == 0:
            continue
        etype = batch.column("event_type")
        values = [_values(batch.column(f)) for f in _FIELDS[5:]]
        _codes(
            codes[row : row + n], _validity(batch, n), _offsets(batch.column("event_id")),
            _offsets(etype), _bytes(etype), *values, _TYPE_BYTES, _TYPE_OFF, allowed,
            required, limits, S.MAX_GIFT_VALUE, _RULES,
        )  # fmt: skip
        row += n
    page = table.column("page")
    known_page = pc.or_(pc.is_null(page), pc.is_in(page, value_set=_PAGES))  # null: unknown
    bad_page = ~known_page.to_numpy(zero_copy_only=False)
    codes[bad_page & (codes == 0)] = _CODE["unknown_page"]
    if known_items is not None:
        unknown = ~pc.is_in(table.column("item_id"), value_set=known_items).to_numpy(
            zero_copy_only=False
        )
        codes[unknown & (codes == 0)] = _CODE["unknown_item"]
    return codes


def _validity(batch: pa.RecordBatch, n: int) -> np.ndarray:
    """bool [_FIELDS, rows]: is the value present?"""
    out = np.ones((len(_FIELDS), n), np.bool_)
    for j, name in enumerate(_FIELDS):
        c = batch.column(name)
        if c.null_count:
            out[j] = c.is_valid().to_numpy(zero_copy_only=False)
    return out


def _offsets(arr: pa.Array) -> np.ndarray:
    return np.frombuffer(arr.buffers()[1], np.int32)[arr.offset : arr.offset + len(arr) + 1]


def _bytes(arr: pa.Array) -> np.ndarray:
    data = arr.buffers()[2]
    return np.frombuffer(data, np.uint8) if data is not None else np.zeros(0, np.uint8)


def _values(arr: pa.Array) -> np.ndarray:
    """The value buffer (slots of nulls hold anything: the kernel reads them as 0)."""
    dtype = np.float64 if pa.types.is_floating(arr.type) else np.int64
    return np.frombuffer(arr.buffers()[1], dtype)[arr.offset : arr.offset + len(arr)]


@njit(nogil=True, cache=True)
def _codes(
    out, valid, eid_off, et_off, et_data, etime, rtime, watch, dur, gift,
    type_bytes, type_off, allowed, required, limits, max_gift, rules,
):  # fmt: skip
    hour, hour_end, min_time, max_delay, skew, max_watch, max_dur = limits
    for i in range(len(out)):
        # missing_id: an id field null, or an empty event_id / event_type
        if not (valid[0, i] and valid[1, i] and valid[2, i] and valid[3, i] and valid[4, i]):
            out[i] = rules[0]
            continue
        if eid_off[i + 1] == eid_off[i] or et_off[i + 1] == et_off[i]:
            out[i] = rules[0]
            continue
        code = -1  # unknown_event_type: not one of the domain's types
        a, b = et_off[i], et_off[i + 1]
        for t in range(len(type_off) - 1):
            if type_off[t + 1] - type_off[t] == b - a:
                same = True
                for q in range(b - a):
                    if et_data[a + q] != type_bytes[type_off[t] + q]:
                        same = False
                        break
                if same:
                    code = t
                    break
        if code < 0 or not allowed[code]:
            out[i] = rules[1]
            continue
        lacks = False  # missing_field: a field its type requires
        for j in range(valid.shape[0]):
            if required[code, j] and not valid[j, i]:
                lacks = True
        if lacks:
            out[i] = rules[2]
        elif not (valid[5, i] and valid[6, i]):
            out[i] = rules[3]  # missing_time
        else:
            et, rt = etime[i], rtime[i]
            w = watch[i] if valid[7, i] else 0
            d = dur[i] if valid[8, i] else 0
            g = gift[i] if valid[9, i] else 0.0
            if rt < hour or rt >= hour_end:
                out[i] = rules[4]  # report_time_outside_partition
            elif et < min_time or et < rt - max_delay:
                out[i] = rules[5]  # event_time_absurd
            elif et > rt + skew:
                out[i] = rules[6]  # event_after_report
            elif w < 0 or d < 0 or g < 0:
                out[i] = rules[7]  # negative_value
            elif w > max_watch or d > max_dur or not (g <= max_gift):
                out[i] = rules[8]  # absurd_value


def validate_reference(
    table: pa.Table, domain: str, hour_ms: int, known_items: pa.Array | None
) -> np.ndarray:
    """The rules as Arrow compute expressions: the specification ``validate_events`` meets."""
    n = table.num_rows
    codes = np.zeros(n, np.int8)
    if n == 0:
        return codes

    def col(name: str, fill) -> np.ndarray:
        c = table.column(name)
        if c.null_count:
            c = pc.fill_null(c, fill)
        return c.to_numpy()

    def null(name: str) -> np.ndarray:
        return pc.is_null(table.column(name)).to_numpy(zero_copy_only=False)

    def mark(reason: str, mask: np.ndarray) -> None:
        codes[mask & (codes == 0)] = _CODE[reason]

    missing = np.zeros(n, bool)
    for name in S.ID_FIELDS:
        missing |= null(name)
        if pa.types.is_string(table.schema.field(name).type):
            missing |= pc.fill_null(pc.equal(table.column(name), ""), False).to_numpy(
                zero_copy_only=False
            )
    mark("missing_id", missing)

    et_col = table.column("event_type")
    allowed = pa.array(S.EVENT_TYPES[domain])
    mark("unknown_event_type", ~pc.is_in(et_col, value_set=allowed).to_numpy(zero_copy_only=False))

    missing_field = np.zeros(n, bool)
    for etype, fields in S.REQUIRED_BY_TYPE[domain].items():
        is_type = pc.fill_null(pc.equal(et_col, etype), False).to_numpy(zero_copy_only=False)
        for name in fields:
            missing_field |= is_type & null(name)
    mark("missing_field", missing_field)

    mark("missing_time", null("event_time_ms") | null("report_time_ms"))
    rt, et = col("report_time_ms", 0), col("event_time_ms", 0)
    mark("report_time_outside_partition", (rt < hour_ms) | (rt >= hour_ms + HOUR_MS))
    mark("event_time_absurd", (et < S.MIN_VALID_TIME_MS) | (et < rt - S.MAX_REPORT_DELAY_MS))
    mark("event_after_report", et > rt + S.CLOCK_SKEW_MS)

    watch, dur, gift = col("watch_ms", 0), col("duration_ms", 0), col("gift_value", 0.0)
    mark("negative_value", (watch < 0) | (dur < 0) | (gift < 0))
    mark(
        "absurd_value",
        (watch > S.MAX_WATCH_MS) | (dur > S.MAX_DURATION_MS) | ~(gift <= S.MAX_GIFT_VALUE),
    )
    if known_items is not None:
        known = pc.is_in(table.column("item_id"), value_set=known_items).to_numpy(
            zero_copy_only=False
        )
        mark("unknown_item", ~known)
    return codes
