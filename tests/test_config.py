"""Every option of every group composes, validates and instantiates; bad input is refused by name."""

from __future__ import annotations

import struct
import warnings
from pathlib import Path

import numpy as np

import pytest
import torch
import torch.nn.functional as F
from hydra import compose, initialize_config_dir
from hydra.errors import HydraException

from conftest import CONF_DIR, TINY, run_train
from regsweep.config import validate
from regsweep.data.sources import RegressionDataConfig
from regsweep.errors import ConfigError
from regsweep.instantiate import instantiate_trusted
from regsweep.networks import CNNConfig, MemberModel, PackedNetwork, family
from regsweep.networks.layers import PackedConv2d
from regsweep.training.optim import build_optimizer, build_schedule
from regsweep.records import RESULT_FILE, read_result
from regsweep.sweep.overrides import expand_integer_ranges

GROUPS = ["data", "model", "regularizer", "optimizer", "augment", "trainer", "callbacks", "logger"]
IMAGE_DATA = {"mnist", "fashion_mnist"}  # need files; composed and validated, not loaded here


def options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml"))


def one_member_net(settings, shape: tuple[int, ...], outputs: int) -> PackedNetwork:
    member = MemberModel(settings.model.dropout, torch.Generator().manual_seed(0), torch.Generator())
    return family(settings.model, shape, outputs).pack([member])


