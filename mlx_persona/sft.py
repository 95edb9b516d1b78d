"""SFT stage, child process: ``python -m mlx_persona.sft --model M --data D --out O --config C``.

The story: load the base (dequantized to float32 on MLX's CPU backend), load the chat JSONL with
mlx_lm's ``load_dataset``, attach LoRA/DoRA layers with mlx_lm's ``linear_to_lora_layers`` (or
unfreeze whole layers for ``full``), then run **mlx_lm's own** ``train()`` (its compiled step,
gradient accumulation and checkpointing) and write ``metrics.jsonl``, the best and last adapters
and resumable checkpoints into ``O``.

How resume is made exact, not approximate. ``train()`` keeps three things we cannot reach from
outside: its batch generator, NumPy's global RNG that shuffles it, and its iteration counter.
So we hand ``train()`` what it allows us to hand it:

- ``iterate_batches``: a :class:`~mlx_persona.sft_data.BatchOrder` stream, mlx_lm's batching
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
import hashlib
import json
import math
import os
import signal
import sys
import time
import types
from pathlib import Path
from typing import Callable

import mlx.core as mx
import mlx.optimizers as optim

from .errors import PersonaError
from .runs import atomic_dir, atomic_write_json, atomic_write_text
from .sft_checkpoint import latest_checkpoint, read_state, restore_checkpoint, save_checkpoint, save_weights, trainable_weights
from .sft_config import SFTConfig
from .sft_data import BatchOrder

KILL_AFTER_VAR = "MLX_PERSONA_SFT_KILL_AFTER"  # test hook: SIGKILL ourselves after step N
OPTIMIZERS = {"adam": optim.Adam, "adamw": optim.AdamW, "sgd": optim.SGD, "adafactor": optim.Adafactor, "muon": optim.Muon}


class EarlyStop(Exception):
    """Raised from the callback to leave mlx_lm's ``train()`` loop."""


def fingerprint(*parts) -> str:
    h = hashlib.sha256()
    for p in parts:
        h.update(p if isinstance(p, bytes) else json.dumps(p, sort_keys=True).encode())
    return h.hexdigest()[:16]


def data_fingerprint(data_dir: Path) -> str:
    return fingerprint(*[(data_dir / f"{s}.jsonl").read_bytes() for s in ("train", "valid")])


def load_base(model_dir: Path, cfg: SFTConfig, log: Callable):
    """mlx_lm's loader; a quantized base becomes float32 on the CPU backend (4-bit is slow there)."""
    from mlx_lm import load
    from mlx_lm.utils import dequantize_model

    model, tokenizer, config = load(str(model_dir), return_config=True)
    quantized = "quantization" in config or "quantization_config" in config
    if quantized and cfg.dequantize_on_cpu and mx.default_device().type == mx.DeviceType.cpu:
        bits = (config.get("quantization") or {}).get("bits", "?")
        log(f"base is {bits}-bit quantized and MLX runs on the CPU: training on a dequantized float32 copy "
            "(the adapter still loads on the quantized base)")
        model = dequantize_model(model)
        model.set_dtype(mx.float32)
    return model, tokenizer


