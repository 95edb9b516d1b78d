"""What the SFT and DPO training runs share: the base model, the trainable adapter, the optimizer,
``metrics.jsonl``, and :class:`TrainingRun`, the bookkeeping a checkpoint carries.

The story of a training stage (``sft/train.py``, ``dpo/train.py``): :func:`load_base`,
:func:`attach_trainable`, :func:`build_optimizer`; a :class:`TrainingRun` subclass resumes or
starts (:meth:`TrainingRun.begin`), steps, reports to :class:`Metrics`, calls
:meth:`TrainingRun.record_validation` after each validation (best adapter, early stopping) and
:meth:`TrainingRun.after_step` after each step (checkpoints), and :meth:`TrainingRun.finish` at
the end. Everything :meth:`TrainingRun.state` returns goes into the checkpoint, so a resumed run
is the run that never stopped.
"""

from __future__ import annotations

import json
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.optimizers as optim

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_dir, atomic_write_json, atomic_write_text
from mlx_persona.train.checkpoint import (
    latest_checkpoint,
    read_state,
    restore_checkpoint,
    save_checkpoint,
    save_weights,
    trainable_weights,
)
from mlx_persona.train.config import TrainConfig

OPTIMIZERS = {
    "adam": optim.Adam,
    "adamw": optim.AdamW,
    "sgd": optim.SGD,
    "adafactor": optim.Adafactor,
    "muon": optim.Muon,
}


def kill_after_var(stage: str) -> str:
    """Test-only hook: with ``MLX_PERSONA_<STAGE>_KILL_AFTER=N`` set, the stage SIGKILLs itself
    right after step N (the crash tests of resume). Read in one place, :meth:`TrainingRun.after_step`."""
    return f"MLX_PERSONA_{stage.upper()}_KILL_AFTER"


def load_base(model_dir: Path, cfg: TrainConfig, log: Callable, purpose: str = "training"):
    """mlx_lm's loader; a quantized base becomes float32 on the CPU backend (4-bit is slow there).

    ``purpose`` only words the log line ("training", "evaluating").
    """
    from mlx_lm import load
    from mlx_lm.utils import dequantize_model

    from mlx_persona.models.generate import stop_at_end_of_text

    model, tokenizer, config = load(str(model_dir), return_config=True)
    stop_at_end_of_text(tokenizer)  # the twin probe and the evaluation generate with it
    quantized = "quantization" in config or "quantization_config" in config
    if quantized and cfg.dequantize_on_cpu and mx.default_device().type == mx.DeviceType.cpu:
        bits = (config.get("quantization") or {}).get("bits", "?")
        log(
            f"base is {bits}-bit quantized and MLX runs on the CPU: {purpose} on a dequantized float32 copy"
            + (" (the adapter still loads on the quantized base)" if purpose == "training" else "")
        )
        model = dequantize_model(model)
        model.set_dtype(mx.float32)
    return model, tokenizer


def attach_trainable(model, cfg: TrainConfig) -> None:
    """Freeze the base; add LoRA/DoRA layers or unfreeze whole layers, as ``mlx_lm lora`` does."""
    from mlx_lm.tuner.utils import linear_to_lora_layers

    if cfg.num_layers > len(model.layers):
        raise PersonaError(
            f"{cfg.block}.num_layers: the model has {len(model.layers)} layers, asked for {cfg.num_layers}"
        )
    mx.random.seed(cfg.seed)  # same point as mlx_lm: the LoRA init draws from this
    model.freeze()
    if cfg.fine_tune_type == "full":
        for layer in model.layers[-max(cfg.num_layers, 0) :]:
            layer.unfreeze()
    else:
        try:
            linear_to_lora_layers(model, cfg.num_layers, cfg.lora_parameters(), use_dora=cfg.fine_tune_type == "dora")
        except ValueError as e:
            raise PersonaError(f"{cfg.block}: cannot attach {cfg.fine_tune_type} layers: {e}") from None


