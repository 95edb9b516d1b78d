"""DPO stage, child process: ``python -m mlx_persona.dpo --model FUSED --pairs P --out O --config C``.

The story: load the fused SFT model (one model, no second copy), read and check the pairs
(:mod:`mlx_persona.dpo.data`), score every pair with the model as it is — that *is* the reference
policy — and cache those log-probs (:mod:`mlx_persona.dpo.reference`; SimPO has no reference and
skips this); then attach a fresh LoRA/DoRA adapter (the SFT stage's ``attach_trainable``: its B
matrices start at zero, so at step 0 the policy equals the reference and the sigmoid loss is
exactly log 2), and train it with the losses of :mod:`mlx_persona.dpo.loss`. At each validation the
adapter is kept when it is the best so far: the lowest validation loss; with ``select_by:
preference`` the lowest preference term, with ``select_by: margin`` the highest mean reward margin,
either while the person's validation replies stay as likely as at step 0 (within
``select_max_nll_rise``: :meth:`DPORun.preference_measure`); with ``select_by: last`` the latest
step whose validation pairs do not show the person's replies less likely than at step 0, beyond
``select_max_nll_rise`` and the 95% interval; or with ``select_by: twin``
the best twin measure (:func:`mlx_persona.train.select.twin_score`) of greedy replies to a fixed
slice of validation prompts against the person's real replies (:class:`TwinProbe`), since a lower
DPO loss can mean a shorter, not a better, twin. Outputs in ``O``: ``metrics.jsonl``,
``adapters.safetensors`` (the kept adapter), ``last/``, resumable ``checkpoints/`` (the SFT stage's
format: adapter, optimizer state with the schedule's step, PRNG key, data order, counters),
``rejects.jsonl``, ``status.json``.

Across N ranks (:mod:`mlx_persona.train.ranks`) each rank scores about 1/N of the reference
pairs, trains on B/N pairs of each global batch, and evaluates every N-th validation batch; the
validation sums and counts are added up over the ranks, so every rank sees the one-process
figures and keeps the same adapter. With ``select_by: twin`` rank 0 alone generates and scores
the replies and sends the score to the others.

Why not mlx_lm's ``train()``: its loss sees one sequence at a time; DPO's loss couples the
chosen and rejected sequences of a pair and the cached reference, so the loop is ours (short,
and every piece of state it has is in the checkpoint, hence exact resume).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import mlx.core as mx
import mlx.nn as nn
import numpy as np
from mlx.nn.utils import average_gradients

from mlx_persona.core import layout
from mlx_persona.core.child import child_main
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json, atomic_write_text, fingerprint
from mlx_persona.dpo.config import DPOConfig
from mlx_persona.dpo.data import Pair, PairSet, collate, fixed_batches, load_pairs
from mlx_persona.dpo.logps import shared_prompt_ok
from mlx_persona.dpo.loss import batch_loss, shared_batch_loss
from mlx_persona.dpo.reference import reference_logps
from mlx_persona.models.generate import generate_batched
from mlx_persona.models.head import output_head
from mlx_persona.train.batches import BatchOrder
from mlx_persona.train.loop import (
    TrainingRun,
    attach_trainable,
    build_optimizer,
    kill_after_var,
    load_base,
)
from mlx_persona.train.ranks import (
    env_rank,
    mark_terminated_on_sigterm,
    rank_and_size,
    rank_folder,
    rank_status,
    shard,
    sum_over_ranks,
)
from mlx_persona.train.select import twin_score

KILL_AFTER_VAR = kill_after_var("dpo")  # test hook (see mlx_persona.train.loop)


# ----------------------------------------------------------------------------- the run
class DPORun(TrainingRun):
    """The training loop; what a checkpoint carries is :class:`~mlx_persona.train.loop.TrainingRun`'s."""

    stage = "dpo"

    def __init__(
        self,
        model,
        optimizer,
        sets,
        refs,
        cfg: DPOConfig,
        iters,
        out,
        fingerprints,
        log,
        probe=None,
        ranks=(0, 1),
        head=None,
        shared=False,
    ):
        self.model, self.optimizer, self.sets, self.refs = model, optimizer, sets, refs
        self.probe = probe  # select_by twin: a TwinProbe; None keeps the lowest-loss adapter
        self.start_nll = None  # select_by preference: step 0's NLL of the person's validation replies
        self.start_nlls = None  # select_by last: the same, pair by pair
        self.val_nlls = np.zeros(0)  # the last validation's chosen NLL, pair by pair (evaluate)
        # the shared resumable shuffled order; the loop takes pair indices (next_indices)
        self.order = BatchOrder(sets["train"], cfg.batch_size, cfg.max_seq_length, cfg.seed)
        super().__init__(cfg, iters, out, fingerprints, log)
        self.head = head  # (body, lm_head): reply-only logits (output_head), or None
        self.shared = shared  # the prompt once per pair (run_dpo decides, for the reference pass too)
        self.rank, self.size = ranks  # each rank: its B/N pairs, gradients averaged (train/ranks.py)
        if cfg.batch_size % self.size:
            raise PersonaError(f"dpo.batch_size={cfg.batch_size} must be divisible by the {self.size} ranks")

    def compiled_step(self):
        """One optimizer step as a compiled MLX function (as mlx_lm's trainer does). Built when
        training starts, after a resume has replaced the optimizer state it captures."""
        model, optimizer, cfg = self.model, self.optimizer, self.cfg
        grad_fn = nn.value_and_grad(model, lambda m, *a: batch_loss(m, *a, cfg, self.head))
        state = [model.state, optimizer.state, mx.random.state]

        def step(tokens, starts, lengths, reply_pos, ref):
            (loss, aux), grads = grad_fn(model, tokens, starts, lengths, reply_pos, ref)
            optimizer.update(model, average_gradients(grads))  # mean over ranks; as is on one
            return loss, aux

        return mx.compile(step, inputs=state, outputs=state)

    @staticmethod
    def empty_window() -> dict:
        return {
            "loss": 0.0,
            "chosen": 0.0,
            "rejected": 0.0,
            "correct": 0.0,
            "nll": 0.0,
            "pairs": 0,
            "steps": 0,
            "tokens": 0.0,
            "time": 0.0,
        }

    def batch(self, split: str, idx: list[int]):
        pairs = self.sets[split]
        return (*collate([pairs[i] for i in idx], anchor=self.cfg.rpo_on == "real"), mx.array(self.refs[split][idx]))

    def shared_step(self):
        """One optimizer step with the prompt run once per pair (shapes vary per pair: not compiled)."""
        grad_fn = nn.value_and_grad(
            self.model, lambda m, pairs, ref: shared_batch_loss(m, pairs, ref, self.cfg, self.head)
        )

        def step(idx):
            pairs = self.sets["train"]
            (loss, aux), grads = grad_fn(self.model, [pairs[i] for i in idx], mx.array(self.refs["train"][idx]))
            self.optimizer.update(self.model, average_gradients(grads))
            return loss, aux

        return step

    def train(self) -> None:
        self.model.train()
        if self.shared:
            step = self.shared_step()
        else:
            batched = self.compiled_step()
            step = lambda idx: batched(*self.batch("train", idx))  # noqa: E731
        while self.iteration < self.iters and not self.stopped_early:
            tic = time.perf_counter()
            loss, (cr, rj, nll, ntok) = step(shard(self.order.next_indices(), self.rank, self.size))
            mx.eval(loss, cr, rj, nll, ntok, self.model.trainable_parameters(), self.optimizer.state)
            k = self.iteration = self.iteration + 1
            w, cr, rj = self.window, np.array(cr), np.array(rj)
            w["loss"] += loss.item()
            w["steps"] += 1
            w["pairs"] += len(cr)
            w["chosen"] += float(cr.sum())
            w["rejected"] += float(rj.sum())
            w["correct"] += float((cr > rj).sum())
            w["nll"] += float(np.array(nll).sum())
            w["tokens"] += ntok.item()
            w["time"] += time.perf_counter() - tic
            if k % self.cfg.steps_per_report == 0 or k == self.iters:
                self.report(k)
            if k == self.iters or k % self.cfg.steps_per_eval == 0:
                self.run_validation(k)
            self.after_step(k)

    def report(self, k: int) -> None:
        w, n = self.window, max(self.window["pairs"], 1)
        self.trained_tokens += w["tokens"]
        self.metrics.write(
            iter=k,
            train_loss=w["loss"] / w["steps"],
            reward_chosen=w["chosen"] / n,
            reward_rejected=w["rejected"] / n,
            margin=(w["chosen"] - w["rejected"]) / n,
            accuracy=w["correct"] / n,
            chosen_nll=w["nll"] / n,
            lr=float(self.optimizer.learning_rate),
            tokens_per_sec=w["tokens"] / w["time"],
            sec_per_step=w["time"] / w["steps"],  # a step: one global batch, over all ranks
            ranks=self.size,
            peak_memory_gb=round(mx.get_peak_memory() / 1e9, 4),
            trained_tokens=int(self.trained_tokens),
            elapsed=self.elapsed(),
        )
        self.window = self.empty_window()

    def evaluate(self) -> dict:
        """Loss, rewards, margin and preference accuracy over the validation pairs (fixed order).

        Rank r of N evaluates batches r, r + N, ...; the sums and the pair count are added up
        over the ranks, so every rank returns the figures of one process that ran them all."""
        pairs = self.sets["valid"]
        batches = fixed_batches(len(pairs), self.cfg.batch_size, [len(p) for p in pairs])
        if self.cfg.val_batches > 0:
            batches = batches[: self.cfg.val_batches]
        tot = np.zeros(6)  # loss x pairs, pairs, chosen, rejected, correct, chosen nll: sums over pairs
        each = np.zeros((2, len(pairs)))  # per pair: evaluated (1), chosen nll; other ranks' columns 0
        self.model.eval()
        for idx in batches[self.rank :: self.size]:
            if self.shared:  # as the training step scores them
                ref = mx.array(self.refs["valid"][idx])
                loss, (cr, rj, nll, _) = shared_batch_loss(
                    self.model, [pairs[i] for i in idx], ref, self.cfg, self.head
                )
            else:
                loss, (cr, rj, nll, _) = batch_loss(self.model, *self.batch("valid", idx), self.cfg, self.head)
            mx.eval(loss, cr, rj, nll)
            cr, rj, nll = np.array(cr), np.array(rj), np.array(nll)
            tot += [loss.item() * len(idx), len(idx), cr.sum(), rj.sum(), (cr > rj).sum(), nll.sum()]
            each[:, idx] = [np.ones(len(idx)), nll]
        self.model.train()
        loss, n, chosen, rejected, correct, nll = (float(x) for x in sum_over_ranks(tot, self.size))
        seen, nlls = sum_over_ranks(each, self.size)
        self.val_nlls = nlls[seen > 0]  # for select_by last
        return {
            "val_loss": loss / n,
            "val_reward_chosen": chosen / n,
            "val_reward_rejected": rejected / n,
            "val_margin": (chosen - rejected) / n,
            "val_accuracy": correct / n,
            "val_chosen_nll": nll / n,
        }

    def state(self) -> dict:
        return {**super().state(), "start_nll": self.start_nll, "start_nlls": self.start_nlls}

    def load(self, state: dict) -> None:
        super().load(state)
        self.start_nll, self.start_nlls = state.get("start_nll"), state.get("start_nlls")

    def preference_measure(self, k: int, val: dict) -> float:
        """What ``select_by: preference``, ``margin`` and ``last`` keep (higher is better), or
        -inf where the NLL of the person's validation replies rose more than
        ``select_max_nll_rise`` over step 0's (for ``last``: the whole 95% interval of the rise).

        - ``preference``: minus the validation preference term (the loss without RPO's
          ``rpo_alpha`` x NLL). The NLL anchor keeps training near the person's replies, but it
          grows with every step DPO takes, so the plain loss would keep step 0 whenever the
          margin gains less than the anchor loses; here the anchor is a bound.
        - ``margin``: the mean reward margin of the validation pairs (0 at step 0). The
          preference term is convex in each pair's margin, so margins that spread around an
          unchanged mean raise it: on a few validation pairs it prefers step 0 whenever the
          steps move single pairs both ways. The mean margin asks only whether, on average, the
          held-out chosen replies gained on the rejected ones.
        - ``last``: the step itself (so the latest counts as best), unless the validation pairs
          show that it made the person's replies less likely: the 95% interval of the mean rise
          of their NLL (pair by pair, against step 0's; :func:`mean_interval`) lies wholly above
          the bound. The pairs' margins are not read: they measure DPO's own criterion (the
          twin's nearest reply against its farthest) on a few validation conversations, and on
          the sample personas fell on steps that the test split found no worse than the SFT
          twin beyond its intervals (bench/RESULTS.md). The person's own replies are the ground truth; the steps DPO was
          given stand unless those show harm."""
        preference = val["val_loss"] - self.cfg.rpo_alpha * val["val_chosen_nll"]
        nlls = self.val_nlls
        if self.start_nll is None:  # the first validation is step 0's
            self.start_nll, self.start_nlls = val["val_chosen_nll"], nlls.tolist()
        rise = val["val_chosen_nll"] - self.start_nll
        val.update(val_preference=preference, val_nll_rise=rise)
        if self.cfg.select_by == "last":
            start = np.array(self.start_nlls) if len(self.start_nlls or ()) == len(nlls) else self.start_nll
            rise_low, _ = mean_interval(nlls - start)
            val.update(val_nll_rise_low=rise_low)
            return float("-inf") if rise_low > self.cfg.select_max_nll_rise else float(k)
        if rise > self.cfg.select_max_nll_rise:
            return float("-inf")
        return val["val_margin"] if self.cfg.select_by == "margin" else -preference

    def run_validation(self, k: int) -> None:
        tic = time.perf_counter()
        val = self.evaluate()
        measure = None
        if self.cfg.select_by in ("preference", "margin", "last"):
            measure = self.preference_measure(k, val)
        if self.probe is not None:  # the kept adapter is the best twin, not the lowest loss; both are logged
            twin = {}
            if self.rank == 0:  # one rank generates; the others wait for its score (all keep the same adapter)
                self.model.eval()
                twin = self.probe(self.model)
                self.model.train()
                twin = {name: value.item() if isinstance(value, np.generic) else value for name, value in twin.items()}
            measure = float(sum_over_ranks(np.array([float(twin.get("score", 0.0))]), self.size)[0])
            twin["score"] = measure
            val.update({f"val_twin_{name}": value for name, value in twin.items()})
        self.record_validation(k, val.pop("val_loss"), tic, measure=measure, **val)


