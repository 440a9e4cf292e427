"""CorrFlow (Lai & Xie, BMVC 2019): correspondence flow learnt by copying quantised colours between frames."""

from corr_core.methods.corrflow.colours import ColourQuantizer
from corr_core.methods.corrflow.loss_cycle import CycleConsistencyLoss
from corr_core.methods.corrflow.loss_reconstruction import ColourReconstructionLoss
from corr_core.methods.corrflow.model import CorrFlowMethod, RestrictedAttention

__all__ = ["ColourQuantizer", "ColourReconstructionLoss", "CorrFlowMethod", "CycleConsistencyLoss",
           "RestrictedAttention"]