def user_data(option: str, data_dir: Path) -> list[str]:
    """What data=table, custom and idx need: a table, a loader and IDX files of the user's own (tiny ones)."""
    data_dir.mkdir(exist_ok=True)
    if option == "table":
        np.savez(data_dir / "tiny.npz", x=np.zeros((20, 4)), y=np.arange(20) % 2)
        return [f"data.path={data_dir / 'tiny.npz'}"]
    if option == "custom":
        return ["data.source._target_=sklearn.datasets.load_digits", "+data.source.return_X_y=true"]
    if option == "idx":
        for name, array in (("train-images", np.zeros((20, 8, 8), np.uint8)), ("train-labels", np.arange(20) % 2)):
            array = array.astype(np.uint8)
            header = bytes([0, 0, 0x08, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
            (data_dir / name).write_bytes(header + array.tobytes())
        return [f"data.data_dir={data_dir}"]
    return []


@pytest.mark.parametrize("group,option", [(g, o) for g in GROUPS for o in options(g)])
def test_every_option_composes_validates_and_instantiates(make_cfg, tmp_path: Path, group: str, option: str) -> None:
    data = "regression" if group == "model" and option == "mlp" else "digits"
    own = user_data(option, tmp_path / "own") if group == "data" else [f"data={data}"]
    cfg = make_cfg(f"{group}={option}", *own)
    assert (cfg[group] is not None) or option == "none"
    if (group, option) == ("trainer", "gpu") and not torch.cuda.is_available():
        pytest.skip("trainer=gpu composes; validating and instantiating it needs a GPU")
    settings = validate(cfg)
    if group in ("trainer", "callbacks", "logger"):
        nodes = [cfg.trainer] if group == "trainer" else [n for n in (cfg[group] or {}).values() if "_target_" in n]
        objects = [instantiate_trusted(node) for node in nodes]
        assert all(obj is not None for obj in objects) and bool(objects) == (option != "none")
    shape, outputs = ((2,), 1) if isinstance(settings.data, RegressionDataConfig) else ((1, 8, 8), 10)
    net = one_member_net(settings, shape, outputs)
    assert net(torch.zeros(1, 3, *shape)).shape == (1, 3, outputs)  # [members, batch, outputs]
    optimizer = build_optimizer(settings.optimizer, [{"params": list(net.parameters())}])
    assert optimizer.param_groups[0]["lr"] == settings.optimizer.lr
    build_schedule(settings.optimizer, optimizer, max_epochs=3)


def test_cnn_uses_configured_kernels(make_cfg) -> None:
    settings = validate(make_cfg("model=cnn", "model.kernel_size=10", "model.channels=[4,8]"))
    assert isinstance(settings.model, CNNConfig)
    net = one_member_net(settings, (1, 28, 28), 10)
    assert [tuple(weight.shape) for weight in net.member_weights(0).values()][:2] == [(4, 1, 10, 10), (8, 4, 10, 10)]



@pytest.mark.parametrize("kernel", [3, 10])
def test_packed_conv_pads_like_torch_same_without_warning(kernel: int) -> None:
    conv = PackedConv2d(members=2, in_channels=3, out_channels=4, kernel_size=kernel)
    torch.nn.init.normal_(conv.weight)
    torch.nn.init.normal_(conv.bias)
    maps = torch.randn(5, 2 * 3, 28, 28, generator=torch.Generator().manual_seed(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # first: torch warns once per process, on the first even-kernel "same"
        got = conv(maps)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        expected = F.conv2d(maps, conv.weight.flatten(0, 1), conv.bias.flatten(), padding="same", groups=2)
    assert got.shape == (5, 2 * 4, 28, 28)
    torch.testing.assert_close(got, expected, rtol=0, atol=0)

BAD_VALUES = [
    ("regularizer.l1=-0.1", "regularizer.l1", ">= 0"),
    ("regularizer.l2=-1e-3", "regularizer.l2", ">= 0"),
    ("regularizer=l2 regularizer.l2=inf", "regularizer.l2", "finite"),
    ("optimizer.lr=-1", "optimizer.lr", "> 0"),
    ("optimizer.lr=0", "optimizer.lr", "> 0"),
    ("optimizer.lr=inf", "optimizer.lr", "finite"),
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
    ("data.split_seed=-1", "data.split_seed", ">= 0"),
    ("regularizer=l1l2 regularizer.combined_scale=0", "regularizer.combined_scale", "> 0"),
    ("answer_on=[final/val/los]", "answer_on", "final/val/loss"),  # a typo: the list of what exists
    ("answer_on=[test/acc] data=regression", "answer_on", "of a regression job"),
    ("answer_on=[final/weights/l1]", "answer_on", "with a direction"),
    ("augment.noise_p=1.5", "augment.noise_p", "[0, 1]"),
    ("optimizer=sgd optimizer.momentum=1.2", "optimizer.momentum", "[0, 1)"),
    ("minibatches_per_step=0", "minibatches_per_step", ">= 1"),
    ("pack.size=0", "pack.size", "auto, off or an integer"),
    ("threads=0", "threads", "auto or an integer"),
    ("optimizer.clip_grad_norm=-1", "optimizer.clip_grad_norm", ">= 0"),
    ("trainer.gradient_clip_val=1.0", "trainer.gradient_clip_val", "optimizer.clip_grad_norm"),
    ("trainer.accumulate_grad_batches=4", "trainer.accumulate_grad_batches", "data.batch_size"),
    ("trainer.max_epochs=0", "trainer.max_epochs", ">= 1"),
    ("trainer.max_epochs=-2", "trainer.max_epochs", ">= 1"),
    ("trainer.limit_train_batches=0", "trainer.limit_train_batches", "integer >= 1"),
    ("trainer.devices=2", "trainer.devices", "one device"),
    ("optimized_metric=test/acc", "optimized_metric", "never used for selection"),
    ("optimized_metric=val/acc data=regression", "optimized_metric", "per-epoch metric of a regression job"),
    ("callbacks.early_stopping.monitor=val/accuracy", "callbacks.early_stopping.monitor", "per-epoch metric"),
    ("callbacks.model_checkpoint.monitor=val/acc callbacks.model_checkpoint.mode=min",
     "callbacks.model_checkpoint.mode", "use mode=max"),
    ("+model.width=3", "model.width", "Key 'width' not in 'MLPConfig'"),
    ("+trainer.max_epoch=3", "trainer.max_epoch", "did you mean trainer.max_epochs?"),  # a misspelled argument
    ("+seeed=3", "seeed", "did you mean seed?"),
    ("+qqqq=3", "qqqq", "is not a key of the config (run keys: answer_on, augment, callbacks,"),  # nothing close: the list
    ("+trainer.qqqq=3", "trainer.qqqq", "is not a Lightning Trainer argument"),
    ("+data.download=false", "data.download", "Key 'download' not in"),  # a knob nothing reads does not exist
]


@pytest.mark.parametrize("override,key,allowed", BAD_VALUES)
def test_bad_values_name_the_key_and_what_is_allowed(make_cfg, override: str, key: str, allowed: str) -> None:
    with pytest.raises(ConfigError) as error:
        validate(make_cfg(*override.split()))
    assert error.value.key == key
    assert allowed in str(error.value)
    assert "\n" not in str(error.value)


def test_jobs_with_the_same_values_get_equal_but_separate_settings_and_a_bad_value_fails_every_time(make_cfg) -> None:
    """A sweep's jobs share their groups' values: each is typed once, and no job can change another's settings."""
    first, second = validate(make_cfg("regularizer=l1")), validate(make_cfg("regularizer=l1"))
    assert first == second and first.regularizer is not second.regularizer
    first.regularizer.strength.l1 = 1.0
    assert second.regularizer.strength.l1 != 1.0 and validate(make_cfg("regularizer=l1")) == second
    for _ in range(2):
        with pytest.raises(ConfigError, match="regularizer.l1"):
            validate(make_cfg("regularizer=l1", "regularizer.l1=-1"))


@pytest.mark.parametrize("override,key", [
    ("trainer.max_epoch=3", "Could not override 'trainer.max_epoch'"),  # a misspelled Trainer argument
    ("model.dropout=abc", "Error merging override model.dropout=abc"),
    ("model.name", "Error parsing override"),
])
def test_unknown_keys_and_wrong_types_fail_when_the_config_is_composed(make_cfg, override: str, key: str) -> None:
    with pytest.raises(HydraException, match=key):
        make_cfg(override)


def test_every_trainer_argument_can_be_set_without_a_plus(make_cfg) -> None:
    cfg = make_cfg("trainer.limit_train_batches=5", "trainer.precision=bf16-mixed", "trainer.detect_anomaly=true")
    assert (cfg.trainer.limit_train_batches, cfg.trainer.precision) == (5, "bf16-mixed")
    assert validate(cfg).batches.train == 5  # counted in minibatches by the harness


def test_a_gpu_trainer_is_refused_up_front_without_a_gpu(make_cfg) -> None:
    if torch.cuda.is_available():
        pytest.skip("a GPU is visible")
    with pytest.raises(ConfigError, match="no GPU is visible"):
        validate(make_cfg("trainer=gpu"))


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
    listed = result.stderr.split("Available options in 'regularizer':")[1].split("Config search path")[0].split()
    assert listed == options("regularizer")  # the user's options only, never the schema they start from
    assert not (tmp_path / "run" / RESULT_FILE).exists()


@pytest.mark.slow
def test_cli_help_shows_examples_and_every_group_with_its_options(tmp_path: Path) -> None:
    result = run_train("--help", cwd=tmp_path)
    assert result.returncode == 0
    assert result.stdout.startswith("regsweep: ") and "python train.py regularizer=l1l2 -m seed=0-9" in result.stdout
    for group in ("data", "model", "regularizer", "experiment", "hparams_search"):
        assert f"\n{group}: {', '.join(options(group))}\n" in result.stdout
    assert "schema/* groups are the typed schemas" in result.stdout
    assert list(tmp_path.iterdir()) == []  # help runs nothing


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
