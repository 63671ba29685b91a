"""Conditional tabular GAN (CTGAN class): networks, output activations and conditioning.

Everything here is built from the span layout alone and works on whole batches at once: the
per-span work is done with precomputed index tensors, never a Python loop over columns, so a step
is a handful of kernels on a GPU. No pandas, no files.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from synthgen.data.base import Span

if TYPE_CHECKING:  # read for its spans only: models know no columns
    from synthgen.data.compact import CompactRows
    from synthgen.data.table import TableTransformer


@dataclass(frozen=True)
class GANConfig:
    """Network sizes and optimiser settings; ``None`` settings are chosen for the table by ``training.tabular.resolve_config``.

    Widths and loss follow CTGAN. Defaults that differ were measured on the benchmark tables (share
    of the Column Pair Trends gap closed between an independent sampler and the real holdout; see
    benchmarks/README.md): critic dropout 0.5 -> 0 (breast-cancer 0.16 -> 0.47), PacGAN packs of
    10 -> 1 (-> 0.73), a linear learning-rate decay to 10% (-> 0.86 at 3,000 steps), and for tables
    under ``training.tabular.SMALL_TABLE_ROWS`` rows batches of 128 at learning rate 5e-4, which reach at
    1,500 steps what batches of the whole table at 2e-4 reached at 3,000, in a third of the time.
    """

    embedding_dim: int = 128
    generator_dims: tuple[int, ...] = (256, 256)
    discriminator_dims: tuple[int, ...] = (256, 256)
    learning_rate: float | None = None
    #: Learning rate at the last step as a fraction of the first (linear decay); 1.0 keeps it flat.
    final_learning_rate_fraction: float = 0.1
    weight_decay: float = 1e-6
    batch_size: int | None = None
    pac: int = 1
    gradient_penalty: float = 10.0
    dropout: float = 0.0
    gumbel_tau: float = 0.2
    steps: int | None = None
    #: bfloat16 autocast for the networks; None: where the hardware computes in bfloat16 natively
    #: (CUDA, CPUs with AVX512-BF16 or AMX), see ``training.loop.use_bfloat16``.
    mixed_precision: bool | None = None


def _padded_index(groups: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of indices padded to equal length, and the mask of real entries."""
    width = max((len(g) for g in groups), default=0)
    index = torch.zeros(len(groups), max(width, 1), dtype=torch.long)
    mask = torch.zeros(len(groups), max(width, 1), dtype=torch.bool)
    for row, group in enumerate(groups):
        index[row, : len(group)] = torch.tensor(group, dtype=torch.long)
        mask[row, : len(group)] = True
    return index, mask


