"""The pair generator: (prompt, chosen, rejected) triples for DPO, from the cleaned conversations.

    data/train.jsonl valid.jsonl ──contexts──▶ prompts.jsonl
      ──child: base model, batched──▶ base.jsonl      (rejected: the helpful-assistant voice)
      ──child: fused twin, batched──▶ twin.jsonl      (a generated chosen, or an on-policy rejected)
      ──filters──▶ out/train.jsonl valid.jsonl rejects.jsonl stats.json

Where each part lives: the settings in :mod:`~mlx_persona.pairs.config`, prompts and replies in
:mod:`~mlx_persona.pairs.prompts`, the child in :mod:`~mlx_persona.pairs.child`, the filters and
length statistics in :mod:`~mlx_persona.pairs.filters`; this module runs the stage
(:func:`run_pairs`) and holds the ``pairs`` command.

- Prompt: every cleaned sample minus its last reply (system line + context turns).
- chosen: the person's real reply (``chosen="real"``, the default; the twin is asked only for
  prompts with no real reply), or always the fused twin's reply (``chosen="twin"``), or of the
  twin's ``twin_samples`` replies the one nearest the person's real reply, against its farthest
  as rejected (``chosen="closest"``: both sides on-policy, written in the twin's own voice, so the
  pair differs in what is said, not in habits the twin already has). ``style_weight`` adds the
  eval's style classifier to the ranking (cosine + w x P(person)), so a reply that drops the
  person's habits ranks lower.
- rejected (``rejected_from``): the base model's reply to the same prompt, same sampling
  settings (``base``, the default); or the fused SFT twin's own reply where it is far from the
  person's real one (``twin``: MiniLM cosine below ``twin_max_similarity``). Base rejected
  replies differ from a terse person's in length as much as in voice, so a policy can learn
  "be short" from them; the twin already writes near the person's length and habits, so its
  far-off replies teach what the person would say rather than how long (on-policy
  negatives). ``both`` keeps a base pair and a twin pair for each prompt where each passes the
  filters.
- Filters (:mod:`~mlx_persona.pairs.filters`), each counted in ``stats.json`` and listed in
  ``rejects.jsonl``: empty, truncated (a cut reply is first trimmed back to its last full
  sentence, ``trim_truncated``), identical, length_ratio (off by default), too_similar
  (all-MiniLM-L6-v2 cosine above ``similarity_threshold``) and twin_close.
- Split: pairs from ``train.jsonl`` go to train, pairs from ``valid.jsonl`` to valid, so the
  conversation-level split of the clean stage holds (no conversation in both).
- Lengths: ``stats.json`` holds the chosen and rejected word-length distributions (mean,
  p10..p90), the median rejected/chosen ratio and the share of pairs whose rejected reply is the
  longer one, over all pairs and per rejected source. A share near 0 or 1 says length alone
  separates the pair.

Each model generates in its own child process (``python -m mlx_persona.pairs``,
:mod:`mlx_persona.pairs.child`), so only one model is in memory at a time. A child appends each
finished reply to its JSONL at once; a re-run skips prompts already answered, so a killed run
resumes where it stopped.

Output lines use mlx-lm-lora's DPO layout: ``prompt`` (the last user turn), ``chosen``,
``rejected``, optional ``system``; ``messages`` carries the whole context, which our DPO stage
prefers over ``prompt``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import click

from mlx_persona.core import layout
from mlx_persona.core.errors import PersonaError
from mlx_persona.core.runs import atomic_write_json, atomic_write_text
from mlx_persona.data.stats import room_for
from mlx_persona.pairs.child import run_generator
from mlx_persona.pairs.config import FILTERS, SPLITS, PairsConfig
from mlx_persona.pairs.filters import assemble, length_stats, length_summary
from mlx_persona.pairs.prompts import last_replies, read_prompts, read_replies, read_samples


def _similarity(a, b):
    from mlx_persona.models.embed import embed, pair_similarity

    return pair_similarity(embed(a), embed(b))


def _style(cfg: PairsConfig, data_dir: Path, log: Callable) -> Callable | None:
    """``style_weight`` > 0: P(person | text) from the eval's style classifier, fitted on the
    train split; None (rank by cosine only, said in the log) where the split is too small for one."""
    if cfg.chosen != "closest" or cfg.style_weight == 0:
        return None
    from mlx_persona.data import fidelity
    from mlx_persona.models.embed import embed

    clf, _, why = fidelity.build(Path(data_dir) / layout.TRAIN_SPLIT, [], embed)
    if clf is None:
        log(f"pairs: style_weight ignored, replies ranked by cosine only ({why})")
        return None
    return clf.p_person


def run_pairs(
    base_dir: Path, twin_dir: Path | None, data_dir: Path, out: Path, cfg: PairsConfig, log: Callable = print
) -> dict:
    """Generate, filter and write the pairs into ``out``; return the stats also in ``stats.json``."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.max_tokens is None:  # sized to the person's replies, so the twin's are not cut short
        room, why = room_for(Path(data_dir) / layout.TRAIN_SPLIT, base_dir)
        cfg = replace(cfg, max_tokens=room)
        log(f"pairs: replies up to {room} tokens ({why})")
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
        runs["base"] = run_generator(Path(base_dir), out, "base", None, log)
    if need_twin:
        runs["twin"] = run_generator(Path(twin_dir), out, "twin", need_twin, log, samples=cfg.twin_samples)
    else:
        log("every prompt has the person's real reply: the twin is not needed for chosen=real, rejected_from=base")
    samples = read_samples(out / layout.replies_file("twin"))  # every twin reply, read once
    base, twin = read_replies(out / layout.replies_file("base")), last_replies(samples)
    pairs, rejects, counts = assemble(prompts, base, twin, cfg, _similarity, samples, _style(cfg, data_dir, log))
    kept = [r for s in SPLITS for r in pairs[s]]

    rejects = [{"source": b["source"], "reason": b["reason"]} for b in bad] + rejects
    if not pairs[SPLITS[0]]:
        # nothing to train on: keep the rejects to look at, write no split, stop the run here
        atomic_write_text(out / layout.REJECTS, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rejects))
        raise PersonaError(no_pairs_message(len(prompts), counts, out / layout.REJECTS))
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
        "chosen_from": {
            o: sum(r["chosen_from"] == o for s in SPLITS for r in pairs[s]) for o in ("real", "twin", "closest")
        },
        "rejected_from": {o: sum(r["rejected_from"] == o for s in SPLITS for r in pairs[s]) for o in ("base", "twin")},
        "lengths": {
            "all": length_stats(kept),
            **{o: length_stats([r for r in kept if r["rejected_from"] == o]) for o in ("base", "twin")},
        },
        **({"closest": closeness(kept)} if cfg.chosen == "closest" else {}),
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


