"""AdapterHub's ``adapters`` library: N LoRA adapters (r=8, alpha=16, query and value, random
non-zero weights) added to the backbone, each batch's rows routed to their own adapter with the
``BatchSplit`` composition, against the bare backbone in the same process.

    <venv>/bin/python adapters_lib.py JOB.json      (run.py writes the job and the venv)
"""

from __future__ import annotations

import adapters
import torch
from adapters import LoRAConfig
from adapters.composition import BatchSplit
from common import batches, padded, ratios, read_job, rounds, write_result
from transformers import AutoModel


def main() -> None:
    job = read_job()
    torch.set_num_threads(job["threads"])
    ids, pad = job["ids"], job["pad_id"]
    bare = AutoModel.from_pretrained(job["backbone"], add_pooling_layer=False).eval()
    model = AutoModel.from_pretrained(job["backbone"], add_pooling_layer=False).eval()
    adapters.init(model)
    config = LoRAConfig(r=8, alpha=16, selfattn_lora=True, attn_matrices=["q", "v"])
    generator = torch.Generator().manual_seed(0)
    for index in range(max(job["counts"])):
        model.add_adapter(f"a{index}", config=config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "lora" in name:
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * 0.05)
    model.eval()
    plans = {order: [padded(b, pad) for b in batches(ids, order)] for order in job["orders"]}

    def run(plan, count=None):
        def call():
            with torch.inference_mode():
                for index, (x, mask) in enumerate(plan):
                    if count is None:
                        bare(input_ids=x, attention_mask=mask)
                        continue
                    # rows use adapter (batch * 32 + row) % count: runs of one adapter
                    names = [f"a{(index * 32 + i) % count}" for i in range(len(x))]
                    split, sizes = [], []
                    for name in names:
                        if split and split[-1] == name:
                            sizes[-1] += 1
                        else:
                            split.append(name)
                            sizes.append(1)
                    model.active_adapters = BatchSplit(*split, batch_sizes=sizes)
                    model(input_ids=x, attention_mask=mask)

        return call

    configs = {f"bare {order}": run(plan) for order, plan in plans.items()}
    for count in job["counts"]:
        for order, plan in plans.items():
            configs[f"{count} adapters {order}"] = run(plan, count)
    times = rounds(configs, job["rounds"])
    result = {}
    for order in job["orders"]:
        subset = {k: v for k, v in times.items() if k.endswith(order)}
        result.update(ratios(subset, len(ids), bare=f"bare {order}"))
    import transformers

    write_result(
        job,
        {
            "peer": "AdapterHub adapters (BatchSplit, LoRA)",
            "versions": {
                "adapters": adapters.__version__,
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            "runs": result,
        },
    )


if __name__ == "__main__":
    main()