def mean_interval(values: np.ndarray, z: float = 1.96) -> tuple[float, float]:
    """The 95% interval of the mean of ``values`` (one per validation pair), by the normal
    approximation: mean ± z x s / sqrt(n), s the sample standard deviation. (0, 0) for no values;
    one value, or values all equal, give an interval of width 0."""
    values = np.asarray(values, dtype=np.float64)
    if values.size == 0:
        return 0.0, 0.0
    mean = float(values.mean())
    half = z * float(values.std(ddof=1)) / np.sqrt(values.size) if values.size > 1 else 0.0
    return mean - half, mean + half


# ----------------------------------------------------------------------------- select_by: twin
class TwinProbe:
    """What ``select_by: twin`` measures at each validation: the model answers a fixed slice of
    validation prompts (greedy, at most ``max_tokens`` tokens: :func:`select_room`;
    ``reference_batch_size`` at a time) and ``measure(generated, real)`` scores its replies against the person's real
    ones (default :func:`mlx_persona.train.select.twin_score`; returns a dict with ``score``,
    higher is better). Greedy decoding draws no random numbers, so resume stays exact."""

    def __init__(
        self, tokenizer, prompts: list[list[int]], real: list[str], cfg: DPOConfig, measure: Callable, max_tokens: int
    ):
        self.tokenizer, self.prompts, self.real, self.cfg, self.measure = tokenizer, prompts, real, cfg, measure
        self.max_tokens = max_tokens

    def __call__(self, model) -> dict:
        replies, _ = generate_batched(
            model, self.tokenizer, self.prompts, self.max_tokens, self.cfg.reference_batch_size
        )
        return self.measure([r.text.strip() for r in replies], self.real)


