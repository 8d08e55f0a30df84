"""vision-ssm: Vision Mamba backbones with pluggable 2D scan strategies."""
__version__ = "0.1.0"

from .ops import selective_scan  # noqa: E402,F401