def attach_trainable(model, cfg: SFTConfig) -> None:
    """Freeze the base; add LoRA/DoRA layers or unfreeze whole layers, as ``mlx_lm lora`` does."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    if cfg.num_layers > len(model.layers):
        raise PersonaError(f"sft.num_layers: the model has {len(model.layers)} layers, asked for {cfg.num_layers}")
    mx.random.seed(cfg.seed)  # same point as mlx_lm: the LoRA init draws from this
    model.freeze()
    if cfg.fine_tune_type == "full":
        for layer in model.layers[-max(cfg.num_layers, 0):]:
            layer.unfreeze()
    else:
        try:
            linear_to_lora_layers(model, cfg.num_layers, cfg.lora_parameters(), use_dora=cfg.fine_tune_type == "dora")
        except ValueError as e:
            raise PersonaError(f"sft: cannot attach {cfg.fine_tune_type} layers: {e}") from None


def build_optimizer(cfg: SFTConfig, iters: int):
    from mlx_lm.tuner.utils import build_schedule

    sched = cfg.lr_schedule_config(iters)
    lr = build_schedule(sched) if sched else cfg.learning_rate
    try:
        return OPTIMIZERS[cfg.optimizer](learning_rate=lr, **cfg.optimizer_config)
    except TypeError as e:
        raise PersonaError(f"sft.optimizer_config: {e}") from None


def adapter_config(cfg: SFTConfig, model_dir: Path, iters: int) -> dict:
    """What ``mlx_lm.load(..., adapter_path=...)`` reads, plus our full settings for the record."""
    return {"model": str(model_dir), "fine_tune_type": cfg.fine_tune_type, "num_layers": cfg.num_layers,
            "lora_parameters": cfg.lora_parameters(), "iters": iters, "persona_sft": cfg.to_dict()}


class Metrics:
    """Appends one JSON object per event to ``metrics.jsonl`` (flushed at once: the parent tails it)."""

    def __init__(self, path: Path, keep_upto: int | None):
        self.path = path
        if keep_upto is None:
            atomic_write_text(path, "")
        else:  # resume: drop what a killed run wrote after its last checkpoint
            lines = path.read_text().splitlines() if path.exists() else []
            kept = [l for l in lines if l.strip() and json.loads(l)["iter"] <= keep_upto]
            atomic_write_text(path, "".join(l + "\n" for l in kept))
        self.f = open(path, "a")

    def write(self, **event) -> None:
        self.f.write(json.dumps(event) + "\n")
        self.f.flush()


class AdapterRun:
    """What the SFT and DPO runs share after each validation and at the end: keep the best
    adapter, count validations without gain for early stopping, write ``last/`` and the final
    checkpoint. Subclasses set model, optimizer, cfg, out, iters, metrics, log and the counters."""

    def record_validation(self, k: int, val_loss: float, tic: float, **extra) -> None:
        improved = val_loss < self.best_val - self.cfg.early_stopping_min_delta
        if improved:
            self.best_val, self.best_iter, self.bad_evals = val_loss, k, 0
            save_weights(self.out / "adapters.safetensors", trainable_weights(self.model))
        else:
            self.bad_evals += 1
        self.metrics.write(iter=k, val_loss=val_loss, **extra, val_time=round(time.perf_counter() - tic, 3),
                           best=improved, elapsed=self.elapsed())
        patience = self.cfg.early_stopping_patience
        if patience and self.bad_evals >= patience and k < self.iters:
            self.log(f"early stop at iteration {k}: no val-loss gain in {patience} validations "
                     f"(best {self.best_val:.4f} at {self.best_iter})")
            self.stopped_early = True

    def finish(self) -> dict:
        """Write ``last/`` and the final checkpoint; return the summary for ``status.json``."""
        with atomic_dir(self.out / "last", overwrite=True) as tmp:
            mx.save_safetensors(str(tmp / "adapters.safetensors"), trainable_weights(self.model))
            (tmp / "adapter_config.json").write_text((self.out / "adapter_config.json").read_text())
        save_checkpoint(self.out, self.iteration, self.model, self.optimizer, self.state())
        return {"state": "stopped_early" if self.stopped_early else "done", "iteration": self.iteration,
                "iters": self.iters, "best_iter": self.best_iter, "best_val_loss": self.best_val, "elapsed": self.elapsed()}


class SFTRun(AdapterRun):
    """The state that outlives one ``train()`` call: counters, windows, best, early stopping."""

    def __init__(self, model, optimizer, order, val_set, cfg, iters, out, model_dir, fingerprints, log):
        self.model, self.optimizer, self.order, self.val_set = model, optimizer, order, val_set
        self.cfg, self.iters, self.out, self.log = cfg, iters, out, log
        self.model_dir, self.fingerprints = model_dir, fingerprints
        self.iteration = 0
        self.best_val, self.best_iter, self.bad_evals = float("inf"), -1, 0
        self.window = {"loss": 0.0, "steps": 0, "tokens": 0.0, "time": 0.0}
        self.trained_tokens = 0.0
        self.elapsed_before, self.t0 = 0.0, time.perf_counter()
        self.offset = 0  # iterations done before the current train() call
        self.stopped_early = False
        self.kill_after = int(os.environ.get(KILL_AFTER_VAR, "0") or 0)

    # -- bookkeeping that a checkpoint carries
    def state(self) -> dict:
        return {"best_val": self.best_val, "best_iter": self.best_iter, "bad_evals": self.bad_evals,
                "window": self.window, "trained_tokens": self.trained_tokens, "elapsed": self.elapsed(),
                "order": self.order.state(), "stopped_early": self.stopped_early, **self.fingerprints}

    def load(self, state: dict) -> None:
        for key, theirs in self.fingerprints.items():
            if state.get(key) != theirs:
                what = key.split("_")[0]
                raise PersonaError(f"the checkpoint in {self.out} was made with a different {what}; "
                                   "resume with the same settings or start a new --out")
        self.iteration = state["iteration"]
        self.best_val, self.best_iter, self.bad_evals = state["best_val"], state["best_iter"], state["bad_evals"]
        self.window, self.trained_tokens = state["window"], state["trained_tokens"]
        self.elapsed_before, self.stopped_early = state["elapsed"], state["stopped_early"]
        self.order.load_state(state["order"])

    def elapsed(self) -> float:
        return round(self.elapsed_before + time.perf_counter() - self.t0, 3)

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
                raise PersonaError(f"train loss is {w['loss']} by step {k}: lower learning_rate, or check that "
                                   f"mask_prompt with max_seq_length={self.cfg.max_seq_length} leaves reply tokens")
            self.trained_tokens += w["tokens"]
            self.metrics.write(iter=k, train_loss=w["loss"] / w["steps"], lr=info["learning_rate"],
                               tokens_per_sec=w["tokens"] / w["time"], peak_memory_gb=round(info["peak_memory"], 4),
                               trained_tokens=int(self.trained_tokens), elapsed=self.elapsed())
            self.window = {"loss": 0.0, "steps": 0, "tokens": 0.0, "time": 0.0}
        if k == self.iters or ((k + 1) % self.cfg.steps_per_eval == 0 and k + 1 < self.iters):
            self.validate(k)
        if k % self.cfg.save_every == 0 and k < self.iters:
            save_checkpoint(self.out, k, self.model, self.optimizer, self.state())
        if k == self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)
        if self.stopped_early:
            raise EarlyStop()

    def on_val_loss_report(self, info: dict) -> None:  # train() never validates: val_dataset=None
        pass

    def validate(self, k: int) -> None:
        from mlx_lm.tuner.trainer import evaluate

        tic = time.perf_counter()
        val_loss = evaluate(self.model, self.val_set, batch_size=self.cfg.batch_size, num_batches=self.cfg.val_batches,
                            max_seq_length=self.cfg.max_seq_length, iterate_batches=self.order.eval_batches)
        self.model.train()
        if not math.isfinite(val_loss):
            raise PersonaError(f"validation loss is {val_loss} at step {k}: some conversations have no tokens to "
                               f"score (mask_prompt with max_seq_length={self.cfg.max_seq_length} truncates the reply away?)")
        self.record_validation(k, val_loss, tic)


def run_sft(model_dir: Path, data_dir: Path, out: Path, cfg: SFTConfig, resume: bool = False,
            log: Callable = print) -> dict:
    """Train; return the summary also written to ``out/status.json``."""
    from mlx_lm.tuner.datasets import CacheDataset, load_dataset
    from mlx_lm.tuner.trainer import TrainingArgs, train

    model_dir, data_dir, out = Path(model_dir), Path(data_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_base(model_dir, cfg, log)
    args = types.SimpleNamespace(data=str(data_dir), train=True, test=False, mask_prompt=cfg.mask_prompt, hf_dataset=False)
    try:
        train_set, val_set, _ = (CacheDataset(s) if len(s) else s for s in load_dataset(args, tokenizer))
    except (ValueError, KeyError) as e:
        raise PersonaError(f"{data_dir}: {e}") from None
    if len(val_set) < cfg.batch_size:
        raise PersonaError(f"{data_dir}/valid.jsonl: needs at least batch_size={cfg.batch_size} conversations, has {len(val_set)}")
    iters = cfg.resolve_iters(len(train_set))
    attach_trainable(model, cfg)
    optimizer = build_optimizer(cfg, iters)
    try:
        order = BatchOrder(train_set, cfg.batch_size, cfg.max_seq_length, cfg.seed)
    except ValueError as e:
        raise PersonaError(f"{data_dir}/train.jsonl: {e}") from None
    prints = {"config_fingerprint": fingerprint(cfg.to_dict(), iters),
              "data_fingerprint": data_fingerprint(data_dir),
              "model_fingerprint": fingerprint((model_dir / "config.json").read_bytes())}
    run = SFTRun(model, optimizer, order, val_set, cfg, iters, out, model_dir, prints, log)

    ckpt = latest_checkpoint(out) if resume else None
    if ckpt is not None:
        run.load(read_state(ckpt))
        restore_checkpoint(ckpt, model, optimizer)
        log(f"resuming from checkpoint at iteration {run.iteration} of {iters}")
    else:
        atomic_write_json(out / "adapter_config.json", adapter_config(cfg, model_dir, iters))
    run.metrics = Metrics(out / "metrics.jsonl", keep_upto=run.iteration if ckpt is not None else None)
    status = {"state": "running", "iteration": run.iteration, "iters": iters, "pid": os.getpid()}
    atomic_write_json(out / "status.json", status)

    if run.iteration == 0:
        model.train()
        run.validate(0)  # the base's val loss; also mlx_lm's "before step 1" validation
    if run.iteration < iters and not run.stopped_early:
        run.offset = run.iteration
        targs = TrainingArgs(batch_size=cfg.batch_size, iters=iters - run.iteration, val_batches=cfg.val_batches,
                             steps_per_report=1, steps_per_eval=iters + 1, steps_per_save=iters + 1,
                             max_seq_length=cfg.max_seq_length, adapter_file=str(out / ".mlx_lm_scratch.safetensors"),
                             grad_checkpoint=cfg.grad_checkpoint, grad_accumulation_steps=cfg.grad_accumulation_steps)
        try:
            train(model, optimizer, train_set, val_dataset=None, args=targs,
                  iterate_batches=order.train_batches, training_callback=run)
        except EarlyStop:
            pass
        (out / ".mlx_lm_scratch.safetensors").unlink(missing_ok=True)
    summary = run.finish()
    atomic_write_json(out / "status.json", summary)
    log(f"sft {summary['state']}: {summary['iteration']}/{iters} steps, best val loss "
        f"{summary['best_val_loss']:.4f} at iteration {summary['best_iter']}")
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
    out = Path(a.out)
    try:
        cfg = SFTConfig.load(Path(a.config) if a.config else None)
        run_sft(Path(a.model), Path(a.data), out, cfg, resume=a.resume, log=lambda m: print(m, flush=True))
    except PersonaError as e:  # the parent relays this line; the stage folder keeps its state
        print(f"error: {e.message}", file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    main()
