"""The tensor machinery of the GAN: activations, conditioning offsets, training-by-sampling."""
from __future__ import annotations

import torch

from synthgen.data.base import Span
from synthgen.models.tabular_gan import ConditionSampler, Discriminator, SpanLayout

# tanh | softmax(3) mode | conditional(2) | tanh | conditional(4)  -> conditional spans at 4 and 7
SPANS = [Span(1, "tanh"), Span(3, "softmax"), Span(2, "softmax", True), Span(1, "tanh"), Span(4, "softmax", True)]
CONDITIONAL_OFFSETS = [4, 7]


def _layout() -> SpanLayout:
    return SpanLayout(SPANS, CONDITIONAL_OFFSETS)


def test_layout_offsets_in_data_and_condition_vector_differ_for_every_column() -> None:
    layout = _layout()
    assert layout.data_dim == 11 and layout.cond_dim == 6
    assert layout.cond_data_index[0, :2].tolist() == [4, 5]
    assert layout.cond_data_index[1].tolist() == [7, 8, 9, 10]
    assert layout.cond_vector_offsets.tolist() == [0, 2]


def test_activate_bounds_tanh_and_normalises_each_softmax_span() -> None:
    layout = _layout()
    raw = torch.randn(64, 11, generator=torch.Generator().manual_seed(0)) * 5
    out = layout.activate(raw, tau=0.2, generator=torch.Generator().manual_seed(1))
    assert out[:, [0, 6]].abs().max() <= 1
    for start, width in [(1, 3), (4, 2), (7, 4)]:
        torch.testing.assert_close(out[:, start : start + width].sum(1), torch.ones(64))
    torch.testing.assert_close(out[:, [0, 6]], torch.tanh(raw[:, [0, 6]]))


def test_gumbel_argmax_draws_categories_at_softmax_probabilities() -> None:
    layout = SpanLayout([Span(3, "softmax")], [])
    logits = torch.log(torch.tensor([[0.6, 0.3, 0.1]])).repeat(20_000, 1)
    out = layout.activate(logits, tau=0.2, generator=torch.Generator().manual_seed(0))
    shares = torch.bincount(out.argmax(1), minlength=3) / 20_000
    torch.testing.assert_close(shares, torch.tensor([0.6, 0.3, 0.1]), atol=0.02, rtol=0)


def test_condition_loss_reads_the_chosen_columns_logits() -> None:
    layout = _layout()
    raw = torch.zeros(2, 11)
    raw[0, 5] = 20.0  # row 0: column 0, category 1
    raw[1, 9] = 20.0  # row 1: column 1, category 2
    right = layout.condition_loss(raw, torch.tensor([0, 1]), torch.tensor([1, 2]))
    wrong = layout.condition_loss(raw, torch.tensor([0, 1]), torch.tensor([0, 3]))
    assert right < 1e-6 < 10 < wrong


def _encoded_rows(n: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    data = torch.zeros(n, 11)
    data[:, 0] = torch.rand(n, generator=g)
    data[torch.arange(n), 1 + torch.randint(3, (n,), generator=g)] = 1
    a = torch.multinomial(torch.tensor([0.9, 0.1]), n, replacement=True, generator=g)
    b = torch.multinomial(torch.tensor([0.7, 0.2, 0.08, 0.02]), n, replacement=True, generator=g)
    data[torch.arange(n), 4 + a] = 1
    data[torch.arange(n), 7 + b] = 1
    return data


def test_training_rows_carry_the_sampled_category_for_every_column() -> None:
    layout = _layout()
    data = _encoded_rows(2_000)
    sampler = ConditionSampler.from_data(layout, data)
    cond, column, category, rows = sampler.for_training(5_000, torch.Generator().manual_seed(3))
    assert set(column.tolist()) == {0, 1}
    data_positions = layout.cond_data_index[column, category]
    assert torch.all(data[rows, data_positions] == 1)
    assert torch.all(cond[torch.arange(5_000), layout.cond_vector_offsets[column] + category] == 1)
    assert torch.all(cond.sum(1) == 1)


def test_training_uses_log_frequencies_and_sampling_true_frequencies() -> None:
    layout = _layout()
    data = _encoded_rows(20_000)
    sampler = ConditionSampler.from_data(layout, data)
    true_share = data[:, 7:11].mean(0)
    cond = sampler.for_sampling(40_000, torch.Generator().manual_seed(0))
    picked = cond[:, 2:6][cond[:, 2:6].sum(1) == 1]
    torch.testing.assert_close(picked.mean(0), true_share, atol=0.02, rtol=0)
    _, column, category, _ = sampler.for_training(40_000, torch.Generator().manual_seed(0))
    rare = (category[column == 1] == 3).float().mean()
    assert rare > 2 * true_share[3]  # log-frequency sampling lifts rare categories


def test_discriminator_scores_one_value_per_pack() -> None:
    critic = Discriminator(input_dim=17, hidden=(32, 32), pac=10, dropout=0.5)
    scores = critic(torch.randn(50, 17), torch.Generator().manual_seed(0))
    assert scores.shape == (5, 1)


def test_hard_activation_is_the_same_draw_as_one_hot() -> None:
    layout = _layout()
    raw = torch.randn(500, 11, generator=torch.Generator().manual_seed(0)) * 3
    soft = layout.activate(raw, tau=0.2, generator=torch.Generator().manual_seed(1))
    hard = layout.activate(raw, tau=0.2, generator=torch.Generator().manual_seed(1), hard=True)
    torch.testing.assert_close(hard[:, [0, 6]], soft[:, [0, 6]])
    for start, width in [(1, 3), (4, 2), (7, 4)]:
        block = hard[:, start : start + width]
        assert torch.all(block.sum(1) == 1) and torch.all((block == 0) | (block == 1))
        assert torch.equal(block.argmax(1), soft[:, start : start + width].argmax(1))
