"""The pooled encoders' batching: every window once, shortest first, within both limits."""

from __future__ import annotations

import random

import pytest

from mem8.encoders.pooled import BATCH, batches


@pytest.mark.parametrize("most_tokens", [BATCH * 256, 4096, 500])
def test_batches_hold_every_window_once_within_both_limits(most_tokens: int) -> None:
    rng = random.Random(most_tokens)
    lengths = [rng.choice([2, rng.randint(3, 60), 256, 384]) for _ in range(300)]
    found = list(batches(lengths, most_tokens))
    assert sorted(w for batch in found for w in batch) == list(range(len(lengths)))
    in_order = [lengths[w] for batch in found for w in batch]
    assert in_order == sorted(lengths)
    for batch in found:
        assert len(batch) <= BATCH
        assert len(batch) == 1 or len(batch) * max(lengths[w] for w in batch) <= most_tokens


def test_a_budget_of_full_batches_never_binds() -> None:
    """MiniLM's: runs of BATCH windows in order of length, as before the budget existed."""
    rng = random.Random(3)
    lengths = [rng.randint(2, 256) for _ in range(100)]
    order = sorted(range(len(lengths)), key=lengths.__getitem__)
    expected = [order[start : start + BATCH] for start in range(0, len(order), BATCH)]
    assert list(batches(lengths, BATCH * 256)) == expected
