"""``adapterhub train`` and ``adapterhub eval``."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from pathlib import Path

from adapterhub.cli.flags import add_backbone_flag
from adapterhub.errors import NotFoundError, UsageError
from adapterhub.recipes import FREEZE_CHOICES, METHOD_CHOICES, REPORT_TO_CHOICES, resolve_recipe


def _langs(text: str | None) -> list[str] | None:
    return [t.strip() for t in text.split(",") if t.strip()] if text else None


def _table_metric(task: str | None) -> str:
    """The metric eval tabulates by default: accuracy, token accuracy, or else the task's
    checkpoint metric (retrieval's P@1), the first of them the task reports."""
    # here, not at the top: the task table imports torch (see run_train)
    from adapterhub.tasks import TASKS

    if task not in TASKS:
        return "accuracy"
    spec = TASKS[task]
    candidates = ("accuracy", "token_accuracy", spec.metric)
    return next(name for name in candidates if name in spec.type.metrics)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train an adapter for a task and a language",
        description="Train an adapter on the frozen backbone, evaluate it, and publish it.",
    )
    parser.add_argument("--task", required=True, help="sentiment, langid, pos or mlm")
    parser.add_argument("--lang", required=True, help="target language (ISO code) or multi")
    parser.add_argument(
        "--method",
        choices=[*METHOD_CHOICES],
        default=None,
        help="adapter method; none trains the head (and with --freeze the backbone itself)",
    )
    parser.add_argument(
        "--freeze",
        choices=[*FREEZE_CHOICES],
        default=None,
        help="with --method none: what stays frozen (embeddings or none fine-tunes the backbone)",
    )
    parser.add_argument("--recipe", default=None, help="recipe YAML (default recipes/TASK.yaml)")
    parser.add_argument("--backbone", default=None, help="embedded name, folder or hub id")
    parser.add_argument(
        "--quantize",
        choices=["8bit"],
        default=None,
        help="train on the backbone loaded in 8 bits through bitsandbytes (QLoRA-style; the "
        "adapter still serves on any precision)",
    )
    parser.add_argument("--train-langs", default=None, help="comma-separated training languages")
    parser.add_argument("--stack-lang", default=None, help="train on this language adapter")
    parser.add_argument("--eval-langs", default=None, help="comma-separated test languages")
    parser.add_argument("--data", default=None, help="your own CSV/JSONL/Parquet file or folder")
    parser.add_argument(
        "--max-steps", type=int, default=None, help="optimizer steps (default: the recipe's)"
    )
    parser.add_argument(
        "--epochs",
        type=float,
        default=None,
        help="passes over the training data when no step count is set (default: the recipe's)",
    )
    parser.add_argument(
        "--learning-rate",
        type=float,
        default=None,
        help="peak learning rate of the adapter (default: the recipe's)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=None, help="texts per step (default: the recipe's)"
    )
    parser.add_argument(
        "--max-length",
        type=int,
        default=None,
        help="tokens kept per text, recorded for serving (default: the recipe's)",
    )
    parser.add_argument(
        "--seed", type=int, default=None, help="random seed (default: the recipe's)"
    )
    parser.add_argument(
        "--select-on",
        default=None,
        metavar="validation,yardstick",
        help="what picks the kept checkpoint: validation (the training languages), yardstick "
        "(the task's multilingual dev set; sentiment) or both, their mean (default: the recipe's)",
    )
    parser.add_argument(
        "--output", default=None, help="output folder (default ./adapters/TASK-LANG)"
    )
    parser.add_argument(
        "--publish",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="publish to the registry (default) or only write the output folder",
    )
    parser.add_argument("--id", dest="adapter_id", default=None, help="registry id to publish as")
    parser.add_argument("--store", default=None, help="registry store (default: local registry)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument(
        "--report-to",
        choices=[*REPORT_TO_CHOICES],
        default=None,
        help="also log to this tracker through accelerate (its package must be installed)",
    )
    parser.add_argument(
        "--checkpoint-every",
        type=int,
        default=None,
        metavar="N",
        help="save a resumable checkpoint every N steps (OUTPUT/checkpoints)",
    )
    parser.add_argument(
        "--resume",
        nargs="?",
        const=True,
        default=None,
        metavar="DIR",
        help="go on from checkpoint DIR, or from the newest under --output",
    )
    parser.set_defaults(func=run_train)

    evaluate = subparsers.add_parser(
        "eval",
        help="evaluate adapters per language, or the cross-lingual matrix",
        description="Evaluate ADAPTER (registry id or folder) on test sets of several languages; "
        "with --matrix, every adapter given (rows) on every language (columns).",
    )
    evaluate.add_argument("adapters", nargs="*", help="registry ids or adapter folders")
    evaluate.add_argument(
        "--langs",
        default=None,
        help="comma-separated test languages (default en,fr,nl,de,zh; on the yardstick all 28)",
    )
    evaluate.add_argument("--task", default=None, help="task (default: the adapter's)")
    evaluate.add_argument("--matrix", action="store_true", help="train language x test language")
    evaluate.add_argument(
        "--metric",
        default=None,
        help="metric to tabulate (default accuracy; token_accuracy for pos, p_at_1 for retrieval)",
    )
    evaluate.add_argument("--max-examples", type=int, default=1000, help="per language")
    add_backbone_flag(evaluate)
    evaluate.add_argument(
        "--quantize", default=None, choices=["8bit"], help="evaluate on the 8-bit backbone"
    )
    evaluate.add_argument("--data", default=None, help="your own labelled test file instead")
    evaluate.add_argument(
        "--dataset", default=None, help="built-in dataset to test on (default: the task's)"
    )
    evaluate.add_argument(
        "--bare",
        action="store_true",
        help="also score the bare backbone (tasks without a head: retrieval), as the baseline",
    )
    evaluate.add_argument("--output", default="eval", help="folder for JSON, Markdown and PNG")
    evaluate.add_argument(
        "--predictions",
        default=None,
        metavar="FILE.jsonl",
        help="also write every scored text's prediction and probabilities, one JSON per line",
    )
    evaluate.add_argument(
        "--stack",
        action="append",
        default=[],
        metavar="LANG_ADAPTER,TASK_ADAPTER",
        help="also score a stack, e.g. lang/de,sentiment/en; lang/{lang} swaps in each test "
        "language's own language adapter (MAD-X); repeatable, a matrix row each",
    )
    evaluate.add_argument(
        "--probe-steps",
        type=int,
        default=None,
        metavar="N",
        help="language adapters: steps each fresh MLM head is fitted for (default: the mlm "
        "recipe's max_steps)",
    )
    evaluate.set_defaults(func=run_eval)


def run_train(args: argparse.Namespace) -> int:
    # here, not at the top: training imports torch and accelerate (~10-30 s), and the parser
    # is built for every command (`adapterhub --help` takes 0.3 s)
    from adapterhub.training import train

    recipe = resolve_recipe(
        args.recipe,
        task=args.task,
        lang=args.lang,
        method=args.method,
        freeze=args.freeze,
        backbone=args.backbone,
        quantize=args.quantize,
        train_langs=_langs(args.train_langs),
        stack_lang=args.stack_lang,
        eval_langs=_langs(args.eval_langs),
        data=args.data,
        max_steps=args.max_steps,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_length=args.max_length,
        seed=args.seed,
        select_on=args.select_on,
        report_to=args.report_to,
        checkpoint_every=args.checkpoint_every,
    )
    output = args.output or f"adapters/{recipe.task}-{recipe.lang}"
    result = train(
        recipe,
        output_dir=output,
        publish=args.publish,
        adapter_id=args.adapter_id,
        store=args.store,
        progress=not args.no_progress,
        resume=args.resume,
    )
    if not result.metrics:  # another rank of a distributed run: the main process reports
        return 0
    for lang, values in result.metrics.items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if k not in ("examples",))
        tag = " (zero-shot)" if result.zero_shot and lang == recipe.lang else ""
        print(f"test {lang}{tag}: {shown}")
    print(f"saved to {result.output_dir}")
    if result.published:
        print(f"published {result.published}")
    return 0


