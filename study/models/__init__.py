"""Backbones: a registry of pretrained encoders, each a timm model with its own transform."""
from study.models import efficientnet, embedded, pretrained, text, toy  # noqa: F401  (register the backbones)
from study.models.backbone import Backbone, features
from study.models.registry import check_backbone, create_backbone, list_backbones, register_backbone

__all__ = ["Backbone", "features", "check_backbone", "create_backbone", "list_backbones", "register_backbone"]
