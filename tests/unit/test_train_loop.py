"""The backbone training loop on cached activations: it overfits one small batch, keeps the
frozen part exactly as ImageNet left it, lets the trained blocks' batch norm follow the new
data, and a checkpoint written for other data is never resumed. In bfloat16 it learns as well
(`auto` chooses it only where the CPU computes it natively); on two processes (gloo), the ranks
train in step and rank 0's checkpoint resumes them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from components.train import params as train_params
from components.train.distributed import fit_on_processes
from components.train.frozen import FrozenPart
from components.train.loop import CachedSplit, evaluate, fit
from components.train.model import TRAINED_BN_MOMENTUM
from components.train.params import BackboneProfile, native_bf16
from components.train.tasks import ClassifyTask

FROZEN = 14
TASK = ClassifyTask(classes=("dark", "light"))


def _profile(**changes: object) -> BackboneProfile:
    base = {"size": (48, 64), "frozen_blocks": FROZEN, "views": 1, "epochs": 25,
            "patience": 25, "batch_size": 8, "lr": 0.003, "head_lr": 0.03,
            "weight_decay": 0.0, "dropout": 0.0, "seed": 3}
    return BackboneProfile(**{**base, **changes})


def _model() -> nn.Module:
    """A fresh model whose head starts the same whatever ran before in this process."""
    torch.manual_seed(0)
    return TASK.build(0.0, FROZEN, imagenet=True)


def _split(model: nn.Module, brightness: list[int]) -> CachedSplit:
    """Plain grey images whose class is whether they are light; cached as training does."""
    pixels = np.stack([np.full((64, 48, 3), level, np.uint8) for level in brightness])
    pixels = np.clip(pixels + np.random.default_rng(0).normal(0, 8, pixels.shape), 0, 255)
    activations = FrozenPart(model, 64, 48)(pixels.astype(np.uint8))
    targets = torch.tensor([int(level > 127) for level in brightness])
    return CachedSplit(activations[None], torch.zeros(len(brightness), 4), targets)


def test_one_batch_is_overfitted_and_the_frozen_part_never_changes(tmp_path: Path) -> None:
    model = _model()
    frozen_before = {name: value.clone() for name, value in model.state_dict().items()
                     if name.startswith(("backbone._conv_stem", "backbone._bn0",
                                         "backbone._blocks.0."))}
    data = _split(model, [30, 60, 90, 110, 150, 170, 200, 230])

    result = fit(model, TASK, data, data, _profile(), tmp_path / "checkpoint.pt", "a")

    model.load_state_dict(result.best_state)
    assert result.best_score == 1.0  # every item of the batch is right
    assert (evaluate(model, data).argmax(1) == data.targets).all()
    after = model.state_dict()
    assert all(torch.equal(after[name], value) for name, value in frozen_before.items())


def test_in_bfloat16_the_batch_is_overfitted_too_and_the_weights_stay_float32(
        tmp_path: Path) -> None:
    model = _model()
    data = _split(model, [30, 60, 90, 110, 150, 170, 200, 230])

    result = fit(model, TASK, data, data, _profile(precision="bf16"),
                 tmp_path / "checkpoint.pt", "a")

    assert result.best_score == 1.0
    assert {value.dtype for value in result.best_state.values()
            if value.is_floating_point()} == {torch.float32}


def test_auto_precision_is_bfloat16_only_where_the_cpu_multiplies_it_natively(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512bw\n")
    assert not native_bf16(cpuinfo)  # AVX-512 without its BF16 extension: emulated, slower
    cpuinfo.write_text("flags\t\t: fpu sse2 avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert native_bf16(cpuinfo)
    assert not native_bf16(tmp_path / "absent")

    for native, expected in ((True, "bf16"), (False, "fp32")):
        monkeypatch.setattr(train_params, "native_bf16", lambda native=native: native)
        assert _profile(precision="auto").settled().precision == expected
        assert _profile(precision="fp32").settled().precision == "fp32"  # said: kept


def test_only_the_trained_blocks_batch_norm_follows_new_data_quickly() -> None:
    model = _model()
    frozen = {id(m) for module in model.frozen_modules() for m in module.modules()}
    norms = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]

    assert {m.momentum for m in norms if id(m) in frozen} == {0.01}  # as ImageNet trained them
    assert {m.momentum for m in norms if id(m) not in frozen} == {TRAINED_BN_MOMENTUM}


def test_a_checkpoint_of_other_data_is_not_resumed(tmp_path: Path) -> None:
    model = _model()
    data = _split(model, [40, 210, 60, 190])
    checkpoint = tmp_path / "checkpoint.pt"
    fit(model, TASK, data, data, _profile(epochs=2), checkpoint, "data version 1")

    again = fit(_model(), TASK, data, data, _profile(epochs=2),
                checkpoint, "data version 2")

    assert again.resumed_from_epoch == 0 and again.epochs_run == 2


def test_two_processes_train_in_step_and_resume_from_rank_0s_checkpoint(tmp_path: Path) -> None:
    model = _model()
    data = _split(model, [30, 60, 90, 110, 150, 170, 200, 230])
    epochs: list[dict[str, float]] = []

    fit_on_processes(model, TASK, data, data, _profile(processes=2, epochs=6),
                     tmp_path / "checkpoint.pt", "a", epochs.append)
    # (fit_on_processes raises when a rank ends with other weights than rank 0's)
    again = fit_on_processes(_model(), TASK, data, data, _profile(processes=2, epochs=6),
                             tmp_path / "checkpoint.pt", "a")  # every rank finds it done

    assert [record["epoch"] for record in epochs] == list(range(1, 7))  # reported once each
    assert epochs[-1]["train_loss"] < epochs[0]["train_loss"]
    assert again.resumed_from_epoch == 6 and again.epochs_run == 6