def closeness(pairs: list[dict]) -> dict:
    """``chosen="closest"``: the mean MiniLM cosine of chosen and of rejected with the real reply
    (and, ranked with ``style_weight``, their mean P(person))."""
    if not pairs:
        return {}
    n = len(pairs)
    keys = ("chosen_to_real", "rejected_to_real", "chosen_style", "rejected_style")
    return {k: round(sum(r[k] for r in pairs) / n, 4) for k in keys if all(k in r for r in pairs)}


# what to change when a filter took every pair (the filter with the most drops decides)
FILTER_FIXES = {
    "empty": "a model answered nothing: check the models and raise max_tokens",
    "truncated": "set pairs.allow_truncated: true or raise pairs.max_tokens",
    "identical": "the twin repeats the person's replies: use rejected_from: base",
    "length_ratio": "raise pairs.max_length_ratio (or 0 to turn it off)",
    "too_similar": "raise pairs.similarity_threshold (1 turns the filter off)",
    "twin_close": "raise pairs.twin_max_similarity or use rejected_from: base",
    "small_gap": "lower pairs.closest_margin or raise pairs.twin_samples",
}


def no_pairs_message(prompts: int, counts: dict, rejects: Path) -> str:
    """One line: no training pair survived; what took them and what to change."""
    took = {f: n for f, n in counts.items() if f in FILTER_FIXES and n}
    if not took:
        return f"no training pair from {prompts} prompts: the train split has no usable prompt (see {rejects})"
    worst = max(took, key=took.get)
    by = ", ".join(f"{f} {n}" for f, n in sorted(took.items(), key=lambda kv: -kv[1]))
    return f"no training pair from {prompts} prompts (filtered: {by}; see {rejects}): {FILTER_FIXES[worst]}"


# ----------------------------------------------------------------------------- the command
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
