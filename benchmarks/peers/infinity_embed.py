"""Infinity (``infinity-emb``, torch engine) embedding every text, as an ``/embed`` server would,
against the bare backbone over length-sorted batches of 32 in the same process.

    <venv>/bin/python infinity_embed.py JOB.json      (run.py writes the job and the venv)
"""

from __future__ import annotations

import asyncio

import torch
from common import batches, padded, ratios, read_job, rounds, write_result
from infinity_emb import AsyncEmbeddingEngine, EngineArgs
from transformers import AutoModel


def main() -> None:
    job = read_job()
    torch.set_num_threads(job["threads"])
    ids, pad, texts = job["ids"], job["pad_id"], job["texts"]
    bare = AutoModel.from_pretrained(job["backbone"], add_pooling_layer=False).eval()
    plan = [padded(b, pad) for b in batches(ids, "sorted")]
    engine = AsyncEmbeddingEngine.from_args(
        EngineArgs(
            model_name_or_path=job["backbone"],
            engine="torch",
            device="cpu",
            batch_size=32,
            model_warmup=False,
        )
    )
    loop = asyncio.new_event_loop()
    loop.run_until_complete(engine.astart())

    def infinity():
        loop.run_until_complete(engine.embed(sentences=texts))

    def backbone():
        with torch.inference_mode():
            for x, mask in plan:
                hidden = bare(input_ids=x, attention_mask=mask).last_hidden_state
                m = mask.unsqueeze(-1).float()
                (hidden * m).sum(1) / m.sum(1)

    times = rounds({"bare sorted": backbone, "infinity embed": infinity}, job["rounds"])
    loop.run_until_complete(engine.astop())
    import infinity_emb
    import transformers

    write_result(
        job,
        {
            "peer": "Infinity (infinity-emb, torch engine), /embed",
            "versions": {
                "infinity_emb": getattr(infinity_emb, "__version__", "?"),
                "transformers": transformers.__version__,
                "torch": torch.__version__,
            },
            "runs": ratios(times, len(ids), bare="bare sorted"),
        },
    )


if __name__ == "__main__":
    main()