def run_eval(args: argparse.Namespace) -> int:
    # here, not at the top: the backbone, evaluation and registry import torch (see run_train)
    from adapterhub.backbone import load_backbone
    from adapterhub.data import yardstick
    from adapterhub.evaluation import (
        evaluate_adapter,
        evaluate_matrix,
        markdown_matrix,
        write_matrix,
    )
    from adapterhub.evaluation.inference import adapter_folder
    from adapterhub.evaluation.stacks import Stack, evaluate_stack
    from adapterhub.registry import api

    if args.matrix and args.predictions:
        raise UsageError("--predictions writes one adapter's texts at a time: drop --matrix")
    on_yardstick = args.dataset == yardstick.NAME
    stacks = [Stack.parse(text) for text in args.stack]
    langs = _langs(args.langs) or ([] if on_yardstick else ["en", "fr", "nl", "de", "zh"])
    backbone = load_backbone(args.backbone, quantize=args.quantize)
    adapters = list(args.adapters)
    if args.matrix and not adapters:
        if not args.task:
            raise UsageError(
                "--matrix needs adapters, or --task to take TASK/LANG for each --langs"
            )
        for lang in langs:
            try:
                adapters.append(str(api.find(f"{args.task}/{lang}")))
            except NotFoundError:
                continue
    if not adapters and not args.bare and not stacks:
        raise UsageError("give an adapter id or folder to evaluate (or --bare with --task)")
    if args.bare and (args.matrix or not args.task):
        raise UsageError("--bare scores the backbone on one --task; it takes no --matrix")
    # every registry id resolved once, by the registry's rules; outputs name the full id and
    # the store it came from
    sources = {}
    for index, adapter in enumerate(adapters):
        if not Path(adapter).expanduser().is_dir():
            found = api.resolution(adapter)
            adapters[index] = str(found.id)
            sources[adapters[index]] = str(found.source)
        print(
            f"adapter {adapters[index]} from {sources.get(adapters[index], 'a folder')}",
            file=sys.stderr,
        )
    kinds = {adapter_folder(a, backbone)[1].get("task") for a in adapters}
    if kinds & {"lang", "mlm"}:  # language adapters: MLM against the head-only and unigram
        if kinds - {"lang", "mlm"} or stacks or args.matrix or on_yardstick or args.bare:
            raise UsageError("evaluate language adapters on their own (eval lang/de lang/en)")
        from adapterhub.cli.quality import run_language  # imports torch, as everything here

        return run_language(args, backbone, adapters, _langs(args.langs) or [])
    if on_yardstick:
        if args.matrix or args.bare or args.data:
            raise UsageError(
                "the yardstick scores adapters and stacks: drop --matrix/--bare/--data"
            )
        from adapterhub.cli.quality import run_yardstick  # imports torch, as everything here

        return run_yardstick(args, backbone, adapters, stacks, langs)
    output = Path(args.output)
    if args.matrix:
        metric = args.metric or _table_metric(args.task)
        matrix = evaluate_matrix(
            [*adapters, *stacks],
            langs,
            backbone=backbone,
            metric=metric,
            max_examples=args.max_examples,
            data=args.data,
        )
        paths = write_matrix(matrix, output, metric=metric, title=args.task or "transfer")
        print(markdown_matrix(matrix, metric=metric))
        print("wrote " + ", ".join(str(p) for p in paths.values()))
        return 0
    # without --task, the first adapter's own task (its manifest or recipe) picks the column
    task = args.task or (adapter_folder(adapters[0], backbone)[1].get("task") if adapters else None)
    metric = args.metric or _table_metric(task)
    table: dict[str, dict[str, float]] = {}
    with contextlib.ExitStack() as stack:
        predictions = None
        if args.predictions:
            Path(args.predictions).parent.mkdir(parents=True, exist_ok=True)
            predictions = stack.enter_context(open(args.predictions, "w", encoding="utf-8"))
        for stack_ in stacks:
            results = evaluate_stack(
                stack_,
                langs,
                backbone=backbone,
                task=args.task,
                max_examples=args.max_examples,
                data=args.data,
                dataset=args.dataset,
                predictions=predictions,
            )
            table[str(stack_)] = {lang: values.get(metric, 0.0) for lang, values in results.items()}
            print(json.dumps({"stack": str(stack_), "results": results}))
        for adapter in ([None] if args.bare else []) + adapters:
            results = evaluate_adapter(
                adapter,
                langs,
                backbone=backbone,
                task=args.task,
                max_examples=args.max_examples,
                data=args.data,
                dataset=args.dataset,
                predictions=predictions,
            )
            adapter = adapter or f"bare {backbone.name}"
            table[str(adapter)] = {
                lang: values.get(metric, values.get("token_accuracy", 0.0))
                for lang, values in results.items()
            }
            source = sources.get(adapter, "folder")
            print(json.dumps({"adapter": adapter, "source": source, "results": results}))
    paths = write_matrix(table, output, metric=metric, title="adapters", name="eval")
    print(markdown_matrix(table, metric=metric))
    written = [str(p) for p in paths.values()] + ([args.predictions] if args.predictions else [])
    print("wrote " + ", ".join(written))
    return 0
