"""The networks behind ``model=<name>``: input and output sizes always come from the data."""

from __future__ import annotations

import math

from torch import nn

from regsweep.config import CNNConfig, MLPConfig

ACTIVATION_LAYERS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "tanh": nn.Tanh,
    "sigmoid": nn.Sigmoid,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "leaky_relu": nn.LeakyReLU,
}


def _norm_1d(kind: str, width: int) -> list[nn.Module]:
    return {"none": [], "batch": [nn.BatchNorm1d(width)], "layer": [nn.LayerNorm(width)]}[kind]


def _norm_2d(kind: str, channels: int) -> list[nn.Module]:
    # GroupNorm with one group normalizes over (C, H, W) per sample: layer norm for feature maps.
    return {"none": [], "batch": [nn.BatchNorm2d(channels)], "layer": [nn.GroupNorm(1, channels)]}[kind]


def mlp_layers(cfg: MLPConfig, in_features: int, out_features: int) -> list[nn.Module]:
    """Linear -> norm -> activation -> dropout per hidden layer, then a linear output layer."""
    layers: list[nn.Module] = []
    width = in_features
    for hidden in cfg.hidden_sizes:
        layers += [nn.Linear(width, hidden), *_norm_1d(cfg.norm, hidden), ACTIVATION_LAYERS[cfg.activation]()]
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        width = hidden
    layers.append(nn.Linear(width, out_features))
    return layers


def build_mlp(cfg: MLPConfig, input_shape: tuple[int, ...], output_size: int) -> nn.Sequential:
    return nn.Sequential(nn.Flatten(), *mlp_layers(cfg, math.prod(input_shape), output_size))


def build_cnn(cfg: CNNConfig, input_shape: tuple[int, ...], output_size: int) -> nn.Sequential:
    """Conv blocks (conv -> norm -> activation -> 2x2 pool) then the same MLP head as ``model=mlp``."""
    if len(input_shape) != 3:
        raise ValueError(f"model=cnn needs image inputs [C, H, W], got shape {input_shape}")
    channels, height, width = input_shape
    pool = {"max": nn.MaxPool2d, "avg": nn.AvgPool2d}.get(cfg.pool)
    layers: list[nn.Module] = []
    for out_channels in cfg.channels:
        layers += [
            nn.Conv2d(channels, out_channels, cfg.kernel_size, padding="same"),
            *_norm_2d(cfg.norm, out_channels),
            ACTIVATION_LAYERS[cfg.activation](),
        ]
        if pool is not None and min(height, width) >= 2:
            layers.append(pool(2))
            height, width = height // 2, width // 2
        channels = out_channels
    layers.append(nn.Flatten())
    return nn.Sequential(*layers, *mlp_layers(cfg, channels * height * width, output_size))


def build_model(cfg: MLPConfig, input_shape: tuple[int, ...], output_size: int) -> nn.Sequential:
    if isinstance(cfg, CNNConfig):
        return build_cnn(cfg, input_shape, output_size)
    return build_mlp(cfg, input_shape, output_size)
