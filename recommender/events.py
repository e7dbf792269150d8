"""Parse and validate batches of interaction events, vectorised over the batch.

An event value is UTF-8 ``user:item`` or ``user:item:weight``. Ids are non-empty, at most
``max_id_bytes`` bytes, and contain neither ``:`` nor control characters (a newline in an id would
break every line-based format, including ``POST /interactions``). A weight is a number of at most
``MAX_WEIGHT_BYTES`` characters: 0 (seen, no preference: a neutral rating), or a magnitude from
``MIN_WEIGHT`` to ``MAX_WEIGHT`` (finite, meaningful in float32); a negative weight is a dislike;
without one it is 1. With a declared
rating scale (:class:`~recommender.ratings.RatingScale`) the number is a rating on that scale and
becomes the weight the scale gives it. What training makes of a weight is bounded separately
(:func:`clip_pair_weights`), so no single event can dominate or overflow ALS.

The parser never loops over events in Python: byte-level checks run in numpy over the concatenated
batch, ids are gathered into fixed-width byte arrays and de-duplicated with ``np.unique``, and only
the *distinct* ids of a batch are decoded into ``str``. Downstream code (the vocabulary) therefore
does work proportional to the number of distinct ids, not the number of events.

Memory is linear in the batch's bytes whatever it holds: a record longer than the longest valid
event is rejected by its length alone (it is never copied), every field's length is checked before
anything is allocated for it, and ids are gathered in buckets of similar length, so one long id
does not widen the arrays of all the short ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Final, Literal, cast, get_args

import numpy as np
import numpy.typing as npt

from .ratings import RatingScale

__all__ = [
    "DEFAULT_MAX_ID_BYTES",
    "MAX_PAIR_WEIGHT",
    "MAX_WEIGHT",
    "MAX_WEIGHT_BYTES",
    "MIN_WEIGHT",
    "REJECT_REASONS",
    "ParsedBatch",
    "RejectReason",
    "clip_pair_weights",
    "format_event",
    "max_event_bytes",
    "parse_values",
]

RejectReason = Literal[
    "empty",
    "too_long",
    "missing_field",
    "extra_field",
    "control_char",
    "empty_id",
    "id_too_long",
    "not_utf8",
    "bad_weight",
    "bad_rating",
]
#: Every reason, in the order checked; a record is given the first that applies.
REJECT_REASONS: Final[tuple[RejectReason, ...]] = get_args(RejectReason)
_CODE: Final[dict[RejectReason, int]] = {reason: i + 1 for i, reason in enumerate(REJECT_REASONS)}

DEFAULT_MAX_ID_BYTES: Final = 256
#: Accepted weights: finite, positive, and representable in float32 without loss of meaning.
MIN_WEIGHT: Final = 1e-30
MAX_WEIGHT: Final = 1e30
#: Longest weight field: a number needs a few dozen characters at most.
MAX_WEIGHT_BYTES: Final = 32
#: What training and fold-in make of a (user, item) pair's summed weight is capped at this
#: magnitude: ALS confidence is alpha x the capped sum, so one absurd weight (1e30) can neither
#: overflow float32 arithmetic nor drown every other event.
MAX_PAIR_WEIGHT: Final = 1000.0
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


def max_event_bytes(max_id_bytes: int = DEFAULT_MAX_ID_BYTES) -> int:
    """The longest valid event value: two ids, two colons and a weight."""
    return 2 * max_id_bytes + 2 + MAX_WEIGHT_BYTES


def clip_pair_weights(weights: npt.ArrayLike) -> npt.NDArray[np.float32]:
    """Summed pair weights as training and fold-in use them: capped at ``MAX_PAIR_WEIGHT``."""
    out = np.asarray(weights, dtype=np.float64)
    return np.clip(out, -MAX_PAIR_WEIGHT, MAX_PAIR_WEIGHT).astype(np.float32)


def format_event(user: str, item: str, weight: float | None = None) -> bytes:
    """Encode one event as the wire format ``user:item[:weight]``."""
    text = f"{user}:{item}" if weight is None else f"{user}:{item}:{weight!r}"
    return text.encode("utf-8")


#: Id widths gathered together: an id of length L lands in a bucket at most 4 L wide, so the
#: fixed-width arrays hold at most four times the ids' bytes.
_WIDTHS: Final = (4, 16, 64, 256)


def _gather_width(
    buf: npt.NDArray[np.uint8], starts: IntArray, lengths: IntArray, width: int
) -> npt.NDArray[np.bytes_]:
    """Copy byte slices (each at most ``width`` long) of ``buf`` into one ``S<width>`` array.

    Work and memory are linear in the slices' total length (no ``slices x width`` index array).
    """
    total = int(lengths.sum())
    out = np.zeros(lengths.size * width, dtype=np.uint8)
    if total:
        first = np.cumsum(lengths) - lengths  # where each slice starts in the concatenation
        within = np.arange(total, dtype=np.int64) - np.repeat(first, lengths)
        src = np.repeat(starts, lengths) + within
        dst = np.repeat(np.arange(lengths.size, dtype=np.int64) * width, lengths) + within
        out[dst] = buf[src]
    return out.view(f"S{width}")


def _unique_ids(
    buf: npt.NDArray[np.uint8], starts: IntArray, lengths: IntArray
) -> tuple[list[bytes], IntArray]:
    """The distinct byte strings among the slices, and each slice's index into them.

    Slices are grouped by length bucket; ids never end in NUL (a control character), so the
    fixed-width ``S`` arrays lose nothing and ids from different buckets never collide.
    """
    keys: list[bytes] = []
    inverse = np.zeros(lengths.size, dtype=np.int64)
    low = 0
    for width in (*_WIDTHS[:-1], max(_WIDTHS[-1], int(lengths.max(initial=0)))):
        members = np.flatnonzero((lengths > low) & (lengths <= width))
        low = width
        if members.size == 0:
            continue
        uniques, inv = np.unique(
            _gather_width(buf, starts[members], lengths[members], width), return_inverse=True
        )
        inverse[members] = inv.ravel() + len(keys)
        keys.extend(uniques.tolist())
    return keys, inverse


def _decode_unique(
    buf: npt.NDArray[np.uint8], starts: IntArray, lengths: IntArray
) -> tuple[list[str], IntArray, npt.NDArray[np.bool_]]:
    """Distinct ids as ``str``, the inverse map, and which distinct ids are not UTF-8."""
    raw_keys, inverse = _unique_ids(buf, starts, lengths)
    keys: list[str] = []
    bad = np.zeros(len(raw_keys), dtype=bool)
    for k, raw in enumerate(raw_keys):
        try:
            keys.append(raw.decode("utf-8"))
        except UnicodeDecodeError:
            keys.append("")
            bad[k] = True
    return keys, inverse, bad


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
    values: Sequence[bytes | None],
    *,
    max_id_bytes: int = DEFAULT_MAX_ID_BYTES,
    ratings: RatingScale | None = None,
) -> ParsedBatch:
    """Parse a batch of raw event values.

    Parameters
    ----------
    values : sequence of bytes or None
        Raw Kafka message values; ``None`` (a tombstone) counts as empty.
    max_id_bytes : int
        Longest accepted user or item id, in UTF-8 bytes.
    ratings : RatingScale, optional
        If given, a weight field is a rating on this scale (off the scale: ``bad_rating``) and
        the weight is what the scale makes of it.

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
    full_lengths = np.fromiter(map(len, raw), dtype=np.int64, count=n)
    # Records longer than any valid event are judged by their length alone: never copied.
    too_long = full_lengths > max_event_bytes(max_id_bytes)
    if too_long.any():
        lengths = np.where(too_long, 0, full_lengths)
        buf = np.frombuffer(
            b"".join(v for v, long in zip(raw, too_long.tolist(), strict=True) if not long),
            dtype=np.uint8,
        )
    else:
        lengths = full_lengths
        buf = np.frombuffer(b"".join(raw), dtype=np.uint8)
    ends = np.cumsum(lengths)
    starts = ends - lengths
    record_of_byte = np.repeat(np.arange(n, dtype=np.int32), lengths)

    colon_at = np.flatnonzero(buf == _COLON)
    colon_record = record_of_byte[colon_at]
    colons = np.bincount(colon_record, minlength=n)
    controls = np.bincount(record_of_byte[(buf < 0x20) | (buf == 0x7F)], minlength=n)
    del record_of_byte

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
    weight_len = np.where(has_weight, ends - second - 1, 0)

    code = np.zeros(n, dtype=np.uint8)

    def flag(reason: RejectReason, where: npt.NDArray[np.bool_]) -> None:
        code[(code == _OK) & where] = _CODE[reason]

    flag("empty", full_lengths == 0)
    flag("too_long", too_long)
    flag("missing_field", colons == 0)
    flag("extra_field", colons > 2)
    flag("control_char", controls > 0)
    flag("empty_id", (user_len <= 0) | (item_len <= 0))
    flag("id_too_long", (user_len > max_id_bytes) | (item_len > max_id_bytes))
    flag("bad_weight", has_weight & ((weight_len <= 0) | (weight_len > MAX_WEIGHT_BYTES)))

    weights = np.ones(n, dtype=np.float64)
    weighted = np.flatnonzero(has_weight & (code == _OK))
    if weighted.size:
        w = _parse_weights(
            _gather_width(buf, second[weighted] + 1, weight_len[weighted], MAX_WEIGHT_BYTES)
        )
        weights[weighted] = w
        if ratings is None:
            size = np.abs(weights)
            usable = ((size >= MIN_WEIGHT) & (size <= MAX_WEIGHT)) | (weights == 0)
            flag("bad_weight", ~usable)  # NaN fails too
        else:
            flag("bad_weight", ~np.isfinite(weights))
            mapped, on_scale = ratings.weights(w)
            off = np.zeros(n, dtype=bool)
            off[weighted] = ~on_scale
            flag("bad_rating", off)
            weights[weighted] = mapped

    ok = np.flatnonzero(code == _OK)
    user_keys, user_index, user_bad = _decode_unique(buf, starts[ok], user_len[ok])
    item_keys, item_index, item_bad = _decode_unique(buf, first[ok] + 1, item_len[ok])
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
