"""Layers shared by the backbones: SS2D (VMamba), the bidirectional Mamba mixer (Vim), norms, embeddings."""
