"""Parse and validate batches of interaction events, vectorised over the batch.

An event value is UTF-8 ``user:item`` or ``user:item:weight``. Ids are non-empty, at most
``max_id_bytes`` bytes, and contain neither ``:`` nor control characters (a newline in an id would
break every line-based format, including ``POST /interactions``). A weight is a number from
``MIN_WEIGHT`` to ``MAX_WEIGHT`` (finite, positive, meaningful in float32); without one it is 1.

The parser never loops over events in Python: byte-level checks run in numpy over the concatenated
batch, ids are gathered into fixed-width byte arrays and de-duplicated with ``np.unique``, and only
the *distinct* ids of a batch are decoded into ``str``. Downstream code (the vocabulary) therefore
does work proportional to the number of distinct ids, not the number of events.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal, cast, get_args

import numpy as np
import numpy.typing as npt

__all__ = [
    "DEFAULT_MAX_ID_BYTES",
    "MAX_WEIGHT",
    "MIN_WEIGHT",
    "REJECT_REASONS",
    "ParsedBatch",
    "RejectReason",
    "format_event",
    "parse_values",
]

RejectReason = Literal[
    "empty",
    "missing_field",
    "extra_field",
    "control_char",
    "empty_id",
    "id_too_long",
    "not_utf8",
    "bad_weight",
]
#: Every reason, in the order checked; a record is given the first that applies.
REJECT_REASONS: Final[tuple[RejectReason, ...]] = get_args(RejectReason)
_CODE: Final[dict[RejectReason, int]] = {reason: i + 1 for i, reason in enumerate(REJECT_REASONS)}

DEFAULT_MAX_ID_BYTES: Final = 256
#: Accepted weights: finite, positive, and representable in float32 without loss of meaning.
MIN_WEIGHT: Final = 1e-30
MAX_WEIGHT: Final = 1e30
_COLON: Final = ord(":")
_OK: Final = 0

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, slots=True)
class ParsedBatch:
    """The outcome of parsing one batch.

    Attributes
    ----------
    accepted : ndarray of int64
        Positions (in the input batch) of the valid events, in input order.
    user_keys, item_keys : list of str
        The distinct user and item ids of the valid events.
    user_index, item_index : ndarray of int64
        For each accepted event, its position in ``user_keys`` / ``item_keys``.
    weights : ndarray of float32
        For each accepted event, its weight (1.0 when the event has none).
    rejected : ndarray of int64
        Positions of the invalid events.
    reject_codes : ndarray of uint8
        For each rejected event, ``1 + REJECT_REASONS.index(reason)``.
    """

    accepted: IntArray
    user_keys: list[str]
    user_index: IntArray
    item_keys: list[str]
    item_index: IntArray
    weights: npt.NDArray[np.float32]
    rejected: IntArray
    reject_codes: npt.NDArray[np.uint8]

    def __len__(self) -> int:
        return int(self.accepted.size)

    def reason_of(self, k: int) -> RejectReason:
        """The reason the ``k``-th rejected event was rejected."""
        return REJECT_REASONS[int(self.reject_codes[k]) - 1]

    def reject_counts(self) -> dict[RejectReason, int]:
        """How many events were rejected, per reason (reasons with no rejects left out)."""
        counts = np.bincount(self.reject_codes, minlength=len(REJECT_REASONS) + 1)
        return {r: int(counts[_CODE[r]]) for r in REJECT_REASONS if counts[_CODE[r]]}

    def select(self, keep: npt.NDArray[np.bool_]) -> ParsedBatch:
        """The batch with only the accepted events where ``keep`` is True (ids keep their keys)."""
        return replace(
            self,
            accepted=self.accepted[keep],
            user_index=self.user_index[keep],
            item_index=self.item_index[keep],
            weights=self.weights[keep],
        )

    def users(self) -> list[str]:
        """The user id of every accepted event (materialised; for tests and small batches)."""
        return [self.user_keys[i] for i in self.user_index]

    def items(self) -> list[str]:
        """The item id of every accepted event (materialised; for tests and small batches)."""
        return [self.item_keys[i] for i in self.item_index]


def format_event(user: str, item: str, weight: float | None = None) -> bytes:
    """Encode one event as the wire format ``user:item[:weight]``."""
    text = f"{user}:{item}" if weight is None else f"{user}:{item}:{weight!r}"
    return text.encode("utf-8")


def _gather(
    buf: npt.NDArray[np.uint8], starts: IntArray, lengths: IntArray
) -> npt.NDArray[np.bytes_]:
    """Copy variable-length byte slices of ``buf`` into one fixed-width ``S`` array."""
    width = int(lengths.max()) if lengths.size else 0
    if width == 0:
        return np.zeros(lengths.size, dtype="S1")
    cols = np.arange(width)
    mask = cols < lengths[:, None]
    out = np.zeros((lengths.size, width), dtype=np.uint8)
    out[mask] = buf[(starts[:, None] + cols)[mask]]
    return out.view(f"S{width}").ravel()


def _decode_unique(
    ids: npt.NDArray[np.bytes_],
) -> tuple[list[str], IntArray, npt.NDArray[np.bool_]]:
    """Distinct ids as ``str``, the inverse map, and which distinct ids are not UTF-8."""
    uniques, inverse = np.unique(ids, return_inverse=True)
    keys: list[str] = []
    bad = np.zeros(uniques.size, dtype=bool)
    for k, raw in enumerate(uniques.tolist()):
        try:
            keys.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            keys.append("")
            bad[k] = True
    return keys, inverse.astype(np.int64).ravel(), bad


def _parse_weights(raw: npt.NDArray[np.bytes_]) -> npt.NDArray[np.float64]:
    """Parse weights; unparsable ones become NaN (and are rejected by the caller)."""
    try:
        return raw.astype(np.float64)
    except ValueError:
        pass
    out = np.empty(raw.size, dtype=np.float64)
    for k, text in enumerate(raw.tolist()):  # slow path: only batches with a bad weight
        try:
            out[k] = float(text)
        except ValueError:
            out[k] = np.nan
    return out


def parse_values(
    values: Sequence[bytes | None], *, max_id_bytes: int = DEFAULT_MAX_ID_BYTES
) -> ParsedBatch:
    """Parse a batch of raw event values.

    Parameters
    ----------
    values : sequence of bytes or None
        Raw Kafka message values; ``None`` (a tombstone) counts as empty.
    max_id_bytes : int
        Longest accepted user or item id, in UTF-8 bytes.

    Returns
    -------
    ParsedBatch
        Valid events (as distinct ids plus per-event indices and weights) and the positions and
        reasons of the invalid ones. Never raises on bad input.
    """
    n = len(values)
    # Tombstones (None) are rare: replace them only when the C-speed membership test finds one.
    raw = cast(
        Sequence[bytes], [b"" if v is None else v for v in values] if None in values else values
    )
    lengths = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    buf = np.frombuffer(b"".join(raw), dtype=np.uint8)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    record_of_byte = np.repeat(np.arange(n), lengths)

    colon_at = np.flatnonzero(buf == _COLON)
    colon_record = record_of_byte[colon_at]
    colons = np.bincount(colon_record, minlength=n)
    controls = np.bincount(record_of_byte[(buf < 0x20) | (buf == 0x7F)], minlength=n)

    # Position of each record's first and second colon (only meaningful where they exist).
    first = np.zeros(n, dtype=np.int64)
    second = np.zeros(n, dtype=np.int64)
    if colon_at.size:
        rec, first_k = np.unique(colon_record, return_index=True)
        first[rec] = colon_at[first_k]
        two = colons[rec] >= 2
        second[rec[two]] = colon_at[first_k[two] + 1]

    has_weight = colons == 2
    user_len = first - starts
    item_end = np.where(has_weight, second, ends)
    item_len = item_end - first - 1

    code = np.zeros(n, dtype=np.uint8)

    def flag(reason: RejectReason, where: npt.NDArray[np.bool_]) -> None:
        code[(code == _OK) & where] = _CODE[reason]

    flag("empty", lengths == 0)
    flag("missing_field", colons == 0)
    flag("extra_field", colons > 2)
    flag("control_char", controls > 0)
    flag("empty_id", (user_len <= 0) | (item_len <= 0))
    flag("id_too_long", (user_len > max_id_bytes) | (item_len > max_id_bytes))

    weights = np.ones(n, dtype=np.float64)
    weighted = np.flatnonzero(has_weight & (code == _OK))
    if weighted.size:
        w = _parse_weights(
            _gather(buf, second[weighted] + 1, ends[weighted] - second[weighted] - 1)
        )
        weights[weighted] = w
        flag("bad_weight", ~((weights >= MIN_WEIGHT) & (weights <= MAX_WEIGHT)))

    ok = np.flatnonzero(code == _OK)
    user_keys, user_index, user_bad = _decode_unique(_gather(buf, starts[ok], user_len[ok]))
    item_keys, item_index, item_bad = _decode_unique(_gather(buf, first[ok] + 1, item_len[ok]))
    not_utf8 = user_bad[user_index] | item_bad[item_index]
    if not_utf8.any():
        code[ok[not_utf8]] = _CODE["not_utf8"]
        keep = ~not_utf8
        ok, user_index, item_index = ok[keep], user_index[keep], item_index[keep]
        user_keys, user_index = _drop_unused(user_keys, user_index)
        item_keys, item_index = _drop_unused(item_keys, item_index)

    rejected = np.flatnonzero(code != _OK)
    return ParsedBatch(
        accepted=ok,
        user_keys=user_keys,
        user_index=user_index,
        item_keys=item_keys,
        item_index=item_index,
        weights=weights[ok].astype(np.float32),
        rejected=rejected,
        reject_codes=code[rejected],
    )


def _drop_unused(keys: list[str], index: IntArray) -> tuple[list[str], IntArray]:
    """Remove keys no event refers to any more and renumber the index."""
    used = np.zeros(len(keys), dtype=bool)
    used[index] = True
    if used.all():
        return keys, index
    renumber = np.cumsum(used) - 1
    return [k for k, u in zip(keys, used.tolist(), strict=True) if u], renumber[index]
