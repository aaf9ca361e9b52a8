"""Typed schema of the app config and its validation, run before any data is loaded or model built.

Each config group (``conf/<group>/*.yaml``) is merged into the dataclass below that describes it:
OmegaConf rejects unknown keys and wrong types, then ``check_*`` functions reject values out of
range. Every failure is a :class:`ConfigError` naming the key and what is allowed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Optional, TypeVar

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regsweep.data.augment import AugmentSettings
from regsweep.errors import ConfigError

ACTIVATIONS = ("relu", "tanh", "sigmoid", "gelu", "elu", "leaky_relu")
NORMS = ("none", "batch", "layer")
NORMALIZATIONS = ("none", "minmax", "standardize")
SCHEDULES = ("none", "cosine", "step")


@dataclass
class DataConfig:
    """Fields common to every dataset; see ``conf/data/*.yaml`` for what each means."""

    name: str
    batch_size: Optional[int]  # None = full batch
    normalize: str
    split_seed: int
    val_size: float  # fraction (< 1) or count (>= 1) of the training pool held out for validation
    batches_per_step: int  # minibatches per Lightning step, each with its own optimizer step


@dataclass
class DigitsDataConfig(DataConfig):
    test_size: float = 0.2  # fraction of all 1,797 images kept as the test set


@dataclass
class RegressionDataConfig(DataConfig):
    n_train: int = 100  # training points drawn uniformly on [-extent, extent]^2
    extent: float = 2.0
    noise_std: float = 0.0  # std of gaussian noise added to train/val targets (not to the test grid)
    test_grid: int = 50  # the test set is a test_grid x test_grid regular grid over the square


@dataclass
class ImageDataConfig(DataConfig):
    data_dir: str = "data"
    mirrors: list[str] = field(default_factory=list)
    download: bool = True
    timeout_s: float = 30.0
    retries: int = 2


@dataclass
class MLPConfig:
    name: str
    hidden_sizes: list[int]
    activation: str
    dropout: float
    norm: str


@dataclass
class CNNConfig(MLPConfig):
    channels: list[int] = field(default_factory=lambda: [32, 64])  # one conv block per entry
    kernel_size: int = 5
    pool: str = "max"  # max | avg | none: 2x2 pooling after each conv block


@dataclass
class RegularizerConfig:
    name: str
    l1: float  # penalty = l1 * sum|w| + l2 * sum w^2 over weight matrices and conv kernels
    l2: float
    scale_by_n_train: bool  # divide l1 and l2 by the number of training samples
    grad_noise_std: float  # std of N(0, sigma^2) added to every gradient each step


@dataclass
class OptimizerConfig:
    name: str
    lr: float
    weight_decay: float
    schedule: str  # none | cosine | step
    step_size: int  # epochs between decays (schedule=step)
    gamma: float  # decay factor (schedule=step)
    clip_grad_norm: float  # rescale gradients to at most this global L2 norm before each step; 0 = off
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])  # adam, adamw
    momentum: float = 0.0  # sgd
    nesterov: bool = False  # sgd


@dataclass
class Settings:
    """The validated, typed view of everything that shapes the model, data and loss."""

    seed: int
    optimized_metric: str
    data: DataConfig
    model: MLPConfig
    regularizer: RegularizerConfig
    optimizer: OptimizerConfig
    augment: AugmentSettings


DATA_SCHEMAS: dict[str, type[DataConfig]] = {
    "digits": DigitsDataConfig,
    "regression": RegressionDataConfig,
    "mnist": ImageDataConfig,
    "fashion_mnist": ImageDataConfig,
}
MODEL_SCHEMAS: dict[str, type[MLPConfig]] = {"mlp": MLPConfig, "cnn": CNNConfig}
OPTIMIZERS = ("adam", "adamw", "sgd")
PENALTY_TERMS = {"none": (), "l1": ("l1",), "l2": ("l2",), "l1l2": ("l1", "l2")}  # regularizer.name -> terms
METRICS = ("val/loss", "val/acc", "train/loss", "train/acc", "test/loss", "test/acc")

T = TypeVar("T")


def _require(key: str, value: object, ok: bool, allowed: str) -> None:
    if not ok:
        raise ConfigError(key, value, allowed)


def _one_of(key: str, value: str, options: tuple[str, ...] | list[str]) -> None:
    _require(key, value, value in options, f"must be one of {', '.join(options)}")


def _typed(group: str, schema: type[T], node: Any) -> T:
    """Merge a config node into its schema; unknown keys and wrong types become ConfigErrors."""
    if not isinstance(node, DictConfig):
        raise ConfigError(group, node, f"must be a mapping of {schema.__name__} fields")
    try:
        values = OmegaConf.to_container(node, resolve=True)  # interpolations need the whole config
        merged = OmegaConf.merge(OmegaConf.structured(schema), values)
        return OmegaConf.to_object(merged)  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        full_key = getattr(err, "full_key", None) or ""
        key = full_key if full_key.startswith(f"{group}.") else f"{group}.{full_key}".rstrip(".")
        message = str(getattr(err, "msg", err)).splitlines()[0]
        raise ConfigError(key, getattr(err, "value", None), message) from None


def _schema_for(group: str, node: Any, schemas: dict[str, type[T]]) -> type[T]:
    name = node.get("name") if isinstance(node, DictConfig) else None
    _one_of(f"{group}.name", name, tuple(schemas))
    return schemas[name]


def check_data(data: DataConfig) -> None:
    if data.batch_size is not None:
        _require("data.batch_size", data.batch_size, data.batch_size > 0, "must be > 0 (or null for full batch)")
    _require("data.batches_per_step", data.batches_per_step, data.batches_per_step >= 1, "must be >= 1")
    _one_of("data.normalize", data.normalize, NORMALIZATIONS)
    _require("data.val_size", data.val_size, data.val_size > 0, "must be > 0 (a fraction < 1 or a count >= 1)")
    if isinstance(data, DigitsDataConfig):
        _require("data.test_size", data.test_size, 0 < data.test_size < 1, "must be in (0, 1)")
        _require("data.val_size", data.val_size, data.val_size < 1, "must be a fraction in (0, 1) for digits")
    if isinstance(data, RegressionDataConfig):
        _require("data.n_train", data.n_train, data.n_train >= 2, "must be >= 2")
        _require("data.noise_std", data.noise_std, data.noise_std >= 0, "must be >= 0")
        _require("data.extent", data.extent, data.extent > 0, "must be > 0")
        _require("data.test_grid", data.test_grid, data.test_grid >= 2, "must be >= 2")
    if isinstance(data, ImageDataConfig):
        _require("data.timeout_s", data.timeout_s, data.timeout_s > 0, "must be > 0")
        _require("data.retries", data.retries, data.retries >= 1, "must be >= 1")


def check_model(model: MLPConfig) -> None:
    sizes = model.hidden_sizes
    _require("model.hidden_sizes", sizes, len(sizes) > 0 and all(s > 0 for s in sizes),
             "must be a non-empty list of positive integers, e.g. [512,256]")
    _one_of("model.activation", model.activation, ACTIVATIONS)
    _require("model.dropout", model.dropout, 0 <= model.dropout < 1, "must be in [0, 1)")
    _one_of("model.norm", model.norm, NORMS)
    if isinstance(model, CNNConfig):
        _require("model.channels", model.channels, len(model.channels) > 0 and all(c > 0 for c in model.channels),
                 "must be a non-empty list of positive integers, e.g. [32,64]")
        _require("model.kernel_size", model.kernel_size, model.kernel_size > 0, "must be > 0")
        _one_of("model.pool", model.pool, ("max", "avg", "none"))


def check_regularizer(reg: RegularizerConfig) -> None:
    _one_of("regularizer.name", reg.name, tuple(PENALTY_TERMS))
    for term in ("l1", "l2"):
        strength = getattr(reg, term)
        _require(f"regularizer.{term}", strength, strength >= 0, "must be >= 0")
        if term not in PENALTY_TERMS[reg.name]:  # e.g. regularizer=l2 regularizer.l1=1e-4: a mistake for l1l2
            _require(f"regularizer.{term}", strength, strength == 0,
                     f"must be 0 with regularizer={reg.name}; use regularizer=l1l2 to combine L1 and L2")
    _require("regularizer.grad_noise_std", reg.grad_noise_std, reg.grad_noise_std >= 0, "must be >= 0")


def check_optimizer(opt: OptimizerConfig) -> None:
    _one_of("optimizer.name", opt.name, OPTIMIZERS)
    _require("optimizer.lr", opt.lr, opt.lr > 0, "must be > 0")
    _require("optimizer.weight_decay", opt.weight_decay, opt.weight_decay >= 0, "must be >= 0")
    _one_of("optimizer.schedule", opt.schedule, SCHEDULES)
    _require("optimizer.step_size", opt.step_size, opt.step_size > 0, "must be > 0")
    _require("optimizer.gamma", opt.gamma, 0 < opt.gamma <= 1, "must be in (0, 1]")
    _require("optimizer.clip_grad_norm", opt.clip_grad_norm, opt.clip_grad_norm >= 0, "must be >= 0 (0 = off)")
    _require("optimizer.momentum", opt.momentum, 0 <= opt.momentum < 1, "must be in [0, 1)")
    _require("optimizer.betas", opt.betas, len(opt.betas) == 2 and all(0 <= b < 1 for b in opt.betas),
             "must be two numbers in [0, 1)")


def check_trainer(trainer: Any) -> None:
    """Trainer options that Lightning refuses once the module steps its own optimizer, said up front."""
    clip = trainer.get("gradient_clip_val")
    _require("trainer.gradient_clip_val", clip, not clip, "is not supported here; use optimizer.clip_grad_norm")
    accumulate = trainer.get("accumulate_grad_batches", 1)
    _require("trainer.accumulate_grad_batches", accumulate, accumulate == 1,
             "must be 1 (every minibatch gets its own optimizer step); raise data.batch_size instead")


def _checked(check: Callable[[T], None], value: T) -> T:
    check(value)
    return value


def validate(cfg: DictConfig) -> Settings:
    """Check every value that shapes a run; raise ConfigError on the first bad one."""
    for group in ("data", "model", "regularizer", "optimizer", "augment"):
        _require(group, None, group in cfg, f"config group '{group}' is missing from the defaults list")
    try:
        seed = cfg.seed
    except OmegaConfBaseException as err:
        raise ConfigError("seed", None, str(err).splitlines()[0]) from None
    _require("seed", seed, isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0,
             "must be a non-negative integer (sweep several with -m seed=0-9)")
    metric = cfg.get("optimized_metric", "auto")
    _require("optimized_metric", metric, metric == "auto" or metric in METRICS,
             f"must be auto or one of {', '.join(METRICS)}")
    check_trainer(cfg.get("trainer") or {})
    data = _checked(check_data, _typed("data", _schema_for("data", cfg.data, DATA_SCHEMAS), cfg.data))
    model = _checked(check_model, _typed("model", _schema_for("model", cfg.model, MODEL_SCHEMAS), cfg.model))
    augment = _typed("augment", AugmentSettings, cfg.augment)  # AugmentSettings checks its own values
    if isinstance(data, RegressionDataConfig):
        _require("model", model.name, not isinstance(model, CNNConfig), "model=cnn needs an image dataset")
        _require("augment", "on", not augment.enabled, "augmentation needs an image dataset; use augment=none")
    return Settings(
        seed=seed,
        optimized_metric=metric,
        data=data,
        model=model,
        regularizer=_checked(check_regularizer, _typed("regularizer", RegularizerConfig, cfg.regularizer)),
        optimizer=_checked(check_optimizer, _typed("optimizer", OptimizerConfig, cfg.optimizer)),
        augment=augment,
    )
