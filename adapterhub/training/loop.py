"""The training recipe on accelerate: recipe in, trained folder (and registry entry) out.

:class:`Trainer` has torchtune's shape: :meth:`Trainer.setup` builds the run in separate steps
(``_setup_data``, ``_setup_model``, ``_setup_optimizer``, ``_setup_lr_scheduler``, then
checkpoint resumption and logging), :meth:`Trainer.train` is only the loop, and
:meth:`Trainer.train_step` is one optimizer step on one batch (what the benchmarks time).
:func:`train` is the entry point: set up, train, report, save, publish.

It runs in one process, and unchanged under ``torchrun --nproc_per_node N`` or
``accelerate launch``: each process takes its shard of every step's examples, gradients are
averaged by DDP, and every process evaluates the full validation set itself, so early stopping
decides identically everywhere without messages. The main process writes the output folder:

```
adapter_config.json, adapter_model.safetensors   the adapter (docs/FORMAT.md), or for method
finetuned.safetensors                            none the backbone weights it changed
head.safetensors                                 the task head (not for mlm)
recipe.yaml                                      the resolved recipe
metrics.json                                     test metrics per language, parameters, world size
train_log.jsonl                                  one JSON line per logged step and evaluation
loss_curve.png                                   training loss and validation metric
checkpoints/step-N/                              with checkpoint_every: the newest resumable state
logs/                                            with report_to: the tracker's files
manifest.json, README.md                         when published (the registry entry's own)
```
"""

from __future__ import annotations

import json
import logging
import math
import time
from pathlib import Path
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import ProjectConfiguration, set_seed
from tqdm.auto import tqdm
from transformers import get_linear_schedule_with_warmup

from adapterhub.backbone import load_backbone
from adapterhub.errors import TrainingError, UsageError
from adapterhub.evaluation.inference import evaluate_rows, primary
from adapterhub.evaluation.plots import loss_curve
from adapterhub.evaluation.yardstick import HARD, OVERALL, YARDSTICKS, measures, score_model
from adapterhub.preprocessing import Preprocessing
from adapterhub.recipes import Recipe
from adapterhub.tasks import TaskModel, get_task
from adapterhub.training.checkpoint import (
    LoopState,
    checkpoint_dir,
    keep_trainable_weights,
    latest_checkpoint,
    load_checkpoint,
    save_checkpoint,
)
from adapterhub.training.data import PreparedData, prepare_data
from adapterhub.training.model import build_model, count_parameters, save_model
from adapterhub.training.probe import init_head_from_probe
from adapterhub.training.publish import publish_adapter
from adapterhub.training.result import TrainResult
from adapterhub.training.tracking import check_tracker, scalars, tracker_config

log = logging.getLogger(__name__)


def _length(row: dict) -> int:
    return len(row["text"]) if "text" in row else sum(len(t) + 1 for t in row["tokens"])


def epoch_batches(
    lengths: list[int] | int, batch: int, rank: int, world: int, seed: int, epoch: int
) -> list[list[int]]:
    """This process's batches of one epoch: a seeded permutation cut into world-sized steps.

    Given ``lengths``, each run of 16 steps is sorted by length before it is cut (less
    padding), and the steps are shuffled again, so batches stay random in order and content.
    """
    n = lengths if isinstance(lengths, int) else len(lengths)
    generator = torch.Generator().manual_seed(seed * 1000 + epoch)
    order = torch.randperm(n, generator=generator).tolist()
    step = batch * world
    steps = max(1, math.ceil(n / step))
    order = (order * math.ceil(steps * step / n))[: steps * step]  # wrap so every step is full
    if not isinstance(lengths, int):
        chunk = step * 16
        order = [
            i
            for start in range(0, len(order), chunk)
            for i in sorted(order[start : start + chunk], key=lambda i: lengths[i])
        ]
    cut = [order[s * step : (s + 1) * step] for s in range(steps)]
    if not isinstance(lengths, int):
        cut = [cut[i] for i in torch.randperm(len(cut), generator=generator).tolist()]
    return [c[rank * batch : (rank + 1) * batch] for c in cut]


