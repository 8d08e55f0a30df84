"""timm-registered backbones.  Importing this package registers every model with timm."""
from . import vim, vmamba  # noqa: F401  (registration)
from ._builder import (PretrainedLoadError, PretrainedLoaderMixin, build_ssm_model,  # noqa: F401
                       load_pretrained_checkpoint, make_cfg)
from .vim import VisionMamba  # noqa: F401
from .vmamba import VMamba  # noqa: F401
