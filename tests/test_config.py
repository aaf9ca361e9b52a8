"""Every option of every group composes, validates and instantiates; bad input is refused by name."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from conftest import CONF_DIR, TINY, run_train
from regsweep.config import CNNConfig, RegressionDataConfig, validate
from regsweep.errors import ConfigError
from regsweep.models import build_model
from regsweep.module import build_optimizer, build_schedule
from regsweep.records import RESULT_FILE, read_result
from regsweep.sweeps import expand_integer_ranges
from regsweep.train import TRUSTED_TARGETS, _instantiate_all

GROUPS = ["data", "model", "regularizer", "optimizer", "augment", "trainer", "callbacks", "logger"]
IMAGE_DATA = {"mnist", "fashion_mnist"}  # need files; composed and validated, not loaded here


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_validates_and_instantiates(make_cfg, group: str, option: str) -> None:
    data = "regression" if group == "model" and option == "mlp" else "digits"
    cfg = make_cfg(f"{group}={option}", *([] if group == "data" else [f"data={data}"]))
    settings = validate(cfg)
    assert cfg[group] is not None
    if (group, option) == ("trainer", "gpu") and not torch.cuda.is_available():
        pytest.skip("trainer=gpu composes and validates; instantiating it needs a GPU")
    if group in ("trainer", "callbacks", "logger"):
        objects = [instantiate(cfg.trainer, _execution_whitelist_=TRUSTED_TARGETS)] if group == "trainer" \
            else _instantiate_all(cfg[group])
        assert objects and all(obj is not None for obj in objects)
    shape, outputs = ((2,), 1) if isinstance(settings.data, RegressionDataConfig) else ((1, 8, 8), 10)
    net = build_model(settings.model, shape, outputs)
    assert net(torch.zeros(3, *shape)).shape == (3, outputs)
    optimizer = build_optimizer(settings.optimizer, net.parameters())
    assert optimizer.param_groups[0]["lr"] == settings.optimizer.lr
    build_schedule(settings.optimizer, optimizer, max_epochs=3)


def test_cnn_uses_configured_kernels(make_cfg) -> None:
    settings = validate(make_cfg("model=cnn", "model.kernel_size=10", "model.channels=[4,8]"))
    assert isinstance(settings.model, CNNConfig)
    convs = [m for m in build_model(settings.model, (1, 28, 28), 10).modules() if isinstance(m, torch.nn.Conv2d)]
    assert [tuple(c.weight.shape) for c in convs] == [(4, 1, 10, 10), (8, 4, 10, 10)]


BAD_VALUES = [
    ("regularizer.l1=-0.1", "regularizer.l1", ">= 0"),
    ("regularizer.l2=-1e-3", "regularizer.l2", ">= 0"),
    ("optimizer.lr=-1", "optimizer.lr", "> 0"),
    ("optimizer.lr=0", "optimizer.lr", "> 0"),
    ("model.dropout=1.0", "model.dropout", "[0, 1)"),
    ("model.dropout=-0.2", "model.dropout", "[0, 1)"),
    ("model.hidden_sizes=[]", "model.hidden_sizes", "non-empty"),
    ("model.hidden_sizes=[64,0]", "model.hidden_sizes", "positive"),
    ("model.activation=swish", "model.activation", "relu"),
    ("model.norm=group", "model.norm", "batch"),
    ("seed=abc", "seed", "integer"),
    ("seed=-3", "seed", "non-negative"),
    ("seed=1.5", "seed", "integer"),
    ("data.batch_size=0", "data.batch_size", "> 0"),
    ("data.normalize=zscore", "data.normalize", "standardize"),
    ("+model.width=3", "model.width", "Key 'width' not in"),
    ("augment.noise_p=1.5", "augment.noise_p", "[0, 1]"),
    ("optimizer=sgd optimizer.momentum=1.2", "optimizer.momentum", "[0, 1)"),
    ("data.batches_per_step=0", "data.batches_per_step", ">= 1"),
    ("optimizer.clip_grad_norm=-1", "optimizer.clip_grad_norm", ">= 0"),
    ("+trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val", "optimizer.clip_grad_norm"),
    ("+trainer.accumulate_grad_batches=4", "trainer.accumulate_grad_batches", "data.batch_size"),
]


@pytest.mark.parametrize("override,key,allowed", BAD_VALUES)
def test_bad_values_name_the_key_and_what_is_allowed(make_cfg, override: str, key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(make_cfg(*override.split()))
    assert error.value.key == key
    assert allowed in str(error.value)
    assert "\n" not in str(error.value)


def test_regression_with_cnn_is_refused(make_cfg) -> None:
    with pytest.raises(ConfigError, match="image dataset"):
        validate(make_cfg("data=regression", "model=cnn"))


@pytest.mark.slow
def test_cli_bad_value_exits_nonzero_with_one_line_and_no_success_record(tmp_path: Path) -> None:
    result = run_train(*TINY, "regularizer=l1", "regularizer.l1=-0.5", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode != 0
    message = [line for line in result.stderr.splitlines() if "Invalid config" in line]
    assert message == ["Invalid config: regularizer.l1=-0.5: must be >= 0"]
    assert "Traceback" not in result.stderr
    record = read_result(tmp_path / "run")
    assert record.status == "failed" and "regularizer.l1" in record.error
    assert not (tmp_path / "run" / "metrics.csv").exists()


@pytest.mark.slow
def test_cli_unknown_option_lists_the_available_ones(tmp_path: Path) -> None:
    result = run_train("regularizer=l3", f"hydra.run.dir={tmp_path}/run", cwd=tmp_path)
    assert result.returncode != 0
    assert "Could not find 'regularizer/l3'" in result.stderr
    for option in ("l1", "l1l2", "l2", "none"):
        assert f"\t{option}" in result.stderr
    assert not (tmp_path / "run" / RESULT_FILE).exists()


@pytest.mark.parametrize("name", options("experiment"))
def test_every_experiment_composes_validates_and_sweeps_seeds(name: str, tmp_path: Path) -> None:
    with initialize_config_dir(config_dir=str(CONF_DIR)):
        cfg = compose("train", overrides=[f"experiment={name}", f"paths.output_dir={tmp_path}"],
                      return_hydra_config=True)
    validate(cfg)
    params = dict(cfg.hydra.sweeper.params)
    assert len(params) >= 2 and "seed" in params  # a study: at least one factor, over several seeds
    assert expand_integer_ranges([f"seed={params['seed']}"])[0].startswith("seed=range(0,")


def test_a_strength_for_a_term_the_regularizer_does_not_use_is_refused(make_cfg) -> None:
    with pytest.raises(ConfigError, match="use regularizer=l1l2 to combine"):
        validate(make_cfg("regularizer=l2", "regularizer.l1=1e-4"))
    assert validate(make_cfg("regularizer=l1l2", "regularizer.l1=1e-4")).regularizer.l1 == 1e-4
