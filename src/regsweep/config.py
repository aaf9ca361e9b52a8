"""The app config: every group's schema registered in Hydra's ConfigStore, and the check a job runs first.

Types and unknown keys fail when Hydra composes the config (each ``conf/<group>/*.yaml`` starts
from its ``schema/<group>/*`` entry); :func:`validate` then turns each group into its dataclass, whose
field rules (:mod:`regsweep.schema`) refuse values out of range, and checks what involves several
groups. Everything happens before data is loaded or a model is built, and every failure is one
:class:`~regsweep.errors.ConfigError` line naming the key and what is allowed.
"""

from __future__ import annotations

import copy
import difflib
import functools
import hashlib
import json
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Optional, TypeVar

from hydra.core.config_store import ConfigStore
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import Logger
from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from regsweep import metrics
from regsweep.data.augment import AugmentSettings
from regsweep.data.sources import DATASETS, DataConfig, task_of
from regsweep.errors import ConfigError
from regsweep.instantiate import check_targets
from regsweep.networks import BUILTIN, CNNConfig, ModelConfig, is_user_model, user_model
from regsweep.training.optim import OptimizerConfig
from regsweep.packing import PACK_OFF
from regsweep.training.penalty import RegularizerConfig
from regsweep.schema import is_integer, require
from regsweep.trainer import BatchPlan, check_trainer, trainer_schema

GROUPS = ("data", "model", "regularizer", "optimizer", "augment", "trainer")


@dataclass
class PackConfig:
    size: Any = "auto"  # auto | an integer >= 1 | off: how many compatible jobs train as one batched model
    manifest: Optional[str] = None  # set by the sweeper for a pack job: the members it trains


@dataclass
class RunConfig:
    """The root of conf/train.yaml: run-level keys, then one node per config group."""

    seed: Any = MISSING  # checked by validate(): the master config of `-m seed=0-9` holds the range "0-9"
    optimized_metric: str = MISSING
    answer_on: Any = MISSING  # auto | a list of metrics (final/val/loss, test/acc): what a summary answers on
    flush_denormal: bool = MISSING
    tf32: bool = MISSING
    minibatches_per_step: int = MISSING
    threads: Any = MISSING  # auto | an integer >= 1
    last_checkpoint_every_s: Optional[float] = MISSING  # write last.ckpt at most this often (null: only at the end)
    train: bool = MISSING
    test: bool = MISSING
    ckpt_path: Optional[str] = None
    tags: list[str] = field(default_factory=list)
    pack: PackConfig = field(default_factory=PackConfig)
    data: Any = MISSING
    model: Any = MISSING
    regularizer: Any = MISSING
    optimizer: Any = MISSING
    augment: Any = MISSING
    trainer: Any = MISSING
    callbacks: Optional[Any] = None
    logger: Optional[Any] = None
    paths: Any = MISSING
    search: Optional[Any] = None  # set by conf/hparams_search/*: the job's Optuna trial


MAX_NAME_BYTES = 200  # of a job dir's name from its overrides; file systems refuse names over 255 bytes


def path_safe(text: str) -> str:
    """A job-dir name from overrides: a value such as ``val/acc`` must not nest directories, and many overrides must
    not make a name the file system refuses (then cut, with a digest of the whole that keeps names apart)."""
    name = text.replace("/", "_")
    if len(name.encode()) <= MAX_NAME_BYTES:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:10]
    return name.encode()[: MAX_NAME_BYTES - 12].decode(errors="ignore") + f"~{digest}"


def register_resolvers() -> None:
    """Resolvers the configs use (``${path_safe:...}`` in conf/hydra/default.yaml)."""
    OmegaConf.register_resolver("path_safe", path_safe, replace=True)


def register_configs() -> None:
    """Store every schema in Hydra's ConfigStore (idempotent); the YAML options start from these.

    A group's schemas live under ``schema/<group>`` (``- /schema/model/mlp@_here_`` in an option's
    defaults), outside the group itself, so they are never listed as options a user could choose.
    """
    store = ConfigStore.instance()
    store.store(name="schema_train", node=RunConfig, provider="regsweep")
    schemas = [("data", name, source.schema) for name, source in DATASETS.items()]
    schemas += [("model", name, schema) for name, schema in BUILTIN.items()]
    schemas += [(group, "base", schema) for group, schema in (
        ("regularizer", RegularizerConfig), ("optimizer", OptimizerConfig), ("augment", AugmentSettings),
        ("trainer", trainer_schema()))]
    for group, name, schema in schemas:
        store.store(group=f"schema/{group}", name=name, node=schema, provider="regsweep")


