"""Layers shared by the backbones: SS2D (VMamba), the bidirectional Mamba mixer (Vim), norms, embeddings."""
from .bimamba import BiMamba, direction_param_names, direction_suffix  # noqa: F401
from .embed import ConvDownsample, PatchEmbed, PatchMerging2D, make_downsample, pad_to_multiple  # noqa: F401
from .norm import LayerNorm2d, get_norm_layer  # noqa: F401
from .pos_embed import insert_mid_token, mid_index, resample_pos_embed_mid_cls, split_mid_token  # noqa: F401
from .scan_backend import SCAN_BACKENDS, check_scan_backend  # noqa: F401
from .ss2d import SS2D, Linear2d, resolve_scan  # noqa: F401
