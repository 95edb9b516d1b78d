"""The pair generator: (prompt, chosen, rejected) triples for DPO, from the cleaned conversations.

    data/train.jsonl valid.jsonl ──contexts──▶ prompts.jsonl
      ──child: base model, batched──▶ base.jsonl      (rejected: the helpful-assistant voice)
      ──child: fused twin, batched──▶ twin.jsonl      (a generated chosen, or an on-policy rejected)
      ──filters──▶ out/train.jsonl valid.jsonl rejects.jsonl stats.json

- Prompt: every cleaned sample minus its last reply (system line + context turns).
- chosen: the person's real reply (``chosen="real"``, the default; the twin is asked only for
  prompts with no real reply), or always the fused twin's reply (``chosen="twin"``).
- rejected (``rejected_from``): the base model's reply to the same prompt, same sampling
  settings (``base``, the default); or the fused SFT twin's own reply where it is far from the
  person's real one (``twin``: MiniLM cosine below ``twin_max_similarity``). Base rejected
  replies differ from a terse person's in length as much as in voice, so a policy can learn
  "be short" from them; the twin already writes near the person's length and habits, so its
  far-off replies teach what the person would say rather than how long (on-policy
  negatives). ``both`` keeps a base pair and a twin pair for each prompt where each passes the
  filters.
- Filters, each counted in ``stats.json`` and listed in ``rejects.jsonl``: an empty reply, a reply
  cut at ``max_tokens`` (truncated), chosen == rejected, a rejected reply more than
  ``max_length_ratio`` times longer or shorter than the chosen one (length_ratio; off by
  default), a rejected reply that says the same thing as the chosen one (all-MiniLM-L6-v2 cosine
  above ``similarity_threshold``), and a twin reply too close to the real one (twin_close). A
  cut reply is first trimmed back to its last full sentence (``trim_truncated``, ``trimmed``):
  the base model's helpful-assistant replies run long, and dropping every cut one would keep
  only its shortest, least typical replies as rejected. A cut reply with no full sentence is
  dropped as truncated (or kept whole with ``allow_truncated``).
- Split: pairs from ``train.jsonl`` go to train, pairs from ``valid.jsonl`` to valid, so the
  conversation-level split of the clean stage holds (no conversation in both).
- Lengths: ``stats.json`` holds the chosen and rejected word-length distributions (mean,
  p10..p90), the median rejected/chosen ratio and the share of pairs whose rejected reply is the
  longer one, over all pairs and per rejected source. A share near 0 or 1 says length alone
  separates the pair.

Each model generates in its own child process (``python -m mlx_persona.pairs``), so only one
model is in memory at a time. A child appends each finished reply to its JSONL at once; a re-run
skips prompts already answered, so a killed run resumes where it stopped.

Output lines use mlx-lm-lora's DPO layout: ``prompt`` (the last user turn), ``chosen``,
``rejected``, optional ``system``; ``messages`` carries the whole context, which our DPO stage
prefers over ``prompt``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import click

from mlx_persona.core import layout
from mlx_persona.core.child import child_error, child_main
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json, atomic_write_text
from mlx_persona.core.settings import Settings

SPLITS = ("train", "valid")
FILTERS = ("empty", "truncated", "identical", "length_ratio", "too_similar", "twin_close")
REJECTED_FROM = ("base", "twin", "both")
SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s|$)|\n")
MIN_TRIMMED_CHARS = 12  # a trimmed reply shorter than this says too little: dropped as truncated


@dataclass
class PairsConfig(Settings):
    block: ClassVar[str] = "pairs"

    chosen: str = field(
        default="real",
        metadata={
            "help": "real: the person's reply (twin only where none); twin: always the fused twin's.",
            "choices": ("real", "twin"),
        },
    )
    max_tokens: int = field(
        default=128, metadata={"help": "Longest generated reply; a reply cut here counts as truncated and is dropped."}
    )
    temperature: float = field(default=0.7, metadata={"help": "Sampling temperature for both models (0 = greedy)."})
    top_p: float = field(default=0.9, metadata={"help": "Nucleus sampling mass (1 = off)."})
    batch_size: int = field(
        default=8, metadata={"help": "Sequences generated together (8 gave ~4x the tokens/s of one at a time)."}
    )
    similarity_threshold: float = field(
        default=0.9,
        metadata={"help": "Drop a pair whose chosen and rejected have a MiniLM cosine above this (1 = off)."},
    )
    rejected_from: str = field(
        default="base",
        metadata={
            "help": "Who writes the rejected reply: base (the base model's assistant voice), twin (the fused SFT model's own replies far from the person's: on-policy negatives) or both (a base and a twin pair per prompt).",
            "choices": ("base", "twin", "both"),
        },
    )
    twin_max_similarity: float = field(
        default=0.5,
        metadata={
            "help": "rejected_from twin/both: the twin's reply is a rejected example only when its MiniLM cosine with the person's real reply is below this (1 = keep all)."
        },
    )
    max_length_ratio: float = field(
        default=0.0,
        metadata={
            "help": "Drop a pair whose rejected/chosen length in words is above this or below its inverse, so length alone cannot tell them apart (e.g. 2; 0 = off)."
        },
    )
    trim_truncated: bool = field(
        default=True,
        metadata={"help": "Trim a reply cut at max_tokens back to its last full sentence (kept when one remains)."},
    )
    allow_truncated: bool = field(
        default=False,
        metadata={
            "help": "Keep pairs whose generated reply hit max_tokens (a base model's long answer, cut, is still a fine rejected example)."
        },
    )
    max_prompts: int | None = field(
        default=None, metadata={"help": "Use at most this many prompts per split (quick runs)."}
    )
    seed: int = field(default=0, metadata={"help": "Seeds sampling in each child."})

    def validate(self, where: str | None = None) -> None:
        where = where or self.block

        def need(ok, name, why):
            if not ok:
                raise PersonaError(f"{where}.{name}: {why} (got {getattr(self, name)!r})")

        need(self.chosen in ("real", "twin"), "chosen", "must be real or twin")
        need(self.max_tokens >= 1, "max_tokens", "must be at least 1")
        need(self.batch_size >= 1, "batch_size", "must be at least 1")
        need(self.temperature >= 0, "temperature", "must not be negative")
        need(0 < self.top_p <= 1, "top_p", "must be in (0, 1]")
        need(0 <= self.similarity_threshold <= 1, "similarity_threshold", "must be in [0, 1]")
        need(self.rejected_from in REJECTED_FROM, "rejected_from", "must be base, twin or both")
        need(
            self.rejected_from == "base" or self.chosen == "real",
            "rejected_from",
            "twin and both need chosen=real (the twin's reply cannot be chosen and rejected at once)",
        )
        need(0 <= self.twin_max_similarity <= 1, "twin_max_similarity", "must be in [0, 1]")
        need(
            self.max_length_ratio == 0 or self.max_length_ratio >= 1,
            "max_length_ratio",
            "must be 0 (off) or at least 1",
        )
        need(self.max_prompts is None or self.max_prompts >= 1, "max_prompts", "must be at least 1")


# ----------------------------------------------------------------------------- prompts
def read_prompts(data_dir: Path, max_prompts: int | None = None) -> tuple[list[dict], list[dict]]:
    """Prompts from the cleaned splits, and the lines that could not be used (file:line, reason)."""
    prompts, bad = [], []
    for split in SPLITS:
        path = Path(data_dir) / layout.split_file(split)
        if not path.is_file():
            raise PersonaError(f"{path}: missing (run `mlx-persona clean` first)")
        taken = 0
        for lineno, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                msgs = json.loads(line)["messages"]
                ok = isinstance(msgs, list) and all(isinstance(m.get("content"), str) and m.get("role") for m in msgs)
            except (ValueError, KeyError, TypeError, AttributeError):
                ok = False
            if not ok:
                bad.append({"source": where, "reason": "not a chat record with a 'messages' list"})
                continue
            system = msgs[0]["content"] if msgs and msgs[0]["role"] == "system" else None
            turns = msgs[1:] if system is not None else msgs
            real = turns[-1]["content"] if turns and turns[-1]["role"] == "assistant" else None
            context = turns[:-1] if real is not None else turns
            if not context or context[-1]["role"] != "user":
                bad.append({"source": where, "reason": "no user turn before the reply"})
                continue
            if max_prompts is not None and taken >= max_prompts:
                break
            key = json.dumps([split, system, context, real], ensure_ascii=False, sort_keys=True)
            prompts.append(
                {
                    "id": hashlib.sha256(key.encode()).hexdigest()[:16],
                    "split": split,
                    "source": where,
                    "system": system,
                    "messages": context,
                    "real": real,
                }
            )
            taken += 1
    return prompts, bad


def chat_messages(p: dict) -> list[dict]:
    return ([{"role": "system", "content": p["system"]}] if p.get("system") else []) + p["messages"]


def read_replies(path: Path) -> dict[str, dict]:
    """Replies a child already wrote; a torn last line (a killed child) is ignored."""
    done = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                r = json.loads(line)
                done[r["id"]] = r
            except (ValueError, KeyError, TypeError):
                continue
    return done


# ----------------------------------------------------------------------------- the child
def generate_child(
    model_dir: Path,
    prompts_file: Path,
    out_file: Path,
    cfg: PairsConfig,
    only: set | None = None,
    log: Callable = print,
) -> dict:
    """Answer every prompt not yet in ``out_file`` with ``model_dir``; append replies as they finish."""
    import mlx.core as mx
    from mlx_lm import load

    from mlx_persona.models.generate import chat_prompt, generate_batched, make_sampler

    prompts = [json.loads(line) for line in prompts_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    done = read_replies(out_file)
    todo = [p for p in prompts if p["id"] not in done and (only is None or p["id"] in only)]
    if done and out_file.read_bytes()[-1:] != b"\n":  # a killed child left half a line: cut it
        keep = out_file.read_bytes().rsplit(b"\n", 1)[0]
        atomic_write_text(out_file, keep.decode("utf-8", "replace") + "\n")
    log(f"{model_dir.name}: {len(done)} replies on disk, {len(todo)} to generate")
    if not todo:
        return {"generated": 0}
    model, tokenizer = load(str(model_dir))
    mx.random.seed(cfg.seed + len(done))  # a resumed run draws fresh samples, not the same ones again
    ids = [chat_prompt(tokenizer, chat_messages(p)) for p in todo]
    with open(out_file, "a", encoding="utf-8") as f:

        def write(reply):
            p = todo[reply.index]
            f.write(
                json.dumps(
                    {"id": p["id"], "text": reply.text, "finish_reason": reply.finish_reason, "tokens": reply.tokens},
                    ensure_ascii=False,
                )
                + "\n"
            )
            f.flush()

        _, stats = generate_batched(
            model,
            tokenizer,
            ids,
            cfg.max_tokens,
            cfg.batch_size,
            make_sampler(cfg.temperature, cfg.top_p),
            on_reply=write,
        )
    log(
        f"{model_dir.name}: {stats['generated_tokens']} tokens in {stats['seconds']:.1f} s "
        f"({stats['tokens_per_sec']:.1f} tokens/s, batch {cfg.batch_size})"
    )
    return {"generated": len(todo), **stats}


def _run_child(model_dir: Path, out: Path, role: str, only: set | None, log: Callable) -> dict:
    from mlx_persona.core import blas

    cmd = [
        sys.executable,
        "-m",
        "mlx_persona.pairs",
        "--model",
        str(model_dir),
        "--prompts",
        str(out / layout.PAIRS_PROMPTS),
        "--out",
        str(out / layout.replies_file(role)),
        "--config",
        str(out / layout.stage_config("pairs")),
    ]
    if only is not None:
        (out / layout.only_file(role)).write_text(json.dumps(sorted(only)))
        cmd += ["--only", str(out / layout.only_file(role))]
    status = out / layout.STATUS  # where the child records a failure (core/child.py)
    status.unlink(missing_ok=True)
    proc = subprocess.Popen(
        cmd + ["--status", str(status)],
        env=blas.fast_blas_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    stdout, stderr = proc.communicate()
    if proc.returncode == 0:
        for line in stderr.splitlines():
            log(line)
    else:
        why = child_error(status, proc.pid) or " | ".join(stderr.strip().splitlines()[-3:])
        raise PersonaError(f"pairs: the {role} generator failed: {why}")
    return json.loads(stdout.strip().splitlines()[-1]) if stdout.strip() else {}


# ----------------------------------------------------------------------------- assembly + filters
def assemble(
    prompts: list[dict], base: dict, twin: dict, cfg: PairsConfig, similarity: Callable = None
) -> tuple[dict, list[dict], dict]:
    """Apply the filters; return ({split: pairs}, rejects, counts). ``similarity(a, b)`` -> cosines.

    Each prompt gives one candidate pair per rejected source (``rejected_sources``): the base
    model's reply, the twin's, or both. A twin candidate needs the person's real reply as chosen.
    Every candidate passes the filters on its own, in this order: empty, truncated, identical,
    length_ratio (only with ``max_length_ratio``), too_similar, and for a twin candidate
    twin_close (cosine with the real reply at or above ``twin_max_similarity``: the twin said
    what the person said, so it is no negative).
    """
    counts = {**{f: 0 for f in FILTERS}, "trimmed": 0}  # trimmed replies are kept, not filtered
    rejects, kept = [], []

    def drop(p, reason, chosen, rejected, source, **extra):
        counts[reason] += 1
        rejects.append(
            {
                "id": p["id"],
                "source": p["source"],
                "reason": reason,
                "rejected_from": source,
                **extra,
                "chosen": chosen,
                "rejected": rejected,
            }
        )

    for p in prompts:
        use_twin = cfg.chosen == "twin" or p["real"] is None
        chosen = twin.get(p["id"]) if use_twin else {"text": p["real"], "finish_reason": "stop"}
        if chosen is None:
            continue  # not generated (a capped or interrupted run); a re-run fills it in
        if cfg.trim_truncated:
            chosen = trim_reply(chosen)
            counts["trimmed"] += chosen.get("trimmed", False)
        for source in rejected_sources(cfg, has_real=not use_twin):
            rejected = (base if source == "base" else twin).get(p["id"])
            if rejected is None:
                continue
            if cfg.trim_truncated:
                rejected = trim_reply(rejected)
                counts["trimmed"] += rejected.get("trimmed", False)
            reason = None
            if not chosen["text"].strip() or not rejected["text"].strip():
                reason = "empty"
            elif "length" in (chosen["finish_reason"], rejected["finish_reason"]) and not cfg.allow_truncated:
                reason = "truncated"
            elif chosen["text"].strip() == rejected["text"].strip():
                reason = "identical"
            elif not length_ratio_ok(chosen["text"], rejected["text"], cfg.max_length_ratio):
                reason = "length_ratio"
            if reason:
                drop(p, reason, chosen["text"], rejected["text"], source)
            else:
                kept.append(
                    (p, chosen["text"].strip(), rejected["text"].strip(), "twin" if use_twin else "real", source)
                )
    needs_sims = cfg.similarity_threshold < 1 or (cfg.twin_max_similarity < 1 and any(k[4] == "twin" for k in kept))
    if kept and needs_sims and similarity is not None:
        sims = similarity([k[1] for k in kept], [k[2] for k in kept])
    else:
        sims = [0.0] * len(kept)
    pairs = {s: [] for s in SPLITS}
    for (p, chosen, rejected, origin, source), sim in zip(kept, sims):
        sim = round(float(sim), 4)
        if sim > cfg.similarity_threshold:
            drop(p, "too_similar", chosen, rejected, source, similarity=sim)
            continue
        if source == "twin" and sim >= cfg.twin_max_similarity:
            drop(p, "twin_close", chosen, rejected, source, similarity=sim)
            continue
        record = {"prompt": p["messages"][-1]["content"], "chosen": chosen, "rejected": rejected}
        if p.get("system"):
            record["system"] = p["system"]
        record.update(messages=p["messages"], id=p["id"], chosen_from=origin, rejected_from=source, similarity=sim)
        pairs[p["split"]].append(record)
    return pairs, rejects, counts


def rejected_sources(cfg: PairsConfig, has_real: bool) -> tuple[str, ...]:
    """Whose replies are rejected for one prompt: the twin's only against the person's real reply
    (so under ``twin`` a prompt without a real reply gives no pair)."""
    sources = {"base": ("base",), "twin": ("twin",), "both": ("base", "twin")}[cfg.rejected_from]
    return sources if has_real else tuple(s for s in sources if s == "base")


def length_ratio_ok(chosen: str, rejected: str, max_ratio: float) -> bool:
    """``1/r <= words(rejected) / words(chosen) <= r`` for ``r = max_ratio`` (0 = no limit)."""
    if not max_ratio:
        return True
    from mlx_persona.data.style import word_count

    c, r = word_count(chosen), word_count(rejected)
    return c > 0 and r > 0 and 1 / max_ratio <= r / c <= max_ratio


def percentile(sorted_values: list, q: float) -> float:
    """The q-th percentile (0..100) of sorted values, linear between neighbours:
    position ``q/100 * (n - 1)``, so p0 is the minimum, p50 the median and p100 the maximum."""
    pos = q / 100 * (len(sorted_values) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


def length_stats(pairs: list[dict]) -> dict:
    """Chosen and rejected lengths in words over ``pairs``: mean and percentiles (p10..p90) of
    each, the median of rejected/chosen, and the share of pairs whose rejected reply is longer.
    A share near 0 or 1 means length alone separates chosen from rejected; 0.5 means it cannot."""
    if not pairs:
        return {"pairs": 0}
    from mlx_persona.data.style import word_count

    def dist(values):
        v = sorted(values)
        return {
            "mean": round(sum(v) / len(v), 2),
            **{f"p{q}": round(percentile(v, q), 2) for q in (10, 25, 50, 75, 90)},
        }

    chosen = [word_count(r["chosen"]) for r in pairs]
    rejected = [word_count(r["rejected"]) for r in pairs]
    ratios = sorted(r / max(c, 1) for c, r in zip(chosen, rejected))
    return {
        "pairs": len(pairs),
        "chosen": dist(chosen),
        "rejected": dist(rejected),
        "ratio_p50": round(percentile(ratios, 50), 3),
        "rejected_longer": round(sum(r > c for c, r in zip(chosen, rejected)) / len(pairs), 4),
    }


def length_summary(lengths: dict) -> str:
    """One line of :func:`length_stats` for the console."""
    if not lengths.get("pairs"):
        return "no pairs kept"
    c, r = lengths["chosen"], lengths["rejected"]
    return (
        f"words: chosen median {c['p50']:g} (mean {c['mean']:g}), rejected median {r['p50']:g} "
        f"(mean {r['mean']:g}); rejected longer in {100 * lengths['rejected_longer']:.0f}% of pairs"
    )


def trim_reply(reply: dict) -> dict:
    """A reply cut at ``max_tokens``, trimmed back to its last full sentence when one remains
    (``finish_reason`` becomes "trimmed"); any other reply unchanged."""
    if reply["finish_reason"] != "length":
        return reply
    ends = [m.end() for m in SENTENCE_END.finditer(reply["text"])]
    text = reply["text"][: ends[-1]].strip() if ends else ""
    if len(text) < MIN_TRIMMED_CHARS:
        return reply
    return {**reply, "text": text, "finish_reason": "trimmed", "trimmed": True}


def _similarity(a, b):
    from mlx_persona.models.embed import embed, pair_similarity

    return pair_similarity(embed(a), embed(b))


def run_pairs(
    base_dir: Path, twin_dir: Path | None, data_dir: Path, out: Path, cfg: PairsConfig, log: Callable = print
) -> dict:
    """Generate, filter and write the pairs into ``out``; return the stats also in ``stats.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    saved = out / layout.stage_config("pairs")
    if saved.is_file():
        old = {**PairsConfig().to_dict(), **json.loads(saved.read_text())}  # a setting added since: its default
        if old != cfg.to_dict() and any((out / layout.replies_file(role)).exists() for role in ("base", "twin")):
            changed = next(k for k in cfg.to_dict() if old.get(k) != cfg.to_dict()[k])
            raise PersonaError(
                f"{out} was started with {changed}={old.get(changed)!r}; re-run with the same "
                "settings to resume, or choose another --out"
            )
    atomic_write_json(saved, cfg.to_dict())
    prompts, bad = read_prompts(data_dir, cfg.max_prompts)
    if not prompts:
        raise PersonaError(f"{data_dir}: no usable prompts in train.jsonl / valid.jsonl")
    atomic_write_text(out / layout.PAIRS_PROMPTS, "".join(json.dumps(p, ensure_ascii=False) + "\n" for p in prompts))

    # the twin answers where it writes the chosen reply, and everywhere for on-policy rejected replies
    need_twin = {
        p["id"] for p in prompts if cfg.chosen == "twin" or p["real"] is None or cfg.rejected_from in ("twin", "both")
    }
    if need_twin and twin_dir is None:
        raise PersonaError(
            f"{len(need_twin)} prompts need the twin's reply (chosen={cfg.chosen}, "
            f"rejected_from={cfg.rejected_from}): pass --twin (the fused SFT model)"
        )
    runs = {}
    if cfg.rejected_from != "twin":
        runs["base"] = _run_child(Path(base_dir), out, "base", None, log)
    if need_twin:
        runs["twin"] = _run_child(Path(twin_dir), out, "twin", need_twin, log)
    else:
        log("every prompt has the person's real reply: the twin is not needed for chosen=real, rejected_from=base")
    base, twin = read_replies(out / layout.replies_file("base")), read_replies(out / layout.replies_file("twin"))
    pairs, rejects, counts = assemble(prompts, base, twin, cfg, _similarity)
    kept = [r for s in SPLITS for r in pairs[s]]

    rejects = [{"source": b["source"], "reason": b["reason"]} for b in bad] + rejects
    for split in SPLITS:
        atomic_write_text(
            out / layout.split_file(split), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in pairs[split])
        )
    atomic_write_text(out / layout.REJECTS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
    stats = {
        "prompts": len(prompts),
        "bad_lines": len(bad),
        "filtered": {f: counts[f] for f in FILTERS},
        "trimmed_replies": counts["trimmed"],
        "pairs": {s: len(pairs[s]) for s in SPLITS},
        "chosen_from": {o: sum(r["chosen_from"] == o for s in SPLITS for r in pairs[s]) for o in ("real", "twin")},
        "rejected_from": {o: sum(r["rejected_from"] == o for s in SPLITS for r in pairs[s]) for o in ("base", "twin")},
        "lengths": {
            "all": length_stats(kept),
            **{o: length_stats([r for r in kept if r["rejected_from"] == o]) for o in ("base", "twin")},
        },
        "generation": runs,
        "config": cfg.to_dict(),
    }
    atomic_write_json(out / layout.STATS, stats)
    log(
        f"pairs: {stats['pairs']['train']} train, {stats['pairs']['valid']} valid from {len(prompts)} prompts "
        f"(rejected from {cfg.rejected_from}); filtered {stats['filtered']}, {counts['trimmed']} cut replies trimmed "
        f"to a full sentence; {length_summary(stats['lengths']['all'])}"
    )
    return stats


# ----------------------------------------------------------------------------- command + child
@click.command("pairs")
@click.option(
    "--model",
    default="default",
    show_default=True,
    help="Base model (the rejected voice): folder, hub id or 'default'.",
)
@click.option(
    "--twin",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Fused SFT model folder (`mlx-persona fuse`); needed for chosen=twin, rejected_from twin/both, "
    "or prompts without a real reply.",
)
@click.option(
    "--data",
    required=True,
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Cleaned folder with train.jsonl and valid.jsonl.",
)
@click.option(
    "--out", required=True, type=click.Path(file_okay=False, path_type=Path), help="Stage folder (re-run it to resume)."
)
@PairsConfig.click_options()
def pairs_command(model, twin, data, out, **options):
    """Chosen/rejected pairs for DPO: the person's (or the twin's) reply vs the base model's (or the twin's)."""
    from rich.console import Console

    from mlx_persona.models.resolve import resolve_model

    console = Console(stderr=True)
    cfg = PairsConfig.from_mapping({k: v for k, v in options.items() if v is not None})
    stats = run_pairs(resolve_model(model), twin, data, out, cfg, log=lambda m: console.print(f"  {m}", markup=False))
    click.echo(
        f"wrote {stats['pairs']['train']} train / {stats['pairs']['valid']} valid pairs to {out} "
        f"({length_summary(stats['lengths']['all'])})"
    )


def main(argv=None) -> None:
    p = argparse.ArgumentParser(
        prog="python -m mlx_persona.pairs", description="Pair generator child: one model answers the prompts."
    )
    p.add_argument("--model", required=True, help="MLX model folder (base, or the fused twin).")
    p.add_argument("--prompts", required=True, help="prompts.jsonl written by the parent.")
    p.add_argument("--out", required=True, help="JSONL to append replies to (resumable).")
    p.add_argument("--config", required=True, help="pairs_config.json.")
    p.add_argument("--only", help="JSON list of prompt ids to answer (default: all).")
    p.add_argument("--status", help="status.json to record a failure in, for the parent.")
    a = p.parse_args(argv)

    def work() -> None:
        cfg = PairsConfig.from_mapping(json.loads(Path(a.config).read_text()))
        only = set(json.loads(Path(a.only).read_text())) if a.only else None
        stats = generate_child(
            Path(a.model), Path(a.prompts), Path(a.out), cfg, only, log=lambda m: print(m, file=sys.stderr, flush=True)
        )
        print(json.dumps(stats), flush=True)

    child_main(work, Path(a.status) if a.status else None)


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
