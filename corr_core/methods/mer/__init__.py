"""MER, motion-enhanced self-supervised video correspondence (seed 002, Zhou et al.).

``model.py`` (the method), ``engine.py`` (Motion Enhancement Engine: flow fusion, Value Extraction
Network), ``sampler.py`` (Multi-Cluster Sampler), ``bank.py`` (memory bank of other videos),
``weightmap.py`` and ``contrastive.py`` (the two losses of the fused loss), ``data.py`` (clips with
optical flow).
"""

from corr_core.methods.mer.bank import MemoryBank
from corr_core.methods.mer.contrastive import PositiveNegativeLoss
from corr_core.methods.mer.engine import FlowFusion, ValueExtractionNetwork
from corr_core.methods.mer.model import MER_PROPAGATION, MERMethod
from corr_core.methods.mer.sampler import MultiClusterSampler
from corr_core.methods.mer.weightmap import WeightMapLoss

__all__ = ["MER_PROPAGATION", "FlowFusion", "MERMethod", "MemoryBank", "MultiClusterSampler",
           "PositiveNegativeLoss", "ValueExtractionNetwork", "WeightMapLoss"]
