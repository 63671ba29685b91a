"""The encoded table kept compactly, and expanded to the dense model layout one batch at a time.

The dense encoding spends a float32 on every position of every one-hot span: a table of numbers
with ten modes each and a few categorical columns is hundreds of bytes per row, most of them
zeros. Here a one-hot span is stored as the position of its 1 (uint8/int16/int32, the narrowest
that holds its width) and only the other positions (tanh spans, and any softmax span a transformer
did not encode as an exact one-hot) as float32. :class:`CompactTable` is built on the host chunk by
chunk, so the dense matrix of the whole table never exists; :class:`CompactRows` is its copy on the
training device, whose :meth:`CompactRows.index_select` gives a batch of dense rows equal to the
dense encoding of those rows, bit for bit.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from synthgen.data.base import Span

#: Code dtypes from narrowest to widest, with the most positions each can number.
_CODE_DTYPES: tuple[tuple[np.dtype, int], ...] = (
    (np.dtype(np.uint8), 2**8), (np.dtype(np.int16), 2**15), (np.dtype(np.int32), 2**31),
)


def code_dtype(width: int) -> np.dtype:
    """The narrowest integer dtype that numbers ``width`` positions."""
    return next(dtype for dtype, limit in _CODE_DTYPES if width <= limit)


@dataclass(frozen=True)
class _CodeGroup:
    """Softmax spans whose codes share a dtype: their starts in the dense row and their widths."""

    dtype: np.dtype
    starts: list[int]
    widths: list[int]


def _is_one_hot(block: np.ndarray) -> bool:
    """Each row exactly one 1.0 and zeros elsewhere (so the code alone restores it)."""
    return bool(((block == 0) | (block == 1)).all() and (block.sum(axis=1) == 1).all())


class CompactTable:
    """An encoded table of ``n_rows`` rows in the layout of ``spans``, filled chunk by chunk with :meth:`put`.

    The codes of the softmax spans are one (rows, spans) matrix per code dtype; the float32
    positions (tanh spans) one (rows, positions) matrix. Both are allocated once, at full size, so
    filling them needs no second copy.
    """

    def __init__(self, spans: list[Span], n_rows: int) -> None:
        self.spans = list(spans)
        self.n_rows = n_rows
        self.width = sum(span.width for span in spans)
        self._starts = [int(s) for s in np.cumsum([0, *[span.width for span in spans]])[:-1]]
        softmax = [i for i, span in enumerate(spans) if span.activation == "softmax"]
        # Span → (code matrix, its column); matrices by dtype, narrowest first.
        self._coded: dict[int, tuple[int, int]] = {}
        dtypes = [dtype for dtype, _ in _CODE_DTYPES if any(code_dtype(spans[i].width) == dtype for i in softmax)]
        for g, dtype in enumerate(dtypes):
            members = [i for i in softmax if code_dtype(spans[i].width) == dtype]
            self._coded.update({i: (g, k) for k, i in enumerate(members)})
        self._code_matrices = [
            np.zeros((n_rows, sum(1 for g2, _ in self._coded.values() if g2 == g)), dtype=dtype)
            for g, dtype in enumerate(dtypes)
        ]
        # Span → its first column in the float matrix; tanh spans now, softmax spans that prove not one-hot later.
        self._float_at: dict[int, int] = {}
        for i, span in enumerate(spans):
            if span.activation == "tanh":
                self._float_at[i] = sum(spans[j].width for j in self._float_at)
        self._floats = np.zeros((n_rows, sum(spans[i].width for i in self._float_at)), dtype=np.float32)
        self._dense_spans: list[int] = []
        self._filled = 0

    def put(self, start: int, dense: np.ndarray) -> None:
        """Store the dense encoding ``dense`` of rows ``start`` .. ``start + len(dense)``; chunks come in order."""
        if start != self._filled or dense.shape[1] != self.width or start + len(dense) > self.n_rows:
            raise ValueError(f"chunk of shape {dense.shape} at row {start} does not follow row {self._filled} of a "
                             f"({self.n_rows}, {self.width}) table")
        stop = start + len(dense)
        for i, span in enumerate(self.spans):
            block = dense[:, self._starts[i]: self._starts[i] + span.width]
            if i in self._coded and not _is_one_hot(block):
                self._to_floats(i)
            if i in self._coded:
                g, k = self._coded[i]
                self._code_matrices[g][start:stop, k] = block.argmax(axis=1)
            else:
                at = self._float_at[i]
                self._floats[start:stop, at: at + span.width] = block
        self._filled = stop

    def _to_floats(self, i: int) -> None:
        """Move softmax span ``i`` to the floats: a transformer gave a block that is not an exact
        one-hot (e.g. a plugin's soft labels). The rows stored so far were one-hot, so their codes
        restore them exactly; the span's code column stays, unused (this is the rare path)."""
        g, k = self._coded.pop(i)
        width = self.spans[i].width
        ones = np.zeros((self.n_rows, width), dtype=np.float32)
        ones[np.arange(self._filled), self._code_matrices[g][: self._filled, k]] = 1.0
        self._float_at[i] = self._floats.shape[1]
        self._floats = np.concatenate([self._floats, ones], axis=1)
        self._dense_spans.append(i)

    @property
    def complete(self) -> bool:
        return self._filled == self.n_rows

    @property
    def dense_spans(self) -> list[int]:
        """Softmax spans stored as floats because some chunk was not an exact one-hot."""
        return sorted(self._dense_spans)

    def groups(self) -> list[_CodeGroup]:
        """Per code matrix, the dense-row start and width of each of its columns still in use."""
        groups = []
        for g, matrix in enumerate(self._code_matrices):
            members = sorted((k, i) for i, (g2, k) in self._coded.items() if g2 == g)
            groups.append(_CodeGroup(matrix.dtype, [self._starts[i] for _, i in members],
                                     [self.spans[i].width for _, i in members]))
        return groups

    def code_matrices(self, rows: slice = slice(None)) -> list[np.ndarray]:
        """One (rows, spans) matrix per :meth:`groups` entry, restricted to its columns in use."""
        matrices = []
        for g, matrix in enumerate(self._code_matrices):
            used = sorted(k for g2, k in self._coded.values() if g2 == g)
            matrices.append(matrix[rows] if len(used) == matrix.shape[1] else matrix[rows][:, used])
        return matrices

    def float_positions(self) -> list[int]:
        """The dense-row position of each float column."""
        positions = [0] * self._floats.shape[1]
        for i, at in self._float_at.items():
            for k in range(self.spans[i].width):
                positions[at + k] = self._starts[i] + k
        return positions

    def float_matrix(self, rows: slice = slice(None)) -> np.ndarray:
        return self._floats[rows]

    @property
    def nbytes(self) -> int:
        """Bytes of the arrays that hold the rows (a dense float32 table holds ``4 * width`` per row)."""
        return sum(m.nbytes for m in self._code_matrices) + self._floats.nbytes

    def raw_bytes(self) -> np.ndarray:
        """Every stored array's bytes, one after the other (what identifies the rows, e.g. for a
        checkpoint's fingerprint); a copy of :attr:`nbytes` bytes."""
        return np.concatenate([np.ascontiguousarray(a).reshape(-1).view(np.uint8)
                               for a in [*self._code_matrices, self._floats]])

    def to_dense(self) -> np.ndarray:
        """The dense float32 encoding (for tests and small tables)."""
        return CompactRows.from_table(self).index_select(0, torch.arange(self.n_rows)).numpy()


class CompactRows:
    """A :class:`CompactTable` (or a share of its rows) on a torch device, gathered into dense batches.

    It answers what the training loop asks of an encoded tensor: ``device``, ``shape`` and
    ``index_select(0, rows)``; and gives a conditional span's codes to the condition sampler.
    """

    def __init__(self, codes: list[torch.Tensor], starts: list[torch.Tensor], floats: torch.Tensor,
                 float_positions: torch.Tensor, width: int, span_starts: dict[int, tuple[int, int]]) -> None:
        self.codes, self.starts = codes, starts
        self.floats, self.float_positions = floats, float_positions
        self.width = width
        # Dense start of each coded span → (group, column in that group's code matrix).
        self._coded_at = span_starts

    @classmethod
    def from_table(cls, table: CompactTable, rows: slice = slice(None),
                   device: torch.device | str = "cpu") -> "CompactRows":
        """``table``'s ``rows`` (e.g. one rank's share) on ``device``; the host arrays are copied once."""
        if not table.complete:
            raise ValueError("the compact table is not filled yet")
        groups = table.groups()
        codes = [torch.from_numpy(np.ascontiguousarray(m)).to(device) for m in table.code_matrices(rows)]
        starts = [torch.tensor(group.starts, dtype=torch.long, device=device) for group in groups]
        coded_at = {start: (g, k) for g, group in enumerate(groups) for k, start in enumerate(group.starts)}
        floats = torch.from_numpy(np.ascontiguousarray(table.float_matrix(rows))).to(device)
        positions = torch.tensor(table.float_positions(), dtype=torch.long, device=device)
        return cls(codes, starts, floats, positions, table.width, coded_at)

    @property
    def device(self) -> torch.device:
        return self.floats.device

    @property
    def shape(self) -> tuple[int, int]:
        return (self.floats.shape[0], self.width)

    def __len__(self) -> int:
        return self.floats.shape[0]

    def index_select(self, dim: int, rows: torch.Tensor) -> torch.Tensor:
        """The dense rows ``rows`` (batch, width), float32, built on the device: floats copied to their
        positions and a 1.0 scattered at each coded span's start + code."""
        if dim != 0:
            raise ValueError("compact rows are selected along dimension 0 only")
        dense = torch.zeros(rows.shape[0], self.width, device=self.device)
        if self.float_positions.numel():
            dense.index_copy_(1, self.float_positions, self.floats.index_select(0, rows))
        for codes, starts in zip(self.codes, self.starts):  # one pass per code dtype (at most three)
            dense.scatter_(1, codes.index_select(0, rows).long() + starts, 1.0)
        return dense

    def span_codes(self, start: int, width: int) -> torch.Tensor:
        """The category (0 .. width - 1) of every row in the softmax span at ``start`` of the dense
        row: its codes in their own dtype (a view, no copy), or the arg-max of its float columns
        (int64) where it is stored dense."""
        if start in self._coded_at:
            group, column = self._coded_at[start]
            return self.codes[group][:, column]
        columns = ((self.float_positions >= start) & (self.float_positions < start + width)).nonzero().squeeze(1)
        return self.floats.index_select(1, columns).argmax(1)

    @property
    def nbytes(self) -> int:
        return sum(c.nbytes for c in self.codes) + self.floats.nbytes
