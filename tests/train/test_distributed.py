"""The same train function under ``torchrun --nproc_per_node 2`` (two CPU ranks over gloo)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from accelerate.commands.config.config_args import load_config_from_file
from accelerate.utils import DistributedType

REPO = Path(__file__).resolve().parents[2]

SCRIPT = textwrap.dedent(
    """
    import hashlib, json, sys
    import torch
    from adapterhub.backbone import load_backbone
    from adapterhub.recipes import Recipe
    from adapterhub.training import train

    backbone_path, data, out, report = sys.argv[1:5]
    recipe = Recipe(task="sentiment", lang="en", data=data, method="lora", min_train_examples=10,
                    max_steps=6, batch_size=4, eval_every=3, patience=0, max_length=32, seed=1,
                    learning_rate=1e-2)
    result = train(recipe, output_dir=out, backbone=load_backbone(backbone_path, device="cpu"),
                   progress=False, keep_model=True)
    digest = hashlib.sha256()
    for name, parameter in sorted(result.model.named_parameters()):
        if parameter.requires_grad:
            digest.update(name.encode() + parameter.detach().numpy().tobytes())
    from accelerate import PartialState
    state = PartialState()
    with open(f"{report}.{state.process_index}.json", "w") as handle:
        json.dump({"world": state.num_processes, "digest": digest.hexdigest(),
                   "steps": result.steps, "metrics": result.metrics}, handle)
    """
)


def test_two_process_torchrun_trains_and_keeps_ranks_equal(
    tiny_backbone_path, sentiment_csv, tmp_path
):
    script = tmp_path / "ddp_train.py"
    script.write_text(SCRIPT)
    out, report = tmp_path / "out", tmp_path / "rank"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(tiny_backbone_path), str(sentiment_csv), str(out), str(report),
    ]  # fmt: skip
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank.{r}.json").read_text()) for r in (0, 1)]
    assert [r["world"] for r in ranks] == [2, 2]
    assert ranks[0]["digest"] == ranks[1]["digest"]  # DDP kept the weights equal
    assert ranks[0]["steps"] == 6
    assert ranks[0]["metrics"] and not ranks[1]["metrics"]  # only the main process evaluates
    logged = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    first = next(line for line in logged if line["event"] == "train")
    assert first["examples_seen"] == first["step"] * 2 * 4  # a batch from each rank per step
    assert (out / "adapter_model.safetensors").is_file() and (out / "head.safetensors").is_file()
    assert json.loads((out / "metrics.json").read_text())["world_size"] == 2


@pytest.mark.parametrize("name", ["multi_gpu", "multi_node"])
def test_the_accelerate_configs_the_readme_names_load(name):
    path = REPO / "recipes" / "accelerate" / f"{name}.yaml"
    config = load_config_from_file(str(path))
    assert config.distributed_type == DistributedType.MULTI_GPU
    assert config.num_processes >= 2 and config.machine_rank == 0
    assert f"--config_file recipes/accelerate/{name}.yaml" in (REPO / "README.md").read_text()


def test_the_readme_torchrun_command_trains_on_two_processes(
    tiny_backbone_path, sentiment_csv, tmp_path
):
    out, recipe = tmp_path / "out", tmp_path / "recipe.yaml"
    recipe.write_text("task: sentiment\nmin_train_examples: 10\neval_every: 1\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        "-m", "adapterhub", "train", "--task", "sentiment", "--lang", "en", "--no-publish",
        "--recipe", str(recipe),
        "--data", str(sentiment_csv), "--backbone", str(tiny_backbone_path), "--output", str(out),
        "--max-steps", "2", "--batch-size", "4", "--max-length", "32", "--no-progress",
    ]  # fmt: skip
    finished = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert finished.returncode == 0, finished.stderr[-3000:]
    assert finished.stdout.count("saved to") == 1  # the main process reports, the other is quiet
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["world_size"] == 2 and metrics["steps"] == 2
