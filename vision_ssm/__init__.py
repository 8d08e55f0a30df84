"""vision-ssm: Vision Mamba backbones with pluggable 2D scan strategies.

``import vision_ssm`` registers every backbone with timm.
"""
__version__ = "0.1.0"

from .ops import selective_scan  # noqa: E402,F401
from . import models  # noqa: E402,F401
