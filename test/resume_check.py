"""The exact-resume check every method's tests share: a run interrupted after ``stop_after`` steps
and resumed from its ``last.*`` files ends with the weights (and buffers) of the uninterrupted run.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from corr_core.train.trainer import Trainer


class Interrupted(Exception):
    """Raised by :class:`StopAfter` in place of the next batch."""


class StopAfter:
    """A batch iterator that ends the run by raising :class:`Interrupted` after ``n`` batches; its
    state is the wrapped iterator's (what the trainer saves and restores)."""

    def __init__(self, batches: Any, n: int) -> None:
        self.batches, self.n = batches, n

    def __next__(self) -> Any:
        if self.n == 0:
            raise Interrupted
        self.n -= 1
        return next(self.batches)

    def state_dict(self) -> dict[str, Any]:
        return self.batches.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.batches.load_state_dict(state)


def resumed_equals_whole(tmp_path: Path, method: Callable[[], torch.nn.Module], batches: Callable[[], Iterator[Any]],
                         cfg: dict[str, Any], stop_after: int = 2) -> tuple[Trainer, Trainer]:
    """Runs ``method()`` on ``batches()`` whole, then interrupted after ``stop_after`` steps (``cfg``
    must checkpoint there) and resumed under another torch seed; asserts every state entry is equal.

    Returns:
        ``(whole, resumed)`` trainers, for method-specific checks.
    """

    def run(out: Path, stop: int | None = None) -> Trainer:
        torch.manual_seed(0)
        feed = batches()
        trainer = Trainer(method(), feed if stop is None else StopAfter(feed, stop), out, cfg)
        trainer.resume()
        trainer.fit()
        return trainer

    whole = run(tmp_path / "whole")
    with pytest.raises(Interrupted):
        run(tmp_path / "cut", stop_after)
    torch.manual_seed(123)  # the resumed run must take its randomness from the saved state
    resumed = run(tmp_path / "cut")
    for (k, a), b in zip(whole.method.state_dict().items(), resumed.method.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    return whole, resumed