class SpanLayout(nn.Module):
    """Index tensors that let activations and losses run over all spans at once.

    ``conditional_offsets`` gives the start of each conditional span in the *encoded row*;
    the conditional vector is those spans concatenated, so its own offsets are cumulative widths.
    Keeping the two apart is what CTGAN got wrong for every discrete column after the first.

    Softmax spans are gathered into a padded ``(batch, widest span, spans)`` grid and reduced over
    its middle axis: a softmax or arg-max over a short *last* axis (2-15 entries) runs about 10x
    slower on CPUs, since it cannot vectorise. Gathers use ``index_select``, which on CPUs is an
    order of magnitude faster than advanced indexing.
    """

    def __init__(self, spans: list[Span], conditional_offsets: list[int]) -> None:
        super().__init__()
        tanh: list[int] = []
        softmax: list[list[int]] = []
        positions_at: dict[int, list[int]] = {}
        offset = 0
        for span in spans:
            positions = list(range(offset, offset + span.width))
            if span.activation == "tanh":
                tanh.extend(positions)
            else:
                softmax.append(positions)
            positions_at[offset] = positions
            offset += span.width
        conditional = [positions_at[o] for o in conditional_offsets]
        self.data_dim = offset
        self.cond_widths = [len(c) for c in conditional]
        self.cond_dim = sum(self.cond_widths)
        softmax_index, softmax_mask = _padded_index(softmax)
        cond_data_index, cond_mask = _padded_index(conditional)
        starts = torch.tensor([0, *self.cond_widths[:-1]], dtype=torch.long).cumsum(0) if conditional else torch.zeros(0, dtype=torch.long)
        self.register_buffer("tanh_index", torch.tensor(tanh, dtype=torch.long), persistent=False)
        self.register_buffer("softmax_index", softmax_index, persistent=False)
        self.register_buffer("softmax_mask", softmax_mask, persistent=False)
        self.has_softmax = bool(softmax)
        self.register_buffer("cond_data_index", cond_data_index, persistent=False)
        self.register_buffer("cond_mask", cond_mask, persistent=False)
        self.register_buffer("cond_vector_offsets", starts, persistent=False)
        # The (widest, spans) grids, flattened for index_select; padding reads position 0 and is masked.
        self.register_buffer("_grid_index", softmax_index.T.flatten(), persistent=False)
        self.register_buffer("_grid_mask", softmax_mask.T.contiguous(), persistent=False)
        self.register_buffer("_grid_filled", torch.nonzero(softmax_mask.T.flatten()).squeeze(1), persistent=False)
        self.register_buffer("_cond_grid_index", cond_data_index.T.flatten(), persistent=False)
        self.register_buffer("_cond_grid_mask", cond_mask.T.contiguous(), persistent=False)
        # Output column j is column order[j] of [tanh outputs, filled grid cells in grid order].
        produced = torch.cat([self.tanh_index, self._grid_index[self._grid_filled]])
        self.register_buffer("_order", torch.argsort(produced), persistent=False)

    def activate(self, raw: torch.Tensor, tau: float, generator: torch.Generator | None, hard: bool = False,
                 softmax_bias: torch.Tensor | None = None) -> torch.Tensor:
        """tanh on tanh spans, Gumbel-softmax on softmax spans (a draw from each categorical).

        ``hard`` (for sampling) returns the draw itself as a one-hot: the arg-max of logits plus
        Gumbel noise, which skips the softmax that only training's gradients need. Activations are
        computed in float32 whatever precision the network ran in (autocast gives bfloat16 logits).
        ``softmax_bias`` (spans, widest span) is added to the logits (see :class:`MarginalCalibration`).
        """
        raw = raw.float()
        parts = [torch.tanh(raw.index_select(1, self.tanh_index))]
        if self.has_softmax:
            batch = raw.shape[0]
            logits = raw.index_select(1, self._grid_index).view(batch, *self._grid_mask.shape)
            if softmax_bias is not None:
                logits = logits + softmax_bias.T
            uniform = torch.rand(logits.shape, generator=generator, device=raw.device).clamp_(1e-10, 1 - 1e-7)
            scores = (logits - uniform.log_().neg_().log_()).masked_fill_(~self._grid_mask, float("-inf"))
            if hard:
                drawn = (scores == scores.amax(1, keepdim=True)).float()
            else:
                drawn = torch.softmax(scores / tau, dim=1)
            parts.append(drawn.view(batch, -1).index_select(1, self._grid_filled))
        return torch.cat(parts, dim=1).index_select(1, self._order)

    def condition_loss(self, raw: torch.Tensor, column: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        """Cross-entropy between the generator's logits for each row's chosen column and its category."""
        batch = raw.shape[0]
        logits = raw.float().index_select(1, self._cond_grid_index).view(batch, *self._cond_grid_mask.shape)
        log_probs = torch.log_softmax(logits.masked_fill(~self._cond_grid_mask, float("-inf")), dim=1)
        chosen = log_probs.view(batch, -1).gather(1, (category * self._cond_grid_mask.shape[1] + column)[:, None])
        return -chosen.mean()


class _Residual(nn.Module):
    """CTGAN's residual block: the block's output is concatenated to its input."""

    def __init__(self, in_dim: int, out_dim: int) -> None:
        super().__init__()
        self.linear = nn.Linear(in_dim, out_dim)
        self.norm = nn.BatchNorm1d(out_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear(x)
        if self.training and h.shape[0] == 1:
            # One row has no batch statistics (DP's Poisson sampling can draw a batch of one): normalise
            # with the running ones, leaving them as they are.
            norm = self.norm
            h = F.batch_norm(h, norm.running_mean, norm.running_var, norm.weight, norm.bias, False, 0.0, norm.eps)
        else:
            h = self.norm(h)
        return torch.cat([F.relu(h), x], dim=1)


class MarginalCalibration(nn.Module):
    """Maps a generator's per-column output distributions onto known target marginals, at sampling.

    Used for DP models, whose critic is too noisy to teach the generator exact marginals while the
    released histograms already give them: each tanh output ``u`` becomes ``target(F_gen(u))``
    (quantile matching, so the generator's ranks, and with them its dependencies, are kept), and
    softmax spans get a logit bias ``log(p_target / p_gen)``. Both are estimated from the
    generator's own draws and the released statistics only, so they are post-processing of DP
    outputs. ``tanh_quantiles`` (tanh outputs, K) are the generator's quantiles at ``levels``;
    ``tanh_targets`` the target's quantiles at the same levels.
    """

    def __init__(self, tanh_quantiles: torch.Tensor, tanh_targets: torch.Tensor, softmax_bias: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("tanh_quantiles", tanh_quantiles.float())
        self.register_buffer("tanh_targets", tanh_targets.float())
        self.register_buffer("softmax_bias", softmax_bias.float())

    def map_tanh(self, values: torch.Tensor) -> torch.Tensor:
        """Piecewise-linear interpolation of each column of ``values`` (N, tanh outputs) onto its target."""
        if values.shape[1] == 0:
            return values
        grid, target = self.tanh_quantiles, self.tanh_targets
        columns = values.T.contiguous()
        upper = torch.searchsorted(grid, columns).clamp(1, grid.shape[1] - 1)
        lower = upper - 1
        x0, x1 = grid.gather(1, lower), grid.gather(1, upper)
        y0, y1 = target.gather(1, lower), target.gather(1, upper)
        weight = ((columns - x0) / (x1 - x0).clamp_min(1e-12)).clamp(0.0, 1.0)
        return (y0 + weight * (y1 - y0)).T

    @classmethod
    def fit(cls, generator_net: "Generator", layout: SpanLayout, cond: torch.Tensor, noise: torch.Tensor,
            tau: float, rng: torch.Generator, tanh_targets: torch.Tensor, softmax_targets: torch.Tensor,
            rounds: int = 3) -> "MarginalCalibration":
        """Estimate the maps from one batch of generator draws.

        ``tanh_targets`` (tanh outputs, K) are target quantiles at K evenly spaced levels;
        ``softmax_targets`` (spans, widest) target probabilities, NaN rows for spans left alone.
        The logit bias is refined over ``rounds``, since a bias moves the draws it is measured on.
        """
        levels = tanh_targets.shape[1]
        with torch.inference_mode():
            raw = generator_net(noise, cond).float()
            generated = torch.tanh(raw[:, layout.tanh_index])
            probabilities = (torch.arange(levels, device=raw.device) + 0.5) / levels
            if generated.shape[1]:
                quantiles = torch.quantile(generated.T, probabilities, dim=1).T.contiguous()
            else:  # no tanh output (every column categorical): nothing to map
                quantiles = torch.zeros(0, levels, device=raw.device)
            # Strictly increasing grids, so the interpolation is defined even where draws tie.
            quantiles = quantiles + torch.arange(levels, device=raw.device) * 1e-7
            bias = torch.zeros_like(layout.softmax_mask, dtype=torch.float32)
            known = ~torch.isnan(softmax_targets) & layout.softmax_mask
            for _ in range(rounds if layout.has_softmax else 0):
                encoded = layout.activate(raw, tau, rng, hard=True, softmax_bias=bias)
                drawn = encoded[:, layout.softmax_index].mean(0)
                ratio = torch.log(softmax_targets.clamp_min(1e-6)) - torch.log(drawn.clamp_min(1e-6))
                bias = torch.where(known, bias + ratio, bias)
        return cls(quantiles, tanh_targets, bias)


class MarginalLoss(nn.Module):
    """Squared distance between a batch's cell frequencies and target one- and two-way tables, plus
    the KL divergence of its missingness patterns from target shares (where given).

    Columns are described by plain dicts (``kind`` "categories" with one-hot ``positions``, or "bins"
    with ``positions`` (tanh,) or (tanh, present, missing) and ``thresholds`` on the tanh output).
    It reads the generator's raw outputs, as GEM does: a row's category probabilities are the
    softmax of its logits, not a Gumbel draw, since a draw's noise is independent from one span to
    the next and hides from each logit what a dependence asks of it (measured on flchain: with
    draws the pair tables stayed at independence). Bins are differences of sigmoid steps of width
    ``softness`` at the thresholds of the tanh output. Training a generator toward tables released
    under DP is post-processing (see ``synthgen.dp.pairs``).
    """

    def __init__(self, columns: list[dict], one_way: list[torch.Tensor], pairs: list[tuple[int, int]],
                 two_way: list[torch.Tensor], softness: float = 0.01, *, missing_cells: list[tuple[int, int]] = (),
                 patterns: torch.Tensor | None = None, pattern_shares: torch.Tensor | None = None) -> None:
        super().__init__()
        # Missingness patterns: a row's chance of one is the product over ``missing_cells`` (column,
        # missing cell) of its chance of missing (1 in ``patterns``) or not (0).
        self.missing_cells = list(missing_cells)
        has_patterns = patterns is not None and pattern_shares is not None and len(pattern_shares) > 0
        self.register_buffer("_patterns", patterns.float() if has_patterns else torch.zeros(0, 0), persistent=False)
        self.register_buffer("_pattern_shares", pattern_shares.float() if has_patterns else torch.zeros(0), persistent=False)
        self.columns = columns
        self.pairs = pairs
        self.softness = softness
        for index, column in enumerate(columns):
            self.register_buffer(f"_positions{index}", torch.tensor(column["positions"], dtype=torch.long), persistent=False)
            self.register_buffer(f"_thresholds{index}", torch.tensor(column["thresholds"], dtype=torch.float32), persistent=False)
            self.register_buffer(f"_one_way{index}", one_way[index].float(), persistent=False)
        # Every pair's table sits in one block of a cells × cells matrix, so a batch's two-way tables
        # are one product of its stacked cell probabilities (all pairs at once: at ε = 3 that is
        # 171 pairs on pbc) and the loss reads only the blocks that have a target.
        offsets = [0, *itertools.accumulate(len(table) for table in one_way)]
        target = torch.zeros(offsets[-1], offsets[-1])
        mask = torch.zeros_like(target)
        for (a, b), table in zip(pairs, two_way):
            target[offsets[a]:offsets[a + 1], offsets[b]:offsets[b + 1]] = table.float()
            mask[offsets[a]:offsets[a + 1], offsets[b]:offsets[b + 1]] = 1.0
        self.register_buffer("_two_way", target, persistent=False)
        self.register_buffer("_two_way_mask", mask, persistent=False)

    def cells(self, raw: torch.Tensor) -> list[torch.Tensor]:
        """Each column's cell probabilities for every row of raw generator output, (batch, cells)."""
        out = []
        for index, column in enumerate(self.columns):
            block = raw.index_select(1, getattr(self, f"_positions{index}"))
            if column["kind"] == "categories":
                out.append(torch.softmax(block, dim=1))
                continue
            value = torch.tanh(block[:, :1])
            above = torch.sigmoid((value - getattr(self, f"_thresholds{index}")) / self.softness)
            ones, zeros = torch.ones_like(value), torch.zeros_like(value)
            steps = torch.cat([ones, above, zeros], dim=1)
            bins = steps[:, :-1] - steps[:, 1:]
            if block.shape[1] == 3:
                present_missing = torch.softmax(block[:, 1:], dim=1)
                bins = torch.cat([bins * present_missing[:, :1], present_missing[:, 1:]], dim=1)
            out.append(bins)
        return out

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        cells = self.cells(raw.float())
        loss = sum(((c.mean(0) - getattr(self, f"_one_way{i}")) ** 2).sum() for i, c in enumerate(cells))
        if self.pairs:
            stacked = torch.cat(cells, dim=1)
            joint = stacked.T @ stacked / raw.shape[0]
            loss = loss + (((joint - self._two_way) * self._two_way_mask) ** 2).sum()
        if len(self._pattern_shares):
            missing = torch.stack([cells[c][:, j] for c, j in self.missing_cells], dim=1).clamp(1e-6, 1 - 1e-6)
            log_chance = missing.log() @ self._patterns.T + torch.log1p(-missing) @ (1 - self._patterns).T
            # KL divergence from the released shares: in log space, since a pattern of many columns
            # has a product of many chances, whose squared error has next to no gradient.
            # The patterns not kept share what the kept ones leave, as one bucket.
            log_share = torch.logsumexp(log_chance, dim=0) - math.log(raw.shape[0])
            rest = torch.log1p(-log_share.exp().sum().clamp(max=1 - 1e-6))
            targets = torch.cat([self._pattern_shares, (1 - self._pattern_shares.sum()).clamp(min=0).reshape(1)])
            log_shares = torch.cat([log_share, rest.reshape(1)])
            loss = loss + torch.where(targets > 0, targets * (targets.clamp(min=1e-12).log() - log_shares), 0.0).sum()
        return loss


class Generator(nn.Module):
    """noise ⊕ condition → raw encoded row (activations are applied by :class:`SpanLayout`)."""

    def __init__(self, embedding_dim: int, cond_dim: int, hidden: tuple[int, ...], data_dim: int) -> None:
        super().__init__()
        blocks, width = [], embedding_dim + cond_dim
        for size in hidden:
            blocks.append(_Residual(width, size))
            width += size
        self.body = nn.Sequential(*blocks)
        self.head = nn.Linear(width, data_dim)

    def forward(self, noise: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return self.head(self.body(torch.cat([noise, cond], dim=1)))


class Discriminator(nn.Module):
    """PacGAN critic: scores packs of ``pac`` rows (row ⊕ condition) at once.

    Dropout masks come from the passed generator so training is reproducible without touching
    torch's global random state.
    """

    def __init__(self, input_dim: int, hidden: tuple[int, ...], pac: int, dropout: float) -> None:
        super().__init__()
        self.pac = pac
        self.dropout = dropout
        dims = [input_dim * pac, *hidden]
        self.layers = nn.ModuleList(nn.Linear(a, b) for a, b in zip(dims[:-1], dims[1:]))
        self.head = nn.Linear(dims[-1], 1)

    def forward(self, rows: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        x = rows.reshape(-1, rows.shape[1] * self.pac)
        for layer in self.layers:
            x = F.leaky_relu(layer(x), 0.2)
            if self.training and self.dropout > 0:
                keep = torch.rand(x.shape, generator=generator, device=x.device) >= self.dropout
                x = x * keep / (1 - self.dropout)
        return self.head(x)


def init_weights(module: nn.Module, generator: torch.Generator) -> None:
    """PyTorch's default Linear initialisation, drawn from ``generator`` for reproducibility."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            bound = 1 / math.sqrt(layer.in_features)
            with torch.no_grad():
                layer.weight.copy_(torch.rand(layer.weight.shape, generator=generator) * 2 * bound - bound)
                layer.bias.copy_(torch.rand(layer.bias.shape, generator=generator) * 2 * bound - bound)


class ConditionSampler(nn.Module):
    """Training-by-sampling: draw (column, category) pairs and real rows that have them.

    Built once from the encoded data; lookups are tensor gathers, so a batch costs a few kernels.
    ``counts`` (rows per category, concatenated over conditional columns) is all that sampling
    needs after training and is what the model file stores.
    """

    def __init__(self, layout: SpanLayout, counts: torch.Tensor) -> None:
        super().__init__()
        self.layout = layout
        self.n_columns = len(layout.cond_widths)
        self.register_buffer("counts", counts.float())
        index, mask = layout.cond_data_index, layout.cond_mask  # shape (columns, widest)
        cond_index = layout.cond_vector_offsets[:, None] + torch.arange(index.shape[1], device=index.device)
        self.register_buffer("cond_index", torch.where(mask, cond_index, 0), persistent=False)
        padded = torch.where(mask, self.counts[self.cond_index], 0.0)
        self.register_buffer("true_probs", padded / padded.sum(1, keepdim=True).clamp_min(1), persistent=False)
        log_counts = torch.where(mask, torch.log1p(padded), 0.0)
        self.register_buffer("log_probs", log_counts / log_counts.sum(1, keepdim=True).clamp_min(1e-12), persistent=False)
        # Cumulative distributions for inverse-CDF draws (one uniform per row, no multinomial kernel).
        self.register_buffer("_true_cdf", self._cdf(self.true_probs, mask), persistent=False)
        self.register_buffer("_log_cdf", self._cdf(self.log_probs, mask), persistent=False)
        self.register_buffer("_last_level", mask.sum(1) - 1, persistent=False)

    @classmethod
    def from_data(cls, layout: SpanLayout, data: "torch.Tensor | CompactRows") -> "ConditionSampler":
        """Counts and row lists from the encoded rows: a dense tensor, or compact rows, whose
        conditional spans are already category codes (nothing dense is built for them)."""
        n_rows = data.shape[0]
        if not layout.cond_widths:
            sampler = cls(layout, torch.zeros(0, device=data.device))
            sampler.n_rows = n_rows
            return sampler
        # One conditional column at a time (its categories 0 .. width - 1, in the compact form's own
        # narrow dtype), so a big table never holds more than one column's codes and sort order.
        # Rows grouped by category, so a row with a given category is one gather away: per column,
        # its rows by category, ascending within one (a stable sort). Row numbers are int32 below
        # 2**31 rows: half the memory, and ``index_select`` takes either.
        rows_by_category = torch.empty(len(layout.cond_widths) * n_rows, device=data.device,
                                       dtype=torch.int32 if n_rows < 2**31 else torch.long)
        counts = []
        for column, width in enumerate(layout.cond_widths):
            codes = cls._column_codes(layout, data, column)
            counts.append(torch.bincount(codes, minlength=width))
            rows_by_category[column * n_rows: (column + 1) * n_rows] = torch.argsort(codes, stable=True)
        sampler = cls(layout, torch.cat(counts))
        sampler.register_buffer("rows_by_category", rows_by_category, persistent=False)
        sampler.register_buffer("category_start", torch.cumsum(sampler.counts.long(), 0) - sampler.counts.long(),
                                persistent=False)
        sampler.n_rows = n_rows
        return sampler

    @staticmethod
    def _column_codes(layout: SpanLayout, data: "torch.Tensor | CompactRows", column: int) -> torch.Tensor:
        width = layout.cond_widths[column]
        positions = layout.cond_data_index[column, :width]
        if isinstance(data, torch.Tensor):
            return data.index_select(1, positions).argmax(1)
        return data.span_codes(int(positions[0]), width)

    @staticmethod
    def _cdf(probs: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Row-wise CDFs; padding gets +inf so a draw never lands there."""
        return torch.where(mask, probs.cumsum(1), float("inf"))

    def _draw(self, cdf: torch.Tensor, column: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """A category per row from ``cdf[column]`` by inverse CDF."""
        uniform = torch.rand(column.shape[0], 1, generator=generator, device=column.device)
        rows = cdf.index_select(0, column)
        # The last real level's CDF is 1 up to rounding: clamp so a uniform above it stays there.
        return (rows <= uniform).sum(1).clamp_max_(self._last_level.index_select(0, column))

    def _one_hot(self, column: torch.Tensor, category: torch.Tensor) -> torch.Tensor:
        cond = torch.zeros(column.shape[0], self.layout.cond_dim, device=column.device)
        slot = self.layout.cond_vector_offsets.index_select(0, column) + category
        return cond.scatter_(1, slot[:, None], 1.0)

    def for_training(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, ...]:
        """(condition vectors, chosen column, chosen category, matching real row indices)."""
        device = self.counts.device
        if not self.n_columns:
            rows = torch.randint(self.n_rows, (batch,), generator=generator, device=device)
            return torch.zeros(batch, 0, device=device), None, None, rows
        column = torch.randint(self.n_columns, (batch,), generator=generator, device=device)
        category = self._draw(self._log_cdf, column, generator)
        slot = self.layout.cond_vector_offsets.index_select(0, column) + category
        offset = (torch.rand(batch, generator=generator, device=device) * self.counts.index_select(0, slot)).long()
        rows = self.rows_by_category.index_select(0, self.category_start.index_select(0, slot) + offset)
        return self._one_hot(column, category), column, category, rows

    def for_sampling(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """Condition vectors at the true category frequencies, as seen in training."""
        return self.at_true_frequencies(batch, generator)[0]

    def at_true_frequencies(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """(condition vectors, column, category) drawn at the true category frequencies."""
        device = self.counts.device
        if not self.n_columns:
            return torch.zeros(batch, 0, device=device), None, None
        column = torch.randint(self.n_columns, (batch,), generator=generator, device=device)
        category = self._draw(self._true_cdf, column, generator)
        return self._one_hot(column, category), column, category

    def of_rows(self, rows: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Each encoded row's own condition vector in a uniformly chosen conditional column.

        Used under DP, where real rows come from Poisson sampling rather than by category: the
        vector is a function of the row alone, so per-sample clipping bounds its influence. Over a
        Poisson batch it follows the true frequencies, like :meth:`at_true_frequencies` for fakes.
        """
        device = rows.device
        if not self.n_columns:
            return torch.zeros(rows.shape[0], 0, device=device)
        logits = rows[:, self.layout.cond_data_index].masked_fill(~self.layout.cond_mask, float("-inf"))
        column = torch.randint(self.n_columns, (rows.shape[0],), generator=generator, device=device)
        category = logits.argmax(-1).gather(1, column[:, None]).squeeze(1)
        return self._one_hot(column, category)

    def fixed(self, batch: int, slots: list[int]) -> torch.Tensor:
        """Condition vectors with the given condition-vector positions set, for requested values."""
        cond = torch.zeros(batch, self.layout.cond_dim, device=self.counts.device)
        cond[:, slots] = 1.0
        return cond


def networks(table: TableTransformer, config: GANConfig) -> tuple[SpanLayout, Generator]:
    """The span layout and an untrained generator for ``table``'s encoding (spans and conditional offsets)."""
    layout = SpanLayout(table.spans_, [c.data_offset for c in table.conditional_columns_])
    return layout, Generator(config.embedding_dim, layout.cond_dim, config.generator_dims, layout.data_dim)
