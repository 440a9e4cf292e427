"""SFC, semantic-aware fine-grained correspondence (seed 004, Hu et al., ECCV 2022).

``model.py`` (the fused method: FC + semantic branch), ``semantic.py`` (MoCo v2 / BYOL training of
the semantic branch), ``infonce.py`` and ``byol.py`` (its losses; FC's is
:mod:`corr_core.methods.fc.loss`), ``augment.py`` (MoCo v2's views), ``weights.py`` (a semantic
checkpoint loaded without unpickling; a fused checkpoint split into its branches), ``data.py``
(batches). The fused network is :class:`corr_core.models.fusion.FusedFeatures`, registered
as the architectures of :data:`corr_core.models.registry.SFC_FUSIONS`.
"""

from corr_core.methods.sfc.byol import NegativeCosineLoss
from corr_core.methods.sfc.infonce import InfoNCELoss
from corr_core.methods.sfc.model import SFC_PROPAGATION, SFCMethod
from corr_core.methods.sfc.semantic import SemanticMethod
from corr_core.methods.sfc.weights import load_semantic_weights, split_fused

__all__ = ["SFC_PROPAGATION", "InfoNCELoss", "NegativeCosineLoss", "SFCMethod", "SemanticMethod",
           "load_semantic_weights", "split_fused"]