def select_room(pairs_dir: Path, cfg: DPOConfig) -> tuple[int, str]:
    """How long ``select_by: twin``'s replies may run, and why: ``select_max_tokens`` as set, else
    the room the pairs stage gave its replies (``max_tokens`` in its ``pairs_config.json``, sized
    to the person's replies), else :data:`~mlx_persona.data.stats.ROOM_FLOOR`."""
    from mlx_persona.data.stats import ROOM_FLOOR

    if cfg.select_max_tokens is not None:
        return cfg.select_max_tokens, "dpo.select_max_tokens"
    try:
        room = json.loads((Path(pairs_dir) / layout.stage_config("pairs")).read_text()).get("max_tokens")
    except (OSError, ValueError, AttributeError):
        room = None
    if isinstance(room, int) and room >= 1:
        return room, "as the pairs stage's replies"
    return ROOM_FLOOR, "the pairs stage recorded no reply room"


def twin_slice(pairs_dir: Path, valid: list[Pair], n: int) -> tuple[list[list[int]], list[str]]:
    """Up to ``n`` validation pairs, spread evenly over the file, whose chosen reply is the person's
    own or that carry it (``real``, written beside a ``chosen_from: closest`` pair): (their prompt
    token ids, their real replies). A line with ``chosen_from: twin`` (the pairs stage's mark for a
    generated chosen reply) is passed over; a line without the field counts as real."""
    path = Path(pairs_dir) / layout.VALID_SPLIT
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()  # as load_pairs numbers them
    found = []
    for pair in valid:
        record = json.loads(lines[int(pair.source.rsplit(":", 1)[1]) - 1])
        real = record["chosen"] if record.get("chosen_from", "real") == "real" else record.get("real")
        if real:
            found.append((pair.prompt, real.strip()))
    if not found:
        raise PersonaError(
            f"dpo.select_by: twin needs validation pairs whose chosen reply is the person's own "
            f"(pairs.chosen: real); {path} has none: use select_by: loss"
        )
    step = len(found) / min(n, len(found))
    picked = [found[int(i * step)] for i in range(min(n, len(found)))]
    return [p for p, _ in picked], [r for _, r in picked]


