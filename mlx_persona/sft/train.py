"""SFT stage, child process: ``python -m mlx_persona.sft --model M --data D --out O --config C``.

The story: load the base (dequantized to float32 on MLX's CPU backend), load the chat JSONL with
mlx_lm's ``load_dataset``, attach LoRA/DoRA layers with mlx_lm's ``linear_to_lora_layers`` (or
unfreeze whole layers for ``full``), then run **mlx_lm's own** ``train()`` (its compiled step,
gradient accumulation and checkpointing) and write ``metrics.jsonl``, the best and last adapters
and resumable checkpoints into ``O``.

How resume is made exact, not approximate. ``train()`` keeps three things we cannot reach from
outside: its batch generator, NumPy's global RNG that shuffles it, and its iteration counter.
So we hand ``train()`` what it allows us to hand it:

- ``iterate_batches``: a :class:`~mlx_persona.train.batches.BatchOrder` stream, mlx_lm's batching
  and shuffling with its RNG state and position in the open (validation passes draw from the
  same RNG, in the same sequence as mlx_lm, so a run matches ``mlx_lm lora`` batch for batch);
- ``training_callback`` with ``steps_per_report=1``: after every step we aggregate the report
  window, run validation at mlx_lm's cadence (``evaluate()``, before step 1, before every
  ``steps_per_eval``-th step, and once more after the last), keep the best adapter, stop early,
  and write checkpoints (adapter, optimizer state with the schedule's step, MLX PRNG key, data
  order, window sums) every ``save_every`` steps;
- ``val_dataset=None``: we run validation ourselves, so no evaluation depends on ``train()``'s
  counter, which restarts at 1 on resume. The only other use of that counter is gradient
  accumulation, and checkpoints fall on multiples of ``grad_accumulation_steps``.

A resumed run restores all of it and calls ``train()`` for the remaining steps: the same batches,
the same updates, the same losses as a run that never stopped (tests/test_sft_resume.py).
Iterations in metrics count finished optimizer steps: ``val_loss`` at ``iter`` 0 is the base.
"""

from __future__ import annotations

import argparse
import math
import time
import types
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn

from mlx_persona.core import layout
from mlx_persona.core.child import child_main
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json, fingerprint
from mlx_persona.models.head import logits_at, output_head
from mlx_persona.sft.config import SFTConfig
from mlx_persona.train.batches import BatchOrder
from mlx_persona.train.loop import (
    TrainingRun,
    attach_trainable,
    build_optimizer,
    kill_after_var,
    load_base,
)
from mlx_persona.train.ranks import env_rank, mark_terminated_on_sigterm, rank_and_size, rank_folder, rank_status

KILL_AFTER_VAR = kill_after_var("sft")  # test hook (see mlx_persona.train.loop)


def reply_loss(head) -> Callable:
    """mlx_lm's ``default_loss`` with the vocabulary projection on the scored positions only.

    ``loss(model, batch, lengths, positions)``: ``positions`` (B, R) from
    :func:`~mlx_persona.train.batches.scored_positions` names the tokens ``default_loss`` masks in
    (the reply under ``mask_prompt``), 0 in the padding slots. The body runs on every input
    token; the head (``head`` = (body, lm_head), :func:`~mlx_persona.models.head.output_head`)
    only where a token is scored, so the prompt's (tokens x vocab) logits are never built. Same
    value as ``default_loss`` (``tests/test_sft.py``: the same losses as ``mlx_lm lora``)."""

    def loss(model, batch, lengths, positions):
        scored = positions > 0
        at = mx.maximum(positions, 1)  # padding slots point at a real position, then count 0
        ce = nn.losses.cross_entropy(*logits_at(head, batch, at)) * scored
        ntoks = scored.sum()
        return ce.astype(mx.float32).sum() / ntoks, ntoks

    return loss


class EarlyStop(Exception):
    """Raised from the callback to leave mlx_lm's ``train()`` loop."""


