"""Data-parallel training on several processes, as DistributedDataParallel does it: every rank
holds the whole model, takes its share of each batch, and the ranks average their gradients
(gloo: CPU; the same collectives run on NCCL between GPUs) before each identical optimizer step.

    result = fit_on_processes(model, task, train, val, profile, checkpoint, key, on_epoch)

This process is rank 0: it evaluates, decides when to stop, checkpoints and reports, exactly as
the one-process loop (loop.py) does. Ranks 1.. are spawned processes that rebuild the model,
read the cached activations from shared memory (no copy: at bench size they are gigabytes) and
follow. Batch-norm statistics are averaged after every step, so all ranks keep identical
weights; each rank's final weights are compared with rank 0's, and a rank that drifted fails
the training instead of going unnoticed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from components.train.model import TaskModel
from components.train.params import BackboneProfile

if TYPE_CHECKING:  # the loop imports this module
    from components.train.loop import CachedSplit, FitResult
    from components.train.tasks import BackboneTask

_TIMEOUT_S = 600


@dataclass(frozen=True)
class Share:
    """One rank of `world` data-parallel processes, in a process group that is up."""

    rank: int
    world: int

    @property
    def leader(self) -> bool:
        return self.rank == 0

    def of(self, batch: torch.Tensor) -> torch.Tensor:
        """This rank's items of a batch (every world-th one, starting at its rank)."""
        return batch[self.rank::self.world]

    def sum(self, value: float) -> float:
        """`value` summed over the ranks."""
        total = torch.tensor([value], dtype=torch.float64)
        dist.all_reduce(total)
        return float(total.item())

    def agree(self, flag: bool) -> bool:
        """Rank 0's `flag`, on every rank (whether to train another epoch)."""
        decided = torch.tensor([int(flag)])
        dist.broadcast(decided, src=0)
        return bool(decided.item())

    def average_gradients(self, model: TaskModel) -> None:
        """Replace each trained parameter's gradient by its mean over the ranks (a rank whose
        share of the batch was empty counts with zeros), in one all-reduce."""
        trained = [p for p in model.parameters() if p.requires_grad]
        flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten()
                          for p in trained])
        dist.all_reduce(flat)
        flat /= self.world
        for parameter, chunk in zip(trained, flat.split([p.numel() for p in trained]),
                                    strict=True):
            parameter.grad = chunk.view_as(parameter).clone()

    def average_buffers(self, model: TaskModel) -> None:
        """Batch-norm running statistics averaged over the ranks (each saw its own share)."""
        buffers = [b for b in model.buffers() if b.is_floating_point()]
        flat = torch.cat([b.flatten() for b in buffers])
        dist.all_reduce(flat)
        flat /= self.world
        for buffer, chunk in zip(buffers, flat.split([b.numel() for b in buffers]), strict=True):
            buffer.copy_(chunk.view_as(buffer))

    def start_alike(self, model: TaskModel) -> None:
        """Every rank starts from rank 0's weights and statistics."""
        for tensor in [*model.parameters(), *model.buffers()]:
            dist.broadcast(tensor.data, src=0)


def weights_digest(model: TaskModel) -> str:
    """A digest of every weight and statistic, to compare ranks."""
    digest = hashlib.sha256()
    for name, tensor in sorted(model.state_dict().items()):
        digest.update(name.encode())
        digest.update(tensor.detach().contiguous().numpy().tobytes())
    return digest.hexdigest()


def _join(rank: int, world: int, rendezvous: str) -> Share:
    dist.init_process_group("gloo", init_method=f"file://{rendezvous}", rank=rank,
                            world_size=world)
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // world))
    return Share(rank, world)


def _follow(rank: int, world: int, rendezvous: str, task: BackboneTask,
            state: dict[str, torch.Tensor], train: CachedSplit, val: CachedSplit,
            profile: BackboneProfile, checkpoint: Path, key: str, digests: mp.Queue) -> None:
    """A spawned rank: rebuild the model, train in step with rank 0, report its last
    weights."""
    from components.train.loop import fit

    share = _join(rank, world, rendezvous)
    try:
        model = task.build(profile.dropout, profile.frozen_blocks, imagenet=False)
        model.load_state_dict(state)
        fit(model, task, train, val, profile, checkpoint, key, share=share)
        digests.put((rank, weights_digest(model)))
    finally:
        dist.destroy_process_group()


def fit_on_processes(model: TaskModel, task: BackboneTask, train: CachedSplit,
                     val: CachedSplit, profile: BackboneProfile, checkpoint: Path, key: str,
                     on_epoch: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    """`loop.fit` on `profile.processes` ranks, this process being rank 0; its FitResult.
    RuntimeError when a rank fails or ends with other weights than rank 0's."""
    from components.train.loop import fit

    world = profile.processes
    # The ranks meet through a file (no port to find free); it goes with its folder.
    rendezvous = Path(tempfile.mkdtemp(prefix="gradeline-ranks-")) / "rendezvous"
    context = mp.get_context("spawn")
    digests = context.Queue()
    for split in (train, val):
        split.activations.share_memory_()
    state = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    ranks = [context.Process(target=_follow, args=(rank, world, str(rendezvous), task, state,
                                                   train, val,
                                                   profile, checkpoint, key, digests),
                             daemon=True) for rank in range(1, world)]
    for process in ranks:
        process.start()
    threads = torch.get_num_threads()
    share = _join(0, world, str(rendezvous))
    try:
        fitted = fit(model, task, train, val, profile, checkpoint, key, on_epoch, share=share)
    finally:
        dist.destroy_process_group()
        torch.set_num_threads(threads)
        shutil.rmtree(rendezvous.parent, ignore_errors=True)
    for process in ranks:
        process.join(timeout=_TIMEOUT_S)
    failed = [process.exitcode for process in ranks if process.exitcode != 0]
    if failed:
        raise RuntimeError(f"{len(failed)} training rank(s) failed (exit codes {failed})")
    expected = weights_digest(model)  # the last epoch's weights, before the best are loaded
    reported = dict(digests.get(timeout=_TIMEOUT_S) for _ in ranks)
    drifted = sorted(rank for rank, digest in reported.items() if digest != expected)
    if drifted:
        raise RuntimeError(f"training ranks {drifted} ended with other weights than rank 0")
    return fitted
