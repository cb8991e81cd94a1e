"""Checkpoints through accelerate's save_state/load_state: a run interrupted and resumed ends
exactly where the uninterrupted run ends."""

from __future__ import annotations

import json

import pytest
from safetensors import safe_open
from train_helpers import recipe_for

from adapterhub.errors import UsageError
from adapterhub.training import Trainer, train
from adapterhub.training.checkpoint import STATE_FILE


class Interrupted(Trainer):
    """The real trainer, stopped as by Ctrl-C when it is about to take step ``at``."""

    at = 7

    def train_step(self, batch):
        if self.state.step + 1 == self.at:
            raise KeyboardInterrupt
        return super().train_step(batch)


def comparable(history):
    """The log without its timings (which differ between any two runs)."""
    drop = ("examples_per_s", "elapsed_s")
    return [{k: v for k, v in entry.items() if k not in drop} for entry in history]


@pytest.mark.parametrize(
    ("task", "method"),
    [("sentiment", "lora"), ("mlm", "bottleneck")],  # dropout's RNG; mlm's masking generator
)
def test_interrupted_then_resumed_equals_uninterrupted(
    task, method, tiny_backbone, data_for, tmp_path
):
    # 12 steps over 3 epochs of 4 batches, validation every 3, checkpoints every 4
    options = dict(max_steps=12, eval_every=3, dropout=0.1, lora_dropout=0.1, batch_size=24)
    if task == "mlm":
        options["batch_size"] = 40
    recipe = recipe_for(task, method, data_for, **options)
    whole = train(recipe, output_dir=tmp_path / "whole", backbone=tiny_backbone, progress=False)

    resumable = recipe_for(task, method, data_for, checkpoint_every=4, **options)
    broken = Interrupted(
        resumable, output_dir=tmp_path / "run", backbone=tiny_backbone, progress=False
    )
    broken.setup()
    with pytest.raises(KeyboardInterrupt):
        broken.train()
    checkpoints = sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir())
    assert checkpoints == ["step-4"]  # step 8 never came; only the newest is kept

    resumed = train(
        resumable, output_dir=tmp_path / "run", backbone=tiny_backbone, progress=False, resume=True
    )
    assert resumed.steps == whole.steps == 12
    assert comparable(resumed.history) == comparable(whole.history)
    assert resumed.metrics == whole.metrics
    weights = "adapter_model.safetensors"
    assert (tmp_path / "run" / weights).read_bytes() == (tmp_path / "whole" / weights).read_bytes()
    logged = (tmp_path / "run" / "train_log.jsonl").read_text().splitlines()
    assert comparable([json.loads(line) for line in logged]) == comparable(whole.history)


def test_a_checkpoint_holds_only_the_trainable_weights(tiny_backbone, data_for, tmp_path):
    recipe = recipe_for("sentiment", "lora", data_for, max_steps=6, checkpoint_every=2)
    result = train(
        recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False, keep_model=True
    )
    [newest] = (tmp_path / "out" / "checkpoints").iterdir()
    assert newest.name == "step-4" and (newest / STATE_FILE).is_file()
    with safe_open(str(newest / "model.safetensors"), framework="pt") as handle:
        saved = set(handle.keys())  # noqa: SIM118 (safe_open handles are not iterable)
    trainable = {n for n, p in result.model.named_parameters() if p.requires_grad}
    assert saved == trainable and any("lora_" in n for n in saved)


def test_resume_refuses_a_different_recipe_and_a_missing_checkpoint(
    tiny_backbone, data_for, tmp_path
):
    recipe = recipe_for("sentiment", "lora", data_for, max_steps=4, checkpoint_every=2)
    train(recipe, output_dir=tmp_path / "out", backbone=tiny_backbone, progress=False)
    other = recipe_for("sentiment", "lora", data_for, max_steps=4, checkpoint_every=2, seed=9)
    with pytest.raises(UsageError, match=r"different recipe \(seed changed\)"):
        train(other, output_dir=tmp_path / "out", backbone=tiny_backbone, resume=True)
    with pytest.raises(UsageError, match="no checkpoint under"):
        train(recipe, output_dir=tmp_path / "none", backbone=tiny_backbone, resume=True)
