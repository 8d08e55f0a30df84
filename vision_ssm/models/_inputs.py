"""Checks of a model's input that name the argument a user would change."""
import torch

__all__ = ["check_image"]


def check_image(x: torch.Tensor, in_chans: int, model: str) -> None:
    """``x`` must be a (B, in_chans, H, W) batch."""
    if x.dim() != 4:
        raise ValueError(f"{model}: expected images of shape (B, C, H, W), got {tuple(x.shape)}")
    if x.shape[1] != in_chans:
        raise ValueError(f"{model}: the images have {x.shape[1]} channels but the model was built with "
                         f"in_chans={in_chans}; pass in_chans={x.shape[1]} to timm.create_model")
