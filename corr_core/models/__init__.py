"""Backbones and heads, built through a registry (:func:`build_backbone`)."""

from corr_core.models.registry import BACKBONES, build_backbone, register_backbone

__all__ = ["BACKBONES", "build_backbone", "register_backbone"]
