"""timm-registered backbones.  Importing this package registers every model with timm."""
from . import vim  # noqa: F401
from .vim import VisionMamba  # noqa: F401