def build_optimizer(cfg: TrainConfig, iters: int):
    from mlx_lm.tuner.utils import build_schedule

    sched = cfg.lr_schedule_config(iters)
    lr = build_schedule(sched) if sched else cfg.learning_rate
    try:
        return OPTIMIZERS[cfg.optimizer](learning_rate=lr, **cfg.optimizer_config)
    except TypeError as e:
        raise PersonaError(f"{cfg.block}.optimizer_config: {e}") from None


def adapter_config(cfg: TrainConfig, model_dir: Path, iters: int) -> dict:
    """What ``mlx_lm.load(..., adapter_path=...)`` reads, plus our full settings for the record."""
    return {
        "model": str(model_dir),
        "fine_tune_type": cfg.fine_tune_type,
        "num_layers": cfg.num_layers,
        "lora_parameters": cfg.lora_parameters(),
        "iters": iters,
        f"persona_{cfg.block}": cfg.to_dict(),
    }


class Metrics:
    """Appends one JSON object per event to ``metrics.jsonl`` (flushed at once: the parent tails it)."""

    def __init__(self, path: Path, keep_upto: int | None):
        self.path = path
        if keep_upto is None:
            atomic_write_text(path, "")
        else:  # resume: drop what a killed run wrote after its last checkpoint
            lines = path.read_text().splitlines() if path.exists() else []
            kept = [line for line in lines if line.strip() and json.loads(line)["iter"] <= keep_upto]
            atomic_write_text(path, "".join(line + "\n" for line in kept))
        self.f = open(path, "a")

    def write(self, **event) -> None:
        self.f.write(json.dumps(event) + "\n")
        self.f.flush()


