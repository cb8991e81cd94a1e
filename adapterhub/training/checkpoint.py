"""Resumable checkpoints: accelerate's ``save_state``/``load_state`` plus the loop's own state.

A checkpoint is ``OUTPUT/checkpoints/step-N/`` holding what ``accelerator.save_state`` writes
(the trainable weights as ``model.safetensors``, optimizer, scheduler and every process's random
state), each process's masking generator, the best weights so far (``best.safetensors``) and
``loop_state.json`` (step, position in the epoch, early-stopping counters, the log so far, the
recipe). ``loop_state.json`` is written last, so a folder without it is an interrupted save and
is never resumed from. After a complete save the older checkpoints are removed.
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from adapterhub.errors import TrainingError, UsageError
from adapterhub.recipes import Recipe

CHECKPOINTS = "checkpoints"
STATE_FILE = "loop_state.json"
BEST_FILE = "best.safetensors"
MODEL_FILE = "model.safetensors"  # accelerate's name for the first prepared model's weights
RUN_TIME_KEYS = ("report_to", "checkpoint_every")
"""Recipe keys a resumed run may change: they do not change what is trained."""


@dataclass
class LoopState:
    """Where the loop is: enough to go on exactly as if it had never stopped."""

    step: int = 0
    epoch: int = 0
    batch_in_epoch: int = 0
    """Batches of ``epoch`` already trained."""
    seen: int = 0
    best_value: float = -math.inf
    best_step: int = 0
    bad_evals: int = 0
    window_loss: float = 0.0
    window_n: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)


def checkpoint_dir(output: Path, step: int) -> Path:
    return output / CHECKPOINTS / f"step-{step}"


def _complete(output: Path) -> list[Path]:
    folder = output / CHECKPOINTS
    found = (
        [p for p in folder.glob("step-*") if (p / STATE_FILE).is_file()] if folder.is_dir() else []
    )
    return sorted(found, key=lambda p: int(p.name.removeprefix("step-")))


def latest_checkpoint(output: Path) -> Path:
    """The newest complete checkpoint under ``output``; a UsageError when there is none."""
    found = _complete(output)
    if not found:
        raise UsageError(
            f"no checkpoint under {output / CHECKPOINTS} to resume from; train with "
            "checkpoint_every set (--checkpoint-every N), or run without --resume"
        )
    return found[-1]


def keep_trainable_weights(accelerator: Accelerator, names: set[str]) -> None:
    """Make ``save_state`` write only the trainable weights (the frozen backbone is rebuilt from
    the backbone itself, and would make every LoRA checkpoint as large as the model)."""

    def drop_frozen(models, weights, output_dir) -> None:
        for state in weights:
            for key in [k for k in state if k.removeprefix("module.") not in names]:
                del state[key]

    accelerator.register_save_state_pre_hook(drop_frozen)


def save_checkpoint(
    accelerator: Accelerator,
    directory: Path,
    state: LoopState,
    best: dict[str, torch.Tensor],
    generator: torch.Generator,
    recipe: Recipe,
) -> None:
    """Every process calls this at the same step; the main process commits and prunes."""
    accelerator.save_state(str(directory))
    rank = accelerator.process_index
    save_file({"state": generator.get_state()}, str(directory / f"generator_{rank}.safetensors"))
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        save_file({k: v.contiguous() for k, v in best.items()}, str(directory / BEST_FILE))
        record = {"recipe": recipe.to_dict(), "state": dataclasses.asdict(state)}
        (directory / STATE_FILE).write_text(json.dumps(record) + "\n")  # the commit point
        for older in (directory.parent).glob("step-*"):
            if older != directory:
                shutil.rmtree(older, ignore_errors=True)
    accelerator.wait_for_everyone()


def _check_recipe(saved: dict[str, Any], recipe: Recipe, directory: Path) -> None:
    current = recipe.to_dict()
    changed = [
        key
        for key in current
        if key not in RUN_TIME_KEYS and saved.get(key, current[key]) != current[key]
    ]
    if changed:
        raise UsageError(
            f"{directory} was made by a different recipe ({', '.join(changed)} changed); "
            "resume with the recipe it was made with, or start a new run"
        )


def load_checkpoint(
    accelerator: Accelerator,
    directory: Path,
    recipe: Recipe,
    trainable: set[str],
    generator: torch.Generator,
) -> tuple[LoopState, dict[str, torch.Tensor]]:
    """Restore weights, optimizer, scheduler, random states and ``generator``; return the loop
    state and the best weights so far."""
    state_file = directory / STATE_FILE
    if not state_file.is_file():
        raise UsageError(f"{directory} is not a complete checkpoint (it has no {STATE_FILE})")
    record = json.loads(state_file.read_text())
    _check_recipe(record["recipe"], recipe, directory)
    with safe_open(str(directory / MODEL_FILE), framework="pt") as handle:
        saved = {k.removeprefix("module.") for k in handle.keys()}  # noqa: SIM118 (not iterable)
    if saved != trainable:
        raise TrainingError(
            f"{directory} holds weights of another model ({len(saved)} trainable tensors, this "
            f"run has {len(trainable)}); resume with the recipe and backbone it was made with"
        )
    accelerator.load_state(str(directory), strict=False)  # strict: only trainable weights saved
    rank = accelerator.process_index
    generator.set_state(load_file(str(directory / f"generator_{rank}.safetensors"))["state"])
    best = load_file(str(directory / BEST_FILE))
    return LoopState(**record["state"]), best