@dataclass(frozen=True)
class Settings:
    """The validated, typed view of one job's config."""

    seed: int
    task: str  # metrics.CLASSIFICATION | metrics.REGRESSION, from the dataset
    objective: str  # optimized_metric with auto resolved
    data: DataConfig
    model: ModelConfig
    regularizer: RegularizerConfig
    optimizer: OptimizerConfig
    augment: AugmentSettings
    batches: BatchPlan
    minibatches_per_step: int
    train: bool = True
    test: bool = True
    ckpt_path: str | None = None
    tags: tuple[str, ...] = ()
    last_checkpoint_every_s: float | None = 60.0
    checkpointing: bool = True  # trainer.enable_checkpointing: false writes neither best.ckpt nor last.ckpt
    pack_size: int | str = "auto"  # auto | off | an integer
    threads: int | str = "auto"
    flush_denormal: bool = True
    tf32: bool = False


T = TypeVar("T")


def typed(group: str, schema: type[T], node: Any) -> T:
    """A group node as its schema's dataclass; unknown keys, wrong types and rule breaks become ConfigErrors.

    The jobs of a sweep mostly share their groups' values: each distinct set is typed once (OmegaConf's
    structured merge costs milliseconds, a sweep of hundreds of jobs checks each job twice) and each
    job gets its own copy of the dataclass.
    """
    if not isinstance(node, DictConfig):
        raise ConfigError(group, node, f"must be a mapping of {schema.__name__} fields")
    try:
        values = OmegaConf.to_container(node, resolve=True)  # interpolations need the whole config
    except OmegaConfBaseException as err:
        raise _config_error(group, err) from None
    return copy.deepcopy(_typed_values(group, schema, json.dumps(values, sort_keys=True)))


@functools.lru_cache(maxsize=1024)
def _typed_values(group: str, schema: type[T], values: str) -> T:
    """``typed`` for a group's resolved values (as JSON, to be a cache key)."""
    try:
        return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(schema), json.loads(values)))  # type: ignore[return-value]
    except OmegaConfBaseException as err:
        raise _config_error(group, err) from None


def _config_error(group: str, err: OmegaConfBaseException) -> ConfigError:
    full_key = getattr(err, "full_key", None) or ""
    key = full_key if full_key.startswith(f"{group}.") else f"{group}.{full_key}".rstrip(".")
    message = str(getattr(err, "msg", err)).splitlines()[0]
    return ConfigError(key, getattr(err, "value", None), message)


def _named_schema(group: str, node: Any, schemas: dict[str, Any], pick: Any = lambda s: s) -> Any:
    name = node.get("name") if isinstance(node, DictConfig) else None
    require(f"{group}.name", name, name in schemas, f"must be one of {', '.join(schemas)}")
    return pick(schemas[name])


def data_config(cfg: DictConfig) -> DataConfig:
    """The data group as its checked dataclass: validate() and the sweepers need its task before any job runs."""
    return typed("data", _named_schema("data", cfg.data, DATASETS, lambda s: s.schema), cfg.data)


def config_task(cfg: DictConfig) -> str:
    """A job config's task, from no more than it needs: a built-in dataset's is fixed, one's own data says it."""
    source = DATASETS.get(OmegaConf.select(cfg, "data.name", default=None))
    if source is not None and isinstance(source.task, str):
        return source.task
    return task_of(data_config(cfg))


def answer_on(cfg: DictConfig) -> Any:
    """The root key ``answer_on`` as plain data: ``auto`` or a list of metric names."""
    value = cfg.get("answer_on", "auto")
    return OmegaConf.to_container(value) if OmegaConf.is_list(value) else value


def check_model(node: Any) -> ModelConfig:
    """``model=mlp``/``cnn`` (a ``name``), or a network of the user's own (a ``_target_``)."""
    if is_user_model(node):
        return user_model(node)
    name = node.get("name") if isinstance(node, DictConfig) else None
    require("model.name", name, name in BUILTIN, f"must be one of {', '.join(BUILTIN)}, or the model config names a "
            "torch.nn.Module class of your own with _target_ (README: Bring your own model)")
    return typed("model", BUILTIN[name], node)


def check_seed(cfg: DictConfig) -> int:
    try:
        seed = cfg.seed
    except OmegaConfBaseException as err:
        raise ConfigError("seed", None, str(err).splitlines()[0]) from None
    require("seed", seed, is_integer(seed, 0),
            "must be a non-negative integer (sweep several with -m seed=0-9)")
    return seed


def check_monitors(callbacks: Any, task: str) -> None:
    """A callback watching a metric must watch one the job writes, in the direction that improves it."""
    for name, node in (callbacks or {}).items():
        if not isinstance(node, DictConfig) or "monitor" not in node:
            continue
        monitor = metrics.objective(node.monitor, task, key=f"callbacks.{name}.monitor")
        mode, expected = node.get("mode", "auto"), metrics.mode(monitor)
        if mode != "auto" and expected is not None and expected != mode:
            raise ConfigError(f"callbacks.{name}.mode", mode,
                              f"{monitor} improves when it {'rises' if expected == 'max' else 'falls'}: "
                              f"use mode={expected} (or auto)")


