"""Self-supervised objectives, one module per paper, built through :data:`METHODS`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from corr_core.errors import ConfigError
from corr_core.methods.fc import FCMethod

METHODS: dict[str, Callable[..., nn.Module]] = {"fc": FCMethod}


def build_method(name: str, **kwargs: Any) -> nn.Module:
    """Builds a registered method with its config section as keyword arguments.

    Raises:
        ConfigError: unknown method name or an argument the method does not take.
    """
    if name not in METHODS:
        raise ConfigError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    try:
        return METHODS[name](**kwargs)
    except TypeError as exc:
        raise ConfigError(f"method {name!r}: bad config ({exc})") from exc
