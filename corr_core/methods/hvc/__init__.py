"""HVC (Pei et al., 2024): hybrid static-dynamic visual correspondence learnt from still images."""

from corr_core.methods.hvc.heads import PseudoDynamicGenerator, ResidualHead
from corr_core.methods.hvc.loss import HybridCorrespondenceLoss
from corr_core.methods.hvc.model import HVCMethod

__all__ = ["HVCMethod", "HybridCorrespondenceLoss", "PseudoDynamicGenerator", "ResidualHead"]
