"""FC, the fine-grained correspondence part of SFC (Hu et al., ECCV 2022)."""

from corr_core.methods.fc.loss import LocalCorrespondenceLoss
from corr_core.methods.fc.model import DenseHead, FCMethod

__all__ = ["DenseHead", "FCMethod", "LocalCorrespondenceLoss"]