def check_keys(cfg: DictConfig) -> None:
    """Keys added with ``+`` that nothing reads: a misspelled run key or Trainer argument."""
    known = {f.name for f in fields(RunConfig)} | {"hydra"}  # a sweeper checks jobs with their Hydra config
    _refuse_unknown(cfg, known, "", "is not a key of the config", f" (run keys: {', '.join(sorted(known))})")
    _refuse_unknown(cfg.trainer, {f.name for f in fields(trainer_schema())}, "trainer.",
                    "is not a Lightning Trainer argument")


def _refuse_unknown(node: DictConfig, known: set[str], prefix: str, what: str, otherwise: str = "") -> None:
    """The first key of ``node`` not in ``known``, named with the closest known key (else ``otherwise``)."""
    for key in node:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            raise ConfigError(f"{prefix}{key}", node.get(key),
                              what + (f"; did you mean {prefix}{near[0]}?" if near else otherwise))


def check_root_dir(cfg: DictConfig) -> None:
    """``trainer.default_root_dir`` is where Lightning would write; a job writes everything into its own dir."""
    try:
        root, own = cfg.trainer.get("default_root_dir"), OmegaConf.select(cfg, "paths.output_dir")
    except OmegaConfBaseException:  # ${hydra:...} outside a Hydra run: nothing to compare yet
        return
    if root is not None and own is not None and Path(str(root)).resolve() != Path(str(own)).resolve():
        raise ConfigError("trainer.default_root_dir", root, "a job writes its checkpoints, logs and records into its "
                          "own dir: set hydra.run.dir (a run) or hydra.sweep.dir (a multirun) instead")


def validate(cfg: DictConfig) -> Settings:
    """Check every value that shapes a job; raise ConfigError on the first bad one."""
    for group in GROUPS:
        require(group, None, group in cfg and cfg[group] is not None,
                f"config group '{group}' is missing from the defaults list")
    check_keys(cfg)
    seed = check_seed(cfg)
    batches = check_trainer(cfg.trainer)
    data = data_config(cfg)
    task = task_of(data)
    model = check_model(cfg.model)
    augment = typed("augment", AugmentSettings, cfg.augment)
    if DATASETS[data.name].images is False:
        require("model", model.name, not isinstance(model, CNNConfig), "model=cnn needs an image dataset")
        require("augment", "on", not augment.enabled, "augmentation needs an image dataset; use augment=none")
    objective = metrics.objective(cfg.get("optimized_metric", "auto"), task)
    metrics.answer_metrics(answer_on(cfg), task)
    check_monitors(cfg.get("callbacks"), task)
    check_targets("callbacks", cfg.get("callbacks"), Callback)
    check_targets("logger", cfg.get("logger"), Logger)
    per_step = cfg.get("minibatches_per_step", 1)
    require("minibatches_per_step", per_step, is_integer(per_step, 1), "must be an integer >= 1")
    threads = cfg.get("threads", "auto")
    require("threads", threads, threads == "auto" or is_integer(threads, 1), "must be auto or an integer >= 1")
    size = OmegaConf.select(cfg, "pack.size", default="auto")
    require("pack.size", size, size in ("auto", PACK_OFF) or is_integer(size, 1), "must be auto, off or an integer >= 1")
    every = cfg.get("last_checkpoint_every_s", 60.0)
    require("last_checkpoint_every_s", every, every is None or (isinstance(every, (int, float)) and every >= 0),
            "must be null (only when the job ends) or a number of seconds >= 0")
    train, ckpt_path = bool(cfg.get("train", True)), cfg.get("ckpt_path")
    require("train", train, train or ckpt_path is not None, "false needs ckpt_path=<a checkpoint to evaluate>")
    check_root_dir(cfg)
    return Settings(
        seed=seed, task=task, objective=objective, data=data, model=model,
        regularizer=typed("regularizer", RegularizerConfig, cfg.regularizer),
        optimizer=typed("optimizer", OptimizerConfig, cfg.optimizer),
        augment=augment, batches=batches, minibatches_per_step=per_step,
        train=train, test=bool(cfg.get("test", True)), ckpt_path=ckpt_path, tags=tuple(cfg.get("tags") or ()),
        last_checkpoint_every_s=every, checkpointing=cfg.trainer.get("enable_checkpointing") is not False,
        pack_size=size, threads=threads, flush_denormal=bool(cfg.get("flush_denormal", True)),
        tf32=bool(cfg.get("tf32", False)),
    )