class TrainingRun:
    """The state of an adapter training run that outlives one process: the step counter, the
    report window, the best validation loss and its adapter, early stopping, the data order and
    the input fingerprints. Subclasses set ``model``, ``optimizer``, ``order`` and ``metrics``,
    and define the step and the validation; :meth:`state`/:meth:`load` are what a checkpoint
    carries, identical for SFT and DPO."""

    stage = "sft"  # names the test hook and the log lines

    def __init__(self, cfg: TrainConfig, iters: int, out: Path, fingerprints: dict, log: Callable):
        self.cfg, self.iters, self.out, self.fingerprints, self.log = cfg, iters, Path(out), fingerprints, log
        self.iteration = 0
        self.best_val, self.best_iter, self.bad_evals = float("inf"), -1, 0
        self.best_measure = None  # the kept validation's measure, when the stage selects by one
        self.window = self.empty_window()
        self.trained_tokens = 0.0
        self.elapsed_before, self.t0 = 0.0, time.perf_counter()
        self.stopped_early = False
        self.kill_after = int(os.environ.get(kill_after_var(self.stage), "0") or 0)
        if os.environ.get("MLX_PERSONA_KILL_RANK", os.environ.get("MLX_RANK", "0")) != os.environ.get("MLX_RANK", "0"):
            self.kill_after = 0  # the hook kills one rank only (MLX_PERSONA_KILL_RANK)

    @staticmethod
    def empty_window() -> dict:
        """Sums over the steps since the last train report."""
        return {"loss": 0.0, "steps": 0, "tokens": 0.0, "time": 0.0}

    def begin(self, resume: bool, model_dir: Path) -> None:
        """Continue from the latest checkpoint (on ``resume``, when there is one) or start fresh
        (write ``adapter_config.json``); open ``metrics.jsonl``, cut back to the checkpoint on a
        resume, and mark ``status.json`` running for the parent."""
        ckpt = latest_checkpoint(self.out) if resume else None
        if ckpt is not None:
            self.load(read_state(ckpt))
            restore_checkpoint(ckpt, self.model, self.optimizer)
            self.log(f"resuming from checkpoint at step {self.iteration} of {self.iters}")
        else:
            atomic_write_json(self.out / layout.ADAPTER_CONFIG, adapter_config(self.cfg, model_dir, self.iters))
        self.metrics = Metrics(self.out / layout.STAGE_METRICS, keep_upto=self.iteration if ckpt is not None else None)
        status = {"state": "running", "iteration": self.iteration, "iters": self.iters, "pid": os.getpid()}
        atomic_write_json(self.out / layout.STATUS, status)

    # -- what a checkpoint carries
    def state(self) -> dict:
        return {
            "best_val": self.best_val,
            "best_iter": self.best_iter,
            "bad_evals": self.bad_evals,
            "best_measure": self.best_measure,
            "window": self.window,
            "trained_tokens": self.trained_tokens,
            "elapsed": self.elapsed(),
            "order": self.order.state(),
            "stopped_early": self.stopped_early,
            **self.fingerprints,
        }

    def load(self, state: dict) -> None:
        for key, theirs in self.fingerprints.items():
            if state.get(key) != theirs:
                what = key.split("_")[0]
                raise PersonaError(
                    f"the checkpoint in {self.out} was made with a different {what}; "
                    "resume with the same settings or start a new --out"
                )
        self.iteration = state["iteration"]
        self.best_val, self.best_iter, self.bad_evals = state["best_val"], state["best_iter"], state["bad_evals"]
        self.best_measure = state.get("best_measure")
        self.window, self.trained_tokens = state["window"], state["trained_tokens"]
        self.elapsed_before, self.stopped_early = state["elapsed"], state["stopped_early"]
        self.order.load_state(state["order"])

    def elapsed(self) -> float:
        return round(self.elapsed_before + time.perf_counter() - self.t0, 3)

    # -- after each validation, each step, and at the end
    def record_validation(self, k: int, val_loss: float, tic: float, measure: float | None = None, **extra) -> None:
        """Keep the adapter when this validation is the best so far; count validations without gain
        and stop early after ``early_stopping_patience`` of them.

        Best is the lowest ``val_loss``, or, when the stage passes a ``measure`` (higher is better,
        e.g. :func:`mlx_persona.train.select.twin_score`'s score), the highest measure; either way
        it must beat the best by more than ``early_stopping_min_delta``. ``best_val`` is then the
        kept adapter's validation loss. The measure and its parts go to ``metrics.jsonl`` in
        ``extra``, beside the loss."""
        if measure is None:
            improved = val_loss < self.best_val - self.cfg.early_stopping_min_delta
        else:
            improved = self.best_measure is None or measure > self.best_measure + self.cfg.early_stopping_min_delta
        if improved:
            self.best_val, self.best_measure, self.best_iter, self.bad_evals = val_loss, measure, k, 0
            save_weights(self.out / layout.ADAPTER_WEIGHTS, trainable_weights(self.model))
        else:
            self.bad_evals += 1
        self.metrics.write(
            iter=k,
            val_loss=val_loss,
            **extra,
            val_time=round(time.perf_counter() - tic, 3),
            best=improved,
            elapsed=self.elapsed(),
        )
        patience = self.cfg.early_stopping_patience
        if patience and self.bad_evals >= patience and k < self.iters:
            what, best = ("val-loss", self.best_val) if measure is None else ("measure", self.best_measure)
            self.log(
                f"early stop at iteration {k}: no {what} gain in {patience} validations "
                f"(best {best:.4f} at {self.best_iter})"
            )
            self.stopped_early = True

    def after_step(self, k: int) -> None:
        """A resumable checkpoint every ``save_every`` steps (the final one is :meth:`finish`'s)."""
        if k % self.cfg.save_every == 0 and k < self.iters:
            save_checkpoint(self.out, k, self.model, self.optimizer, self.state())
        if k == self.kill_after:
            os.kill(os.getpid(), signal.SIGKILL)

    def finish(self) -> dict:
        """Write ``last/`` and the final checkpoint; return the summary for ``status.json``."""
        with atomic_dir(self.out / layout.LAST_ADAPTER_DIR, overwrite=True) as tmp:
            mx.save_safetensors(str(tmp / layout.ADAPTER_WEIGHTS), trainable_weights(self.model))
            (tmp / layout.ADAPTER_CONFIG).write_text((self.out / layout.ADAPTER_CONFIG).read_text())
        save_checkpoint(self.out, self.iteration, self.model, self.optimizer, self.state())
        return {
            "state": "stopped_early" if self.stopped_early else "done",
            "iteration": self.iteration,
            "iters": self.iters,
            "best_iter": self.best_iter,
            "best_val_loss": self.best_val,
            "elapsed": self.elapsed(),
        }
