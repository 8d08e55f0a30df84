"""timm-registered backbones.  Importing this package registers every model with timm."""