def data_fingerprint(data_dir: Path) -> str:
    return fingerprint(*[(data_dir / layout.split_file(s)).read_bytes() for s in ("train", "valid")])


class SFTRun(TrainingRun):
    """mlx_lm's ``train()`` steps; this callback keeps the counters, reports, validates and
    checkpoints (:class:`~mlx_persona.train.loop.TrainingRun`)."""

    stage = "sft"

    def __init__(self, model, optimizer, order, val_set, cfg, iters, out, fingerprints, log, loss):
        super().__init__(cfg, iters, out, fingerprints, log)
        self.model, self.optimizer, self.order, self.val_set = model, optimizer, order, val_set
        self.loss = loss  # reply_loss, or mlx_lm's default_loss for a model without a separable head
        self.offset = 0  # iterations done before the current train() call

    # -- the callback mlx_lm's train() calls after every step (steps_per_report=1)
    def on_train_loss_report(self, info: dict) -> None:
        k = self.iteration = self.offset + info["iteration"]
        step_time = 1.0 / info["iterations_per_second"]
        w = self.window
        w["loss"] += info["train_loss"]
        w["steps"] += 1
        w["tokens"] += info["tokens_per_second"] * step_time
        w["time"] += step_time
        if k % self.cfg.steps_per_report == 0 or k == self.iters:
            if not math.isfinite(w["loss"]):
                raise PersonaError(
                    f"train loss is {w['loss']} by step {k}: lower learning_rate, or check that "
                    f"mask_prompt with max_seq_length={self.cfg.max_seq_length} leaves reply tokens"
                )
            self.trained_tokens += w["tokens"]
            self.metrics.write(
                iter=k,
                train_loss=w["loss"] / w["steps"],
                lr=info["learning_rate"],
                tokens_per_sec=w["tokens"] / w["time"],
                sec_per_step=w["time"] / w["steps"],  # a step: one global batch, over all ranks
                ranks=self.order.size,
                peak_memory_gb=round(info["peak_memory"], 4),
                trained_tokens=int(self.trained_tokens),
                elapsed=self.elapsed(),
            )
            self.window = self.empty_window()
        if k == self.iters or ((k + 1) % self.cfg.steps_per_eval == 0 and k + 1 < self.iters):
            self.run_validation(k)
        self.after_step(k)
        if self.stopped_early:
            raise EarlyStop()

    def on_val_loss_report(self, info: dict) -> None:  # train() never validates: val_dataset=None
        pass

    def run_validation(self, k: int) -> None:
        from mlx_lm.tuner.trainer import evaluate

        tic = time.perf_counter()
        val_loss = evaluate(
            self.model,
            self.val_set,
            batch_size=self.cfg.batch_size,
            num_batches=self.cfg.val_batches,
            max_seq_length=self.cfg.max_seq_length,
            loss=self.loss,
            iterate_batches=self.order.eval_batches,
        )
        self.model.train()
        if not math.isfinite(val_loss):
            raise PersonaError(
                f"validation loss is {val_loss} at step {k}: some conversations have no tokens to "
                f"score (mask_prompt with max_seq_length={self.cfg.max_seq_length} truncates the reply away?)"
            )
        self.record_validation(k, val_loss, tic)


