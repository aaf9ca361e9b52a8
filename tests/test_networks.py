"""Networks behind one interface: the built-in packed layers, torch.func over any module, and a user's own class.

Tolerance: a vmapped pack and a member alone run the same arithmetic through other kernels (batched
products, another reduction order), so float32 values agree to rounding; comparisons allow 1e-5
relative and 1e-6 absolute (the packs of tests/test_packs.py allow as much).
"""

from __future__ import annotations

import math
import textwrap
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from conftest import TINY, run_train
from regsweep.config import validate
from regsweep.data.sources import load_splits
from regsweep.job import run
from regsweep.networks import MemberModel, MLPConfig, family
from regsweep.networks.vectorized import VmapNet
from regsweep.records import EPOCHS_FILE, MODEL_FILE, read_epochs_csv, read_result
from regsweep.seeding import SeedStreams

RTOL, ATOL = 1e-5, 1e-6
SMALL = [setting for setting in TINY if not setting.startswith("model.")]  # a user's model has its own keys
MYNETS = textwrap.dedent('''
    import torch
    from torch import nn

    class Net(nn.Module):
        """A residual MLP: the data's sizes come in by parameter name."""

        def __init__(self, in_features: int, num_outputs: int, hidden: int = 32, dropout: float = 0.0):
            super().__init__()
            self.inp = nn.Linear(in_features, hidden)
            self.block = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout))
            self.norm = nn.LayerNorm(hidden)
            self.out = nn.Linear(hidden, num_outputs)

        def forward(self, x):
            h = torch.relu(self.inp(x.flatten(1)))
            return self.out(self.norm(h + self.block(h)))

    class Conv(nn.Module):
        def __init__(self, input_shape, num_outputs):
            super().__init__()
            self.conv = nn.Conv2d(input_shape[0], 4, 3, padding=1)
            self.bn = nn.BatchNorm2d(4)
            self.head = nn.Linear(4 * input_shape[1] * input_shape[2], num_outputs)

        def forward(self, x):
            return self.head(torch.relu(self.bn(self.conv(x))).flatten(1))

    class Branchy(nn.Module):
        def __init__(self, in_features, num_outputs):
            super().__init__()
            self.a = nn.Linear(in_features, num_outputs)

        def forward(self, x):
            x = x.flatten(1)
            return self.a(x) if x.sum() > 0 else -self.a(x)

    class Five(nn.Module):
        def __init__(self, in_features):
            super().__init__()
            self.a = nn.Linear(in_features, 5)

        def forward(self, x):
            return self.a(x.flatten(1))

    class Viewer(nn.Module):
        """Needs its matrix contiguous: weight.view(...)."""

        def __init__(self, in_features, num_outputs):
            super().__init__()
            self.weight = nn.Parameter(torch.randn(num_outputs, in_features) * 0.1)

        def forward(self, x):
            return x.flatten(1) @ self.weight.view(-1).view(self.weight.shape[0], -1).T

    class Lazy(nn.Module):
        """Takes its input size from its first call."""

        def __init__(self, num_outputs):
            super().__init__()
            self.a = nn.LazyLinear(8)
            self.b = nn.Linear(8, num_outputs)

        def forward(self, x):
            return self.b(torch.relu(self.a(x.flatten(1))))

    class RGB(nn.Module):
        """Expects three channels: fails on grey digits."""

        def __init__(self, num_outputs):
            super().__init__()
            self.conv = nn.Conv2d(3, 4, 3)
            self.head = nn.LazyLinear(num_outputs)

        def forward(self, x):
            return self.head(self.conv(x).flatten(1))

    class NoWeights(nn.Module):
        def __init__(self, num_outputs):
            super().__init__()
            self.bias = nn.Parameter(torch.zeros(num_outputs))

        def forward(self, x):
            return self.bias.expand(len(x), -1)
''')


