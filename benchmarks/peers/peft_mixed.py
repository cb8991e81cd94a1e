"""PEFT mixed batches: one PeftModel holding N LoRA adapters, each batch's rows routed to their
own adapter with ``adapter_names`` (PEFT's mixed-batch inference), against the bare backbone.

    <venv>/bin/python peft_mixed.py JOB.json      (run.py writes the job and the venv)
"""

from __future__ import annotations

import time

import torch
from common import batches, padded, ratios, read_job, rounds, write_result
from peft import PeftModel
from transformers import AutoModel


def main() -> None:
    job = read_job()
    torch.set_num_threads(job["threads"])
    ids, pad = job["ids"], job["pad_id"]
    bare = AutoModel.from_pretrained(job["backbone"], add_pooling_layer=False).eval()
    model = PeftModel.from_pretrained(
        AutoModel.from_pretrained(job["backbone"], add_pooling_layer=False),
        job["adapters"][0],
        adapter_name="a0",
    ).eval()
    loaded, load_seconds = 1, []
    configs = {}
    plans = {order: [padded(b, pad) for b in batches(ids, order)] for order in job["orders"]}

    def run(plan, names=None):
        def call():
            with torch.inference_mode():
                for index, (x, mask) in enumerate(plan):
                    extra = {}
                    if names is not None:
                        extra["adapter_names"] = names[index][: len(x)]
                    model_or_bare = bare if names is None else model
                    model_or_bare(input_ids=x, attention_mask=mask, **extra)

        return call

    for order, plan in plans.items():
        configs[f"bare {order}"] = run(plan)
    for count in job["counts"]:
        while loaded < count:
            started = time.perf_counter()
            model.load_adapter(job["adapters"][loaded], adapter_name=f"a{loaded}")
            load_seconds.append(time.perf_counter() - started)
            loaded += 1
        for order, plan in plans.items():
            names = [[f"a{(b * 32 + i) % count}" for i in range(32)] for b in range(len(plan))]
            configs[f"{count} adapters {order}"] = run(plan, names)
    times = rounds(configs, job["rounds"])
    result = {}
    for order in job["orders"]:
        subset = {k: v for k, v in times.items() if k.endswith(order)}
        result.update(ratios(subset, len(ids), bare=f"bare {order}"))
    import peft
    import transformers

    write_result(
        job,
        {
            "peer": "PEFT mixed batches (adapter_names)",
            "versions": {
                "peft": peft.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            "runs": result,
            "load_adapter_s": load_seconds,
        },
    )


if __name__ == "__main__":
    main()
