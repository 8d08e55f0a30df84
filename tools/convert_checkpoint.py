#!/usr/bin/env python
"""Convert an official VMamba / Vim checkpoint into a clean timm-style .safetensors file.

The weights are mapped to our model's keys (legacy VMamba names included), loaded into the model
with zero missing / unexpected keys (otherwise they are listed and the exit status is 1), and
written as a state dict only, with the source file and model name in the safetensors header.

    python tools/convert_checkpoint.py --model vmamba_tiny_s1l8 vssm1_tiny_0230s_ckpt_epoch_264.pth
    python tools/convert_checkpoint.py --model vim_tiny_patch16_224 vim_t_midclstok_76p1acc.pth --use-ema \\
        -o weights/vim_tiny_ema.safetensors
    python tools/convert_checkpoint.py --model vim_small_patch16_224 vim_s_midclstok_80p5acc.pth --img-size 384

Load the result with
    timm.create_model(NAME, pretrained=True, pretrained_cfg_overlay=dict(file="OUT.safetensors"))
"""
import sys

from vision_ssm.cli.convert_checkpoint import main

if __name__ == "__main__":
    sys.exit(main())