@pytest.fixture
def user_code(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``mynets.py`` and a config dir with ``model=<class>`` options for it, in the dir a command runs from."""
    (tmp_path / "mynets.py").write_text(MYNETS)
    models = tmp_path / "myconf" / "model"
    models.mkdir(parents=True)
    for name in ("Net", "Conv", "Branchy", "Five", "NoWeights", "RGB"):
        (models / f"{name.lower()}.yaml").write_text(f"_target_: mynets.{name}\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    return tmp_path


def members(*seeds: int) -> list[MemberModel]:
    return [MemberModel(0.0, SeedStreams(s).generator("init"), SeedStreams(s).generator("dropout")) for s in seeds]


def assert_same_rows(got: list[dict[str, float]], want: list[dict[str, float]]) -> None:
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.keys() == b.keys()
        assert [a[k] for k in a] == pytest.approx([b[k] for k in a], rel=RTOL, abs=ATOL)


@pytest.mark.parametrize("norm", ["none", "batch"])
def test_the_mlp_trains_to_the_same_numbers_through_its_packed_layers_and_through_torch_func(
        make_cfg, tmp_path: Path, norm: str) -> None:
    """One network, two engines: the packed layers (the default for built-ins) and vmap over its nn.Sequential."""
    for engine in ("layers", "vmap"):
        run(make_cfg(*TINY, "trainer.max_epochs=3", "callbacks=no_stop", f"model.norm={norm}", "regularizer=l1l2",
                     f"model.engine={engine}", f"paths.output_dir={tmp_path / engine}"))
    layers, vmapped = read_result(tmp_path / "layers"), read_result(tmp_path / "vmap")
    assert_same_rows(read_epochs_csv(tmp_path / "vmap" / EPOCHS_FILE), read_epochs_csv(tmp_path / "layers" / EPOCHS_FILE))
    assert vmapped.metrics["test"] == pytest.approx(layers.metrics["test"], rel=RTOL, abs=ATOL)
    assert vmapped.model == layers.model  # the same parameters and penalized weights


def test_a_member_of_a_pack_is_its_own_network_in_and_out(user_code: Path) -> None:
    """Built-in and user networks, packed layers and vmap alike: a member's state is its ordinary module's
    state_dict, both ways, however the pack stores it (a vmapped pack keeps its matrices transposed)."""
    from dataclasses import replace

    from regsweep.networks import user_model

    settings = validate_default()
    vmapped = replace(settings.model, engine="vmap")
    user = user_model({"_target_": "mynets.Net"})
    for fam in (family(settings.model, (1, 8, 8), 10), family(vmapped, (1, 8, 8), 10), family(user, (1, 8, 8), 10)):
        pack = fam.pack(members(0, 1, 2))
        alone = fam.single(members(1)[0])
        assert pack.member_state(1).keys() == alone.state_dict().keys()
        assert all(torch.equal(pack.member_state(1)[k], v) for k, v in alone.state_dict().items())  # same init
        x = torch.randn(5, 1, 8, 8, generator=torch.Generator().manual_seed(0))
        assert torch.allclose(pack.eval()(x)[1], alone.eval()(x), rtol=RTOL, atol=ATOL)
        states = [fam.single(m).state_dict() for m in members(7, 8, 9)]
        pack.load_members(states)
        assert all(torch.equal(pack.member_state(i)[k], states[i][k]) for i in range(3) for k in states[i])


def validate_default():
    from hydra import compose, initialize_config_dir
    from conftest import CONF_DIR

    with initialize_config_dir(config_dir=str(CONF_DIR)):
        return validate(compose("train", overrides=[*TINY, "model.norm=batch", "model.dropout=0.2"]))


def test_a_users_network_gets_the_datas_shapes_and_each_member_its_own_initial_weights(user_code: Path) -> None:
    from regsweep.networks import user_model

    fam = family(user_model({"_target_": "mynets.Net", "hidden": 16}), (1, 8, 8), 10)
    one, again, other = (fam.single(m) for m in members(3, 3, 4))
    assert one.inp.in_features == 64 and one.out.out_features == 10  # in_features, num_outputs from the data
    assert torch.equal(one.inp.weight, again.inp.weight) and not torch.equal(one.inp.weight, other.inp.weight)
    pack = fam.pack(members(4, 3))
    assert torch.equal(pack.member_state(1)["inp.weight"], one.inp.weight)  # the seed's weights, in any place
    conv = family(user_model({"_target_": "mynets.Conv"}), (1, 8, 8), 10).single(members(0)[0])
    assert conv.head.in_features == 4 * 8 * 8  # input_shape: [C, H, W]


def test_the_penalty_covers_weights_of_two_or_more_dimensions_and_a_user_can_narrow_it(user_code: Path) -> None:
    from regsweep.networks import user_model

    net = family(user_model({"_target_": "mynets.Net"}), (4,), 3).pack(members(0, 1))
    assert sorted(net.penalized()) == ["block.0.weight", "inp.weight", "out.weight"]  # no bias, no LayerNorm
    narrowed = family(user_model({"_target_": "mynets.Net", "penalized": ["block.*"]}), (4,), 3).pack(members(0))
    assert sorted(narrowed.penalized()) == ["block.0.weight"]
    assert all(w.shape[0] == 2 for w in net.penalized().values())  # [members, out, in]


@pytest.mark.slow
def test_a_users_network_packs_to_the_numbers_of_its_jobs_alone_and_gives_its_weights_back(user_code: Path) -> None:
    args = ["-cd", "myconf", "model=net", "-m", "seed=0-2", "regularizer=l2", *SMALL, "trainer.max_epochs=3",
            "callbacks=no_stop", "threads=1"]
    packed = run_train(*args, f"hydra.sweep.dir={user_code / 'packed'}", cwd=user_code)
    assert packed.returncode == 0, packed.stderr[-3000:]
    assert "pack of 3 jobs: digits, mynets.Net" in packed.stdout + packed.stderr
    alone = run_train(*args, "pack.size=off", f"hydra.sweep.dir={user_code / 'alone'}", cwd=user_code)
    assert alone.returncode == 0, alone.stderr[-3000:]
    packed_dirs, alone_dirs = sorted((user_code / "packed").glob("[0-9]*")), sorted((user_code / "alone").glob("[0-9]*"))
    assert len(packed_dirs) == len(alone_dirs) == 3
    for a, b in zip(packed_dirs, alone_dirs):
        assert_same_rows(read_epochs_csv(a / EPOCHS_FILE), read_epochs_csv(b / EPOCHS_FILE))
        assert read_result(a).metrics["test"] == pytest.approx(read_result(b).metrics["test"], rel=RTOL, abs=ATOL)

    import mynets  # the user's class takes model.pt as it is, and gives the job's test accuracy back
    from regsweep.data.sources import DigitsDataConfig

    record = read_result(packed_dirs[1])
    net = mynets.Net(in_features=64, num_outputs=10)
    net.load_state_dict(torch.load(packed_dirs[1] / MODEL_FILE))
    splits = load_splits(DigitsDataConfig(name="digits", batch_size=128, normalize="minmax", split_seed=0,
                                          val_size=0.2, test_size=0.2))
    accuracy = (net.eval()(splits.x_test).argmax(1) == splits.y_test).float().mean().item()
    assert accuracy == pytest.approx(record.metrics["test"]["test/acc"], abs=1e-6)


def test_a_built_in_jobs_model_pt_loads_into_its_own_sequential(make_cfg, tmp_path: Path) -> None:
    run(make_cfg(*TINY, "trainer.max_epochs=2", "model.norm=batch", "model.dropout=0.1"))
    settings = validate(make_cfg(*TINY, "model.norm=batch", "model.dropout=0.1"))
    splits = load_splits(settings.data)
    net = family(settings.model, splits.input_shape, splits.output_size).single(MemberModel(0.1, torch.Generator(), torch.Generator()))
    assert isinstance(net, nn.Sequential)
    net.load_state_dict(torch.load(tmp_path / MODEL_FILE))
    accuracy = (net.eval()(splits.x_test).argmax(1) == splits.y_test).float().mean().item()
    assert accuracy == pytest.approx(read_result(tmp_path).metrics["test"]["test/acc"], abs=1e-6)


def test_batch_norm_buffers_are_each_members_own_under_vmap(user_code: Path) -> None:
    from regsweep.networks import user_model

    fam = family(user_model({"_target_": "mynets.Conv"}), (1, 6, 6), 3)
    pack = fam.pack(members(0, 1)).train()
    x = torch.randn(2, 4, 1, 6, 6, generator=torch.Generator().manual_seed(0))
    pack(x)
    alone = fam.single(members(1)[0]).train()
    alone(x[1])
    for key in ("bn.running_mean", "bn.running_var", "bn.num_batches_tracked"):
        assert torch.allclose(pack.member_state(1)[key].float(), alone.state_dict()[key].float(), rtol=RTOL, atol=ATOL)


@pytest.mark.slow
def test_a_network_vmap_cannot_batch_trains_one_job_at_a_time_saying_why(user_code: Path) -> None:
    result = run_train("-cd", "myconf", "model=branchy", "-m", "seed=0,1", *SMALL, "trainer.max_epochs=1",
                       f"hydra.sweep.dir={user_code / 'sweep'}", cwd=user_code)
    assert result.returncode == 0, result.stderr[-3000:]
    log = result.stdout + result.stderr
    assert "torch.func.vmap cannot batch mynets.Branchy (RuntimeError: vmap: It looks like you're attempting to use " \
           "a Tensor in some data-dependent control flow" in log and "its jobs train one at a time" in log
    assert all(read_result(d).status == "ok" for d in (user_code / "sweep").glob("[0-9]*"))


@pytest.mark.slow
@pytest.mark.parametrize("arguments,message", [
    (["model=five"], "model='mynets.Five': returns (2, 5) for a batch of 2 samples of shape [1, 8, 8]; the data needs "
                     "[2, 10] (10 classes)"),
    (["model=noweights", "regularizer=l1"], "model.penalized=['*']: matches no weight tensor of 2 or more dimensions "
                                            "of mynets.NoWeights: the penalty would cover nothing"),
    (["model=net", "+model.width=3"], "Net refuses these arguments (got an unexpected keyword argument 'width')"),
    (["model=rgb"], "model='mynets.RGB': fails on a batch of 2 samples of shape [1, 8, 8]: RuntimeError: Given "
                    "groups=1, weight of size [4, 3, 3, 3], expected input[2, 1, 8, 8] to have 3 channels"),
    (["model=net", "model._target_=mynets.Gone"], "model._target_='mynets.Gone': does not import"),
    (["model=net", "model._target_=nowhere.Net"], "model._target_='nowhere.Net': does not import "
                                                  "(ModuleNotFoundError: No module named 'nowhere'; searched "),
])
def test_a_users_network_that_cannot_work_is_refused_before_any_job_in_one_line(
        user_code: Path, arguments: list[str], message: str) -> None:
    result = run_train("-cd", "myconf", *arguments, "-m", "seed=0,1", *SMALL,
                       f"hydra.sweep.dir={user_code / 'sweep'}", cwd=user_code)
    assert result.returncode != 0 and message in result.stderr, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and not (user_code / "sweep").exists()


def test_a_model_config_without_a_name_or_target_says_how_to_bring_one(make_cfg) -> None:
    from regsweep.errors import ConfigError

    with pytest.raises(ConfigError, match="must be one of mlp, cnn, or the model config names a torch.nn.Module "
                                          "class of your own with _target_"):
        validate(make_cfg(*TINY, "model.name=resnet"))


def test_vmapped_dropout_draws_each_members_own_masks() -> None:
    modules = [nn.Sequential(nn.Dropout(0.5)) for _ in range(3)]
    net = VmapNet(modules, 1, ["*"]).train()
    torch.manual_seed(0)
    out = net(torch.ones(3, 4, 16))
    assert not torch.equal(out[0], out[1]) and set(np.unique(out.numpy())) <= {0.0, 2.0}
    assert math.isclose(float((out == 0).float().mean()), 0.5, abs_tol=0.15)


def test_a_network_that_needs_its_matrices_contiguous_packs_with_them_as_it_made_them(user_code: Path) -> None:
    from regsweep.networks import user_model

    fam = family(user_model({"_target_": "mynets.Viewer"}), (4,), 3)
    assert fam.unvectorizable() is None and fam.fast_layout is False  # the fast layout refused, the plain one works
    pack = fam.pack(members(0, 1))
    assert pack(torch.randn(2, 5, 4)).shape == (2, 5, 3)
    assert torch.equal(pack.member_state(1)["weight"], fam.single(members(1)[0]).weight.detach())


def test_glorot_uniform_initializes_as_keras_does_and_torch_stays_the_default() -> None:
    """model.init=glorot_uniform: weights U(+-sqrt(6 / (fan_in + fan_out))), biases 0 (Keras' Dense and Conv2D)."""
    def first_layers(init: str) -> dict[str, torch.Tensor]:
        cfg = MLPConfig(name="mlp", hidden_sizes=[300], activation="relu", dropout=0.0, norm="none", init=init)
        return family(cfg, (100,), 10).single(members(0)[0]).state_dict()

    glorot, default = first_layers("glorot_uniform"), first_layers("torch")
    bound = math.sqrt(6 / (100 + 300))
    assert glorot["1.weight"].abs().max() <= bound and glorot["1.weight"].abs().max() > 0.95 * bound
    assert torch.count_nonzero(glorot["1.bias"]) == 0 and torch.count_nonzero(glorot["3.bias"]) == 0
    assert default["1.weight"].abs().max() <= 0.1 and torch.count_nonzero(default["1.bias"]) == 300  # 1/sqrt(100)


@pytest.mark.slow
def test_the_worked_example_runs_as_the_readme_says(tmp_path: Path) -> None:
    """examples/tabular: a residual MLP of the user's on wine.csv, the L1-vs-L2 study (shortened: 2 seeds, 3 epochs)."""
    from conftest import ROOT

    sweep = tmp_path / "sweep"
    result = run_train("-cd", str(ROOT / "examples" / "tabular"), "-m", "experiment=wine_l1_vs_l2", "seed=0,1",
                       "trainer.max_epochs=3", "trainer.enable_progress_bar=false", f"hydra.sweep.dir={sweep}",
                       cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "8 jobs in 4 groups: 8 ok" in result.stdout and "pack of 8 jobs: wine, examples.tabular.resmlp.ResidualMLP" in \
        result.stdout + result.stderr
    from examples.tabular.resmlp import ResidualMLP

    job = next(sweep.glob("*regularizer=l1l2,seed=1*"))
    net = ResidualMLP(in_features=13, num_outputs=3)
    net.load_state_dict(torch.load(job / MODEL_FILE))
    record = read_result(job)
    assert record.data["label"] == "wine" and record.data["classes"] == ["class_0", "class_1", "class_2"]


def test_a_network_with_lazy_layers_is_built_by_a_first_call_from_each_members_own_stream(user_code: Path) -> None:
    from regsweep.networks import user_model

    fam = family(user_model({"_target_": "mynets.Lazy"}), (1, 8, 8), 10)
    pack = fam.pack(members(0, 1))
    assert pack.member_state(0)["a.weight"].shape == (8, 64)  # materialized: stacked like any weight
    assert torch.equal(pack.member_state(1)["a.weight"], fam.single(members(1)[0]).a.weight.detach())
    assert pack(torch.randn(2, 3, 1, 8, 8)).shape == (2, 3, 10)