def run_sft(
    model_dir: Path, data_dir: Path, out: Path, cfg: SFTConfig, resume: bool = False, log: Callable = print
) -> dict:
    """Train; return the summary also written to ``out/status.json``."""
    from mlx_lm.tuner.datasets import CacheDataset, load_dataset
    from mlx_lm.tuner.trainer import TrainingArgs, default_loss, train

    model_dir, data_dir, out = Path(model_dir), Path(data_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_base(model_dir, cfg, log)
    args = types.SimpleNamespace(
        data=str(data_dir), train=True, test=False, mask_prompt=cfg.mask_prompt, hf_dataset=False
    )
    try:
        train_set, val_set, _ = (CacheDataset(s) if len(s) else s for s in load_dataset(args, tokenizer))
    except (ValueError, KeyError) as e:
        raise PersonaError(f"{data_dir}: {e}") from None
    if len(val_set) < cfg.batch_size:
        raise PersonaError(
            f"{data_dir}/valid.jsonl: needs at least batch_size={cfg.batch_size} conversations, has {len(val_set)}"
        )
    iters = cfg.resolve_iters(len(train_set))
    head = output_head(model)  # before the adapters (no dropout yet): the loss projects scored positions only
    attach_trainable(model, cfg)
    optimizer = build_optimizer(cfg, iters)
    try:
        order = BatchOrder(train_set, cfg.batch_size, cfg.max_seq_length, cfg.seed)
    except ValueError as e:
        raise PersonaError(f"{data_dir}/train.jsonl: {e}") from None
    order.rank, order.size = rank_and_size()  # mlx_lm's train() averages the gradients over ranks
    order.positions = head is not None
    loss = reply_loss(head) if head is not None else default_loss
    if cfg.batch_size % order.size:
        raise PersonaError(f"sft.batch_size={cfg.batch_size} must be divisible by the {order.size} ranks")
    fingerprints = {
        "config_fingerprint": fingerprint(cfg.to_dict(), iters),
        "data_fingerprint": data_fingerprint(data_dir),
        "model_fingerprint": fingerprint((model_dir / layout.MODEL_CONFIG).read_bytes()),
    }
    run = SFTRun(model, optimizer, order, val_set, cfg, iters, out, fingerprints, log, loss)

    run.begin(resume, model_dir)

    if run.iteration == 0:
        model.train()
        run.run_validation(0)  # the base's val loss; also mlx_lm's "before step 1" validation
    if run.iteration < iters and not run.stopped_early:
        run.offset = run.iteration
        targs = TrainingArgs(
            batch_size=cfg.batch_size,
            iters=iters - run.iteration,
            val_batches=cfg.val_batches,
            steps_per_report=1,
            steps_per_eval=iters + 1,
            steps_per_save=iters + 1,
            max_seq_length=cfg.max_seq_length,
            adapter_file=str(out / layout.MLX_LM_SCRATCH),
            grad_checkpoint=cfg.grad_checkpoint,
            grad_accumulation_steps=cfg.grad_accumulation_steps,
        )
        try:
            train(
                model,
                optimizer,
                train_set,
                val_dataset=None,
                args=targs,
                loss=loss,
                iterate_batches=order.train_batches,
                training_callback=run,
            )
        except EarlyStop:
            pass
        (out / layout.MLX_LM_SCRATCH).unlink(missing_ok=True)
    summary = run.finish()
    atomic_write_json(out / layout.STATUS, summary)
    log(
        f"sft {summary['state']}: {summary['iteration']}/{iters} steps, best val loss "
        f"{summary['best_val_loss']:.4f} at iteration {summary['best_iter']}"
    )
    return summary


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m mlx_persona.sft", description="SFT stage (child process).")
    p.add_argument("--model", required=True, help="Local MLX model folder (already resolved).")
    p.add_argument("--data", required=True, help="Folder with train.jsonl and valid.jsonl (mlx_lm chat JSONL).")
    p.add_argument("--out", required=True, help="Stage folder: metrics, adapters, checkpoints.")
    p.add_argument("--config", help="YAML/JSON file with the sft settings.")
    p.add_argument("--resume", action="store_true", help="Continue from the last checkpoint in --out.")
    return p


def main(argv=None) -> None:
    a = build_parser().parse_args(argv)
    out, rank = Path(a.out), env_rank()

    def work() -> None:
        cfg = SFTConfig.load(Path(a.config) if a.config else None)
        mine = rank_folder(out, rank)  # only rank 0 writes the stage folder
        mark_terminated_on_sigterm(out, rank)
        run_sft(Path(a.model), Path(a.data), mine, cfg, resume=a.resume, log=lambda m: print(m, flush=True))

    child_main(work, rank_status(out, rank))  # a user mistake: into status.json for the parent, exit 1


if __name__ == "__main__":
    main()