class Trainer:
    """One training run of ``recipe``. ``backbone`` is a loaded
    :class:`~adapterhub.backbone.Backbone` to reuse (its model is copied, never changed); by
    default the recipe's backbone is loaded. ``resume`` is a checkpoint folder, or True for the
    newest under ``output_dir``."""

    def __init__(
        self,
        recipe: Recipe,
        *,
        output_dir: str | Path | None = None,
        backbone=None,
        progress: bool = True,
        resume: str | Path | bool | None = None,
    ) -> None:
        self.recipe = recipe.validate()
        self.spec = get_task(recipe.task)
        self.output = Path(output_dir) if output_dir else None
        self.progress = progress
        self.backbone = backbone
        self.resume = resume
        report_to = check_tracker(recipe.report_to)
        if "yardstick" in recipe.select_on and recipe.task not in YARDSTICKS:
            raise UsageError(
                f"select_on: yardstick needs a task with a yardstick "
                f"({', '.join(YARDSTICKS)}); {recipe.task} has none"
            )
        if self.output is None and (report_to or recipe.checkpoint_every or resume):
            raise UsageError("report_to, checkpoint_every and --resume need an output folder")
        project = None
        if self.output is not None:
            project = ProjectConfiguration(
                project_dir=str(self.output), logging_dir=str(self.output / "logs")
            )
        self.accelerator = Accelerator(
            cpu=not torch.cuda.is_available(), log_with=report_to, project_config=project
        )
        self.main = self.accelerator.is_main_process
        self.world = self.accelerator.num_processes
        self.state = LoopState()
        self.started = time.perf_counter()
        self._log_file = None
        self._bar = None
        self._window_start = self.started

    # ------------------------------------------------------------------ setup

    def setup(self) -> None:
        """Data, model, optimizer and schedule; then the checkpoint to resume and the logs."""
        self.data = self._setup_data()
        self.task, self.parents = self._setup_model()
        self.yardstick_rows = self._setup_selection()
        self.optimizer = self._setup_optimizer()
        self.scheduler = self._setup_lr_scheduler()
        self.model, self.optimizer, self.scheduler = self.accelerator.prepare(
            self.task, self.optimizer, self.scheduler
        )
        self.unwrapped: TaskModel = self.accelerator.unwrap_model(self.model)
        rank = self.accelerator.process_index
        self.mask_generator = torch.Generator().manual_seed(self.recipe.seed * 7919 + rank)
        self.best_state = self._trainable_state()
        self._setup_checkpoints()
        self._setup_logging()

    def _setup_data(self) -> PreparedData:
        recipe = self.recipe
        data = prepare_data(recipe)
        if data.message and self.main:
            log.warning(data.message)
        self.steps_per_epoch = max(1, math.ceil(len(data.train) / (recipe.batch_size * self.world)))
        self.total_steps = recipe.max_steps or max(
            1, math.ceil(recipe.epochs * self.steps_per_epoch)
        )
        self.eval_every = recipe.eval_every or min(self.steps_per_epoch, 200)
        return data

    def _setup_model(self) -> tuple[TaskModel, list[str]]:
        recipe = self.recipe
        copy_model = self.backbone is not None
        if self.backbone is None:
            self.backbone = load_backbone(recipe.backbone, quantize=recipe.quantize)
        elif recipe.quantize and self.backbone.quantization != recipe.quantize:
            raise UsageError("the given backbone is not quantized as the recipe asks")
        set_seed(recipe.seed)
        backbone_parameters = sum(p.numel() for p in self.backbone.model.parameters())
        task, parents = build_model(recipe, self.backbone, self.data.labels, copy_model=copy_model)
        task.initialise(self.data.train, self.backbone.tokenizer, recipe.max_length)
        self.probe = None
        if recipe.head_init == "probe":
            task.to(self.accelerator.device)  # prepare() would move it there anyway
            self.probe = init_head_from_probe(
                task,
                self.backbone.tokenizer,
                self.data.train,
                self.data.validation,
                max_length=recipe.max_length,
                batch_size=recipe.eval_batch_size,
            )
            if self.main and self.progress:
                print(
                    f"head initialised from the linear probe (C={self.probe.c}, validation "
                    f"accuracy {self.probe.validation_accuracy:.3f})"
                )
        self.parameters = count_parameters(task, backbone_parameters)
        if self.main and self.progress:
            counts = self.parameters
            print(
                f"trainable parameters: {counts['trainable']:,} "
                f"({100 * counts['share']:.3f}% of the backbone's {counts['backbone']:,}; "
                f"adapter alone {100 * counts['adapter_share']:.3f}%)"
            )
        task.train()
        return task, parents

    def _setup_selection(self) -> list[dict] | None:
        """The yardstick's rows when ``select_on`` names it (None otherwise)."""
        if "yardstick" not in self.recipe.select_on:
            return None
        from adapterhub.data import yardstick

        if not measures(self.data.labels):
            # the user's own classes (a 5-star scale, say): the yardstick cannot score them, so
            # the run selects as it would without it, and the recipe it records says so
            if self.main:
                log.warning(
                    "the yardstick scores %s, not this data's labels %s: selecting on validation",
                    "/".join(yardstick.LABELS),
                    "/".join(self.data.labels),
                )
            self.recipe.select_on = ["validation"]
            return None
        return yardstick.load()[yardstick.SPLIT].to_list()

    def _setup_optimizer(self) -> torch.optim.Optimizer:
        """AdamW with the head at its own learning rate and no decay on biases and LayerNorms."""
        recipe = self.recipe
        head_lr = recipe.head_learning_rate or recipe.learning_rate
        groups: dict[tuple[float, float], list] = {}
        for name, parameter in self.task.named_parameters():
            if not parameter.requires_grad:
                continue
            lr = recipe.learning_rate if name.startswith("encoder.") else head_lr
            no_decay = parameter.ndim < 2 or "LayerNorm" in name or name.endswith("bias")
            decay = 0.0 if no_decay else recipe.weight_decay
            groups.setdefault((lr, decay), []).append(parameter)
        if not groups:
            raise TrainingError("nothing to train: every parameter is frozen")
        return torch.optim.AdamW(
            [{"params": ps, "lr": lr, "weight_decay": wd} for (lr, wd), ps in groups.items()]
        )

    def _setup_lr_scheduler(self):
        warmup = int(self.recipe.warmup_ratio * self.total_steps)
        return get_linear_schedule_with_warmup(self.optimizer, warmup, self.total_steps)

    def _setup_checkpoints(self) -> None:
        if self.output is None or not (self.recipe.checkpoint_every or self.resume):
            return
        keep_trainable_weights(self.accelerator, set(self.best_state))
        if self.resume:
            found = latest_checkpoint(self.output) if self.resume is True else Path(self.resume)
            self.state, self.best_state = load_checkpoint(
                self.accelerator, found, self.recipe, set(self.best_state), self.mask_generator
            )
            if self.main and self.progress:
                print(f"resuming from {found} (step {self.state.step} of {self.total_steps})")

    def _setup_logging(self) -> None:
        if not self.main:
            return
        if self.output is not None:
            self.output.mkdir(parents=True, exist_ok=True)
            self._log_file = (self.output / "train_log.jsonl").open("w")
            for entry in self.state.history:  # a resumed run's log up to its checkpoint
                self._log_file.write(json.dumps(entry) + "\n")
        if self.recipe.report_to:
            name = f"{self.recipe.task}-{self.recipe.lang}"
            self.accelerator.init_trackers(name, config=tracker_config(self.recipe))
        if self.progress:
            self._bar = tqdm(
                total=self.total_steps,
                initial=self.state.step,
                desc=f"train {self.recipe.task}/{self.recipe.lang}",
                unit="step",
            )

    # ------------------------------------------------------------------ the loop

    def collate(self, rows: list[dict]) -> dict[str, torch.Tensor]:
        """A training batch of ``rows`` on this process's device."""
        batch = self.unwrapped.collate(
            rows, self.backbone.tokenizer, self.recipe.max_length, self.mask_generator
        )
        return {k: v.to(self.accelerator.device) for k, v in batch.items()}

    def train_step(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """One optimizer step on ``batch``: forward, backward, clip, step, schedule. Returns
        the (detached) loss."""
        loss, _ = self.model(batch)
        if not torch.isfinite(loss):
            raise TrainingError(
                f"the loss became {float(loss)} at step {self.state.step + 1}; lower learning_rate"
            )
        self.accelerator.backward(loss)
        if self.recipe.grad_clip:
            self.accelerator.clip_grad_norm_(self.model.parameters(), self.recipe.grad_clip)
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad()
        return loss.detach()

    @property
    def done(self) -> bool:
        """The last step is done, or validation stopped improving for ``patience`` evaluations."""
        state, patience = self.state, self.recipe.patience
        return state.step >= self.total_steps or bool(patience and state.bad_evals >= patience)

    def train(self) -> None:
        """The loop: steps over seeded epochs, logging, validation, checkpoints."""
        recipe, state = self.recipe, self.state
        rank = self.accelerator.process_index
        lengths = (
            [_length(r) for r in self.data.train]
            if recipe.group_by_length
            else len(self.data.train)
        )
        self._window_start = time.perf_counter()
        try:
            while not self.done:
                batches = epoch_batches(
                    lengths, recipe.batch_size, rank, self.world, recipe.seed, state.epoch
                )
                for indices in batches[state.batch_in_epoch :]:
                    rows = [self.data.train[i] for i in indices]
                    loss = self.train_step(self.collate(rows))
                    state.step += 1
                    state.batch_in_epoch += 1
                    state.seen += len(rows) * self.world
                    state.window_loss += loss.item()
                    state.window_n += 1
                    self._show_progress(len(rows))
                    if state.step % recipe.log_every == 0 or state.step == self.total_steps:
                        self._log_train(len(rows))
                    if state.step % self.eval_every == 0 or state.step == self.total_steps:
                        self._validate()
                    if self.done:
                        break
                    if recipe.checkpoint_every and state.step % recipe.checkpoint_every == 0:
                        self.save_checkpoint()
                else:
                    state.epoch += 1
                    state.batch_in_epoch = 0
        finally:
            if self._bar is not None:
                self._bar.close()
            if self._log_file is not None:
                self._log_file.close()

    def _show_progress(self, rows: int) -> None:
        if self._bar is None:
            return
        state = self.state
        elapsed = time.perf_counter() - self._window_start
        self._bar.set_postfix(
            loss=f"{state.window_loss / state.window_n:.4f}",
            ex_s=f"{state.window_n * rows * self.world / max(elapsed, 1e-9):.1f}",
        )
        self._bar.update(1)

    def _record(self, entry: dict[str, Any], tracked: dict[str, float]) -> None:
        if not self.main:
            return
        self.state.history.append(entry)
        if self._log_file is not None:
            self._log_file.write(json.dumps(entry) + "\n")
            self._log_file.flush()
        if self.recipe.report_to:
            self.accelerator.log(tracked, step=entry["step"])

    def _log_train(self, rows: int) -> None:
        state = self.state
        elapsed = time.perf_counter() - self._window_start
        entry = {
            "event": "train",
            "step": state.step,
            "epoch": round(state.step / self.steps_per_epoch, 3),
            "loss": state.window_loss / state.window_n,
            "lr": self.scheduler.get_last_lr()[0],
            "examples_per_s": state.window_n * rows * self.world / max(elapsed, 1e-9),
            "examples_seen": state.seen,
            "elapsed_s": round(time.perf_counter() - self.started, 2),
        }
        self._record(entry, scalars(entry, "train"))
        state.window_loss, state.window_n = 0.0, 0
        self._window_start = time.perf_counter()

    def _validate(self) -> None:
        recipe, state = self.recipe, self.state
        values = evaluate_rows(
            self.unwrapped,
            self.data.validation,
            self.backbone.tokenizer,
            recipe.max_length,
            recipe.eval_batch_size,
        )
        signals = {"validation": primary(values, self.spec.metric)}
        dev = self._score_yardstick() if self.yardstick_rows is not None else {}
        if dev:
            signals["yardstick"] = dev["yardstick_accuracy"]
        chosen = [signals[name] for name in recipe.select_on]
        value = sum(chosen) / len(chosen)
        if value > state.best_value:
            state.best_value, state.best_step, state.bad_evals = value, state.step, 0
            self.best_state = self._trainable_state()
        else:
            state.bad_evals += 1
        entry = {
            "event": "eval",
            "step": state.step,
            "metric": self.spec.metric,
            "value": value,
            "best": state.best_value,
            "select_on": list(recipe.select_on),
            **{f"validation_{k}": v for k, v in values.items()},
            **dev,
        }
        self._record(entry, {**scalars(values, "validation"), **scalars(dev, "dev")})

    def _score_yardstick(self) -> dict[str, Any]:
        """The current weights on the yardstick, as the published adapter will be scored."""
        recipe = self.recipe
        preprocessing = Preprocessing.from_dict(recipe.to_dict())  # the record publish writes
        score = score_model(
            self.unwrapped,
            self.backbone.tokenizer,
            preprocessing,
            name=f"step {self.state.step}",
            rows=self.yardstick_rows,
            batch_size=recipe.eval_batch_size,
        )
        table = score.table()
        worst = min(score.languages, key=table.__getitem__)
        return {
            "yardstick_accuracy": table[OVERALL],
            "yardstick_hard_accuracy": table[HARD],
            "yardstick_worst_lang": worst,
            "yardstick_worst_accuracy": table[worst],
        }

    def _trainable_state(self) -> dict[str, torch.Tensor]:
        return {
            n: p.detach().clone() for n, p in self.unwrapped.named_parameters() if p.requires_grad
        }

    def save_checkpoint(self) -> Path:
        """A resumable checkpoint of this step (every process calls it)."""
        assert self.output is not None  # checked in __init__: checkpoints need an output folder
        directory = checkpoint_dir(self.output, self.state.step)
        save_checkpoint(
            self.accelerator,
            directory,
            self.state,
            self.best_state,
            self.mask_generator,
            self.recipe,
        )
        return directory

    # ------------------------------------------------------------------ after the loop

    def finish(self, *, save: bool = True) -> TrainResult:
        """Go back to the best weights, test them (main process) and write the output folder."""
        with torch.no_grad():
            for name, parameter in self.unwrapped.named_parameters():
                if name in self.best_state:
                    parameter.copy_(self.best_state[name])
        self.unwrapped.eval()
        self.accelerator.wait_for_everyone()
        data, state = self.data, self.state
        result = TrainResult(
            output_dir=self.output,
            recipe=self.recipe,
            labels=data.labels,
            train_langs=data.train_langs,
            zero_shot=data.zero_shot,
            metrics={},
            best_validation=self._best_entry().get(
                f"validation_{self.spec.metric}", state.best_value
            ),
            steps=state.step,
            parameters=self.parameters,
            seconds=0.0,
            history=state.history,
            dataset=data.dataset,
            world_size=self.world,
        )
        if not self.main:
            return result
        for code, rows in data.test.items():
            result.metrics[code] = evaluate_rows(
                self.unwrapped,
                rows,
                self.backbone.tokenizer,
                self.recipe.max_length,
                self.recipe.eval_batch_size,
            )
            if self.recipe.report_to:
                self.accelerator.log(scalars(result.metrics[code], f"test/{code}"), step=state.step)
        result.seconds = round(time.perf_counter() - self.started, 2)
        if self.output is not None and save:
            self._write_outputs(result)
        return result

    def _write_outputs(self, result: TrainResult) -> None:
        output, recipe, data, backbone = self.output, self.recipe, self.data, self.backbone
        assert output is not None
        save_model(self.unwrapped, recipe, data.labels, backbone, output)
        (output / "recipe.yaml").write_text(recipe.to_yaml())
        summary = {
            "task": recipe.task,
            "lang": recipe.lang,
            "method": recipe.method,
            "dataset": data.dataset,
            "train_langs": data.train_langs,
            "zero_shot": data.zero_shot,
            "train_examples": len(data.train),
            "validation_examples": len(data.validation),
            "steps": result.steps,
            "best_step": self.state.best_step,
            "best_validation": result.best_validation,
            "select_on": list(recipe.select_on),
            **self._selected_scores(),
            "parameters": result.parameters,
            "world_size": result.world_size,
            "seconds": result.seconds,
            "backbone": {"name": backbone.name, "fingerprint": backbone.fingerprint},
            "parents": self.parents,
            "head_init": self.recipe.head_init,
            **(
                {"probe": {"C": self.probe.c, "validation": self.probe.validation_accuracy}}
                if self.probe is not None
                else {}
            ),
            "test": result.metrics,
        }
        (output / "metrics.json").write_text(json.dumps(summary, indent=2) + "\n")
        loss_curve(result.history, output / "loss_curve.png")

    def _best_entry(self) -> dict[str, Any]:
        """The log entry of the evaluation whose weights were kept ({} off the main process)."""
        step = self.state.best_step
        return next(
            (e for e in self.state.history if e.get("event") == "eval" and e["step"] == step), {}
        )

    def _selected_scores(self) -> dict[str, Any]:
        """The kept step's validation metric and yardstick scores, when the yardstick chose."""
        if self.yardstick_rows is None:
            return {}
        entry = self._best_entry()
        scores = {k: v for k, v in entry.items() if k.startswith("yardstick_")}
        return {"selected": {"validation": entry.get(f"validation_{self.spec.metric}"), **scores}}

    def cleanup(self) -> None:
        """Close the trackers. Not ``accelerator.end_training()``, which finishes them the same
        way but also destroys the process group: a caller that trains again in the same
        processes (benchmarks/sentiment_matrix.py) or goes on using the group would break."""
        for tracker in self.accelerator.trackers:
            tracker.finish()


def train(
    recipe: Recipe,
    *,
    output_dir: str | Path | None = None,
    backbone=None,
    publish: bool = False,
    adapter_id: str | None = None,
    store: Any = None,
    progress: bool = True,
    save: bool = True,
    keep_model: bool = False,
    resume: str | Path | bool | None = None,
) -> TrainResult:
    """Train as ``recipe`` says; test on the test sets; save (and publish) the result.

    ``resume``: go on from a checkpoint folder, or from the newest under ``output_dir`` (True).
    """
    if publish and (output_dir is None or recipe.method == "none"):
        raise UsageError(
            "publishing needs an adapter method and an output folder (a run with method none "
            "keeps its weights in the output folder: train with --no-publish)"
        )
    trainer = Trainer(
        recipe, output_dir=output_dir, backbone=backbone, progress=progress, resume=resume
    )
    try:
        trainer.setup()
        trainer.train()
        result = trainer.finish(save=save)
        if publish and trainer.main:
            assert trainer.output is not None
            result.published = publish_adapter(
                trainer.output,
                trainer.backbone,
                result,
                adapter_id=adapter_id,
                store=store,
                parents=trainer.parents,
            )
    finally:
        trainer.cleanup()
    if keep_model:
        result.model = trainer.unwrapped
    trainer.accelerator.wait_for_everyone()
    return result
