"""timm-registered backbones.  Importing this package registers every model with timm."""
from . import vim, vmamba  # noqa: F401  (registration)
from ._builder import (PretrainedLoadError, PretrainedLoaderMixin, adapt_to_model,  # noqa: F401
                       build_ssm_model, check_state_dict, load_pretrained_checkpoint)
from .vim import VisionMamba  # noqa: F401
from .vmamba import VMamba  # noqa: F401