def read_splits(pairs_dir: Path, tokenizer, cfg: DPOConfig, out: Path, log: Callable) -> dict[str, list]:
    """Both splits through the checks of :mod:`mlx_persona.dpo.data`; report lines go to rejects.jsonl."""
    sets, report = {}, []
    for split in ("train", "valid"):
        pairs, problems = load_pairs(
            Path(pairs_dir) / layout.split_file(split), tokenizer, cfg.max_seq_length, anchor=cfg.rpo_on == "real"
        )
        sets[split], report = pairs, report + problems
    atomic_write_text(out / layout.REJECTS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in report))
    for r in report[:20]:
        log(f"{r['source']}: {r['action']}: {r['reason']}")
    if len(report) > 20:
        log(f"... {len(report) - 20} more in {out / layout.REJECTS}")
    if len(sets["train"]) < cfg.batch_size:
        raise PersonaError(
            f"{pairs_dir}/train.jsonl: {len(sets['train'])} usable pairs, fewer than batch_size={cfg.batch_size}"
        )
    if not sets["valid"]:
        raise PersonaError(f"{pairs_dir}/valid.jsonl: no usable pairs to validate on")
    return sets


def run_dpo(
    model_dir: Path,
    pairs_dir: Path,
    out: Path,
    cfg: DPOConfig,
    resume: bool = False,
    log: Callable = print,
    measure: Callable | None = None,
) -> dict:
    """Train the DPO adapter; return the summary also written to ``out/status.json``.

    ``measure``: what ``select_by: twin`` scores replies with (default
    :func:`mlx_persona.train.select.twin_score` with MiniLM; tests pass their own)."""
    model_dir, pairs_dir, out = Path(model_dir), Path(pairs_dir), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    model, tokenizer = load_base(model_dir, cfg, log)
    if cfg.num_layers > len(model.layers):  # before the reference pass, not after it
        raise PersonaError(f"dpo.num_layers: the model has {len(model.layers)} layers, asked for {cfg.num_layers}")
    sets = read_splits(pairs_dir, tokenizer, cfg, out, log)
    probe = None
    if cfg.select_by == "twin":  # before the reference pass: a pairs file without real replies fails fast
        prompts, real = twin_slice(pairs_dir, sets["valid"], cfg.select_prompts)
        room, why = select_room(pairs_dir, cfg)
        probe = TwinProbe(tokenizer, prompts, real, cfg, measure or twin_score, room)
        log(
            f"select_by twin: {len(prompts)} validation prompts answered at each validation, up to {room} tokens ({why})"
        )
    data_fingerprint = fingerprint(*[(pairs_dir / layout.split_file(s)).read_bytes() for s in ("train", "valid")])
    model_fingerprint = fingerprint(
        (model_dir / layout.MODEL_CONFIG).read_bytes(), *sorted(p.name for p in model_dir.glob("*.safetensors"))
    )
    model.eval()
    ranks = rank_and_size()
    head = output_head(model)  # reply-only logits where the model allows it
    # prompt once per pair (reference pass, validation, training); not with checkpointing, whose
    # recomputed blocks would write the shared KV cache a second time in the backward pass
    shared = cfg.share_prompt and not cfg.grad_checkpoint and shared_prompt_ok(model, head)
    scored = 0
    if cfg.loss_type == "simpo":  # reference-free: no reference pass, no cache; the loss never reads these rows
        refs = {s: np.zeros((len(p), 4), np.float32) for s, p in sets.items()}
    else:  # across ranks: each scores its share, all end with the whole cache
        refs, scored = reference_logps(
            model,
            sets,
            cfg.reference_batch_size,
            out,
            head,
            fingerprint(model_fingerprint, data_fingerprint, cfg.max_seq_length),
            log,
            *ranks,
            shared=shared,
        )

    iters = cfg.resolve_iters(len(sets["train"]))
    attach_trainable(model, cfg)  # fresh adapter, B = 0: the policy starts as the reference
    if cfg.grad_checkpoint:  # as mlx_lm's trainer: each block keeps its input only, recomputed in backward
        from mlx_lm.tuner.trainer import grad_checkpoint

        grad_checkpoint(model.layers[0])
    optimizer = build_optimizer(cfg, iters)
    fingerprints = {
        "config_fingerprint": fingerprint(cfg.to_dict(), iters),
        "data_fingerprint": data_fingerprint,
        "model_fingerprint": model_fingerprint,
    }
    run = DPORun(
        model,
        optimizer,
        {s: PairSet(p) for s, p in sets.items()},
        refs,
        cfg,
        iters,
        out,
        fingerprints,
        log,
        probe,
        ranks,
        head,
        shared,
    )
    run.begin(resume, model_dir)
    if run.iteration == 0:
        run.run_validation(0)  # adapter at zero: val loss log 2 (sigmoid), accuracy 0, margin 0
    run.train()
    summary = run.finish()
    summary["reference_pairs_scored"] = scored  # by this process (this rank's share across ranks)
    if probe is not None:
        summary.update(selected_by="twin", best_twin_score=run.best_measure)
        why = f"best twin score {run.best_measure:.4f}, val loss"
    elif cfg.select_by == "preference":
        summary.update(selected_by="preference", best_preference=-run.best_measure)
        why = f"best preference term {-run.best_measure:.4f} within the NLL bound, val loss"
    elif cfg.select_by == "margin":
        summary.update(selected_by="margin", best_margin=run.best_measure)
        why = f"best validation margin {run.best_measure:.4f} within the NLL bound, val loss"
    elif cfg.select_by == "last":
        summary.update(selected_by="last")
        why = "the last step whose validation pairs do not show the person's replies less likely, val loss"
    else:
        why = "best val loss"
    atomic_write_json(out / layout.STATUS, summary)
    log(
        f"dpo {summary['state']}: {summary['iteration']}/{iters} steps, kept the adapter of step {summary['best_iter']} "
        f"({why} {summary['best_val_loss']:.4f})"
    )
    return summary


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m mlx_persona.dpo", description="DPO stage (child process).")
    p.add_argument("--model", required=True, help="The fused SFT model folder (policy start and reference).")
    p.add_argument(
        "--pairs", "--data", dest="pairs", required=True, help="Folder with train.jsonl and valid.jsonl pairs."
    )
    p.add_argument("--out", required=True, help="Stage folder: metrics, adapters, checkpoints, reference cache.")
    p.add_argument("--config", help="YAML/JSON file with the dpo settings (a bare block).")
    p.add_argument("--resume", action="store_true", help="Continue from the last checkpoint in --out.")
    a = p.parse_args(argv)
    rank = env_rank()

    def work() -> None:
        cfg = DPOConfig.load(Path(a.config) if a.config else None)
        mine = rank_folder(Path(a.out), rank)  # only rank 0 writes the stage folder
        mark_terminated_on_sigterm(Path(a.out), rank)
        run_dpo(Path(a.model), Path(a.pairs), mine, cfg, resume=a.resume, log=lambda m: print(m, flush=True))

    child_main(work, rank_status(Path(a.out), rank))  # a user mistake: into status.json for the parent, exit 1


if __name__ == "__main__":
    main()
