"""The pair generator's filters and length statistics.

:func:`assemble` turns prompts and the two models' replies into pairs. Each prompt gives one
candidate pair per rejected source (:func:`rejected_sources`); each candidate passes the filters
on its own, each counted in ``stats.json`` and listed in ``rejects.jsonl``:

- ``empty``: the chosen or the rejected reply is blank;
- ``truncated``: a reply cut at ``max_tokens`` with no full sentence to keep (``allow_truncated``
  keeps it whole). A cut reply is first trimmed back to its last full sentence
  (:func:`trim_reply`; counted as ``trimmed`` and kept): the base model's long assistant replies
  are cut often, and dropping them all would keep only its shortest, least typical ones;
- ``identical``: chosen == rejected;
- ``length_ratio``: rejected more than ``max_length_ratio`` times longer or shorter than chosen
  (:func:`length_ratio_ok`; off by default);
- ``too_similar``: chosen and rejected say the same thing (MiniLM cosine above
  ``similarity_threshold``);
- ``twin_close``: a twin reply too close to the person's real one to be a negative;
- ``small_gap`` (``chosen="closest"``): the twin's nearest and farthest replies are about as far
  from the person's real one (:func:`rank_samples`).

:func:`length_stats` describes the kept pairs' lengths in words, so ``stats.json`` shows whether
length alone separates chosen from rejected.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from mlx_persona.pairs.config import FILTERS, SPLITS, PairsConfig

SENTENCE_END = re.compile(r"[.!?…][\"')\]]*(?=\s|$)|\n")
MIN_TRIMMED_CHARS = 12  # a trimmed reply shorter than this says too little: dropped as truncated


def assemble(
    prompts: list[dict],
    base: dict,
    twin: dict,
    cfg: PairsConfig,
    similarity: Callable = None,
    samples: dict | None = None,
    style: Callable | None = None,
) -> tuple[dict, list[dict], dict]:
    """Apply the filters; return ({split: pairs}, rejects, counts). ``similarity(a, b)`` -> cosines.

    Each prompt gives one candidate pair per rejected source (``rejected_sources``): the base
    model's reply, the twin's, or both. A twin candidate needs the person's real reply as chosen.
    Every candidate passes the filters on its own, in this order: empty, truncated, identical,
    length_ratio (only with ``max_length_ratio``), too_similar, and for a twin candidate
    twin_close (cosine with the real reply at or above ``twin_max_similarity``: the twin said
    what the person said, so it is no negative).

    Under ``chosen="closest"`` the candidates come from :func:`rank_samples` over ``samples`` (all
    the twin's replies per prompt id): its nearest reply to the person's real one against its
    farthest, or against each of its ``rejected_per_prompt`` farthest (``style``: texts ->
    P(person), used when ``style_weight`` > 0).
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

    ranked = (
        rank_samples(prompts, samples or {}, cfg, similarity, drop, counts, style) if cfg.chosen == "closest" else {}
    )
    for p in prompts:
        if cfg.chosen == "closest":
            if p["id"] not in ranked:
                continue
            chosen, origin = ranked[p["id"]][0]["chosen"], "closest"
            candidates = [
                ("twin", r["rejected"], {k: v for k, v in r.items() if k not in ("chosen", "rejected")})
                for r in ranked[p["id"]]
            ]
        else:
            use_twin = cfg.chosen == "twin" or p["real"] is None
            chosen = twin.get(p["id"]) if use_twin else {"text": p["real"], "finish_reason": "stop"}
            if chosen is None:
                continue  # not generated (a capped or interrupted run); a re-run fills it in
            if cfg.trim_truncated:
                chosen = trim_reply(chosen)
                counts["trimmed"] += chosen.get("trimmed", False)
            origin = "twin" if use_twin else "real"
            candidates = [
                (source, (base if source == "base" else twin).get(p["id"]), {})
                for source in rejected_sources(cfg, has_real=not use_twin)
            ]
        for source, rejected, extra in candidates:
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
                kept.append((p, chosen["text"].strip(), rejected["text"].strip(), origin, source, extra))
    needs_sims = cfg.similarity_threshold < 1 or (
        cfg.twin_max_similarity < 1 and any(k[4] == "twin" and k[3] != "closest" for k in kept)
    )
    if kept and needs_sims and similarity is not None:
        sims = similarity([k[1] for k in kept], [k[2] for k in kept])
    else:
        sims = [0.0] * len(kept)
    pairs = {s: [] for s in SPLITS}
    for (p, chosen, rejected, origin, source, extra), sim in zip(kept, sims):
        sim = round(float(sim), 4)
        if sim > cfg.similarity_threshold:
            drop(p, "too_similar", chosen, rejected, source, similarity=sim)
            continue
        if source == "twin" and origin != "closest" and sim >= cfg.twin_max_similarity:
            drop(p, "twin_close", chosen, rejected, source, similarity=sim)
            continue
        record = {"prompt": p["messages"][-1]["content"], "chosen": chosen, "rejected": rejected}
        if p.get("system"):
            record["system"] = p["system"]
        record.update(messages=p["messages"], id=p["id"], chosen_from=origin, rejected_from=source, similarity=sim)
        if origin == "closest":  # how near each is to what the person said
            record.update(real=p["real"], **extra)
        pairs[p["split"]].append(record)
    return pairs, rejects, counts


def rank_samples(
    prompts: list[dict],
    samples: dict,
    cfg: PairsConfig,
    similarity: Callable,
    drop: Callable,
    counts: dict,
    style: Callable | None = None,
) -> dict:
    """``chosen="closest"``: for each prompt with a real reply, the twin's usable replies ranked by
    MiniLM cosine with the real one; {id: [{chosen, rejected, chosen_to_real, rejected_to_real}, ...]}:
    the nearest reply against each of the ``rejected_per_prompt`` farthest ones, farthest first.

    With ``style`` (texts -> P(person), the eval's style classifier) and ``style_weight`` w > 0,
    a reply's score is ``cosine + w * P(person)``: of two replies that say as much of what the
    person said, the one that drops their habits ranks lower. The records then carry
    ``chosen_style`` and ``rejected_style``; the margin is taken on the score.

    A reply cut at ``max_tokens`` is trimmed first (as everywhere) and left out when still cut,
    unless ``allow_truncated``; a blank one is left out. Fewer than two usable replies drop the
    prompt (``truncated`` when a cut reply was among them, else ``empty``). Each far reply is a
    negative only when its cosine is below ``twin_max_similarity`` (else ``twin_close``), and
    only when the nearest beats it by ``closest_margin`` and by more than nothing (else
    ``small_gap``: two replies equally far from the person teach nothing about the person); each
    is counted on its own, so a prompt may keep some of its pairs and drop others.
    """
    todo = []  # (prompt, its usable replies)
    for p in prompts:
        replies = samples.get(p["id"])
        if p["real"] is None or not replies:
            continue  # no real reply to rank by, or not generated yet (a re-run fills it in)
        usable, cut = [], False
        for r in replies:
            if cfg.trim_truncated:
                r = trim_reply(r)
                counts["trimmed"] += r.get("trimmed", False)
            if r["finish_reason"] == "length" and not cfg.allow_truncated:
                cut = True
            elif r["text"].strip():
                usable.append({**r, "text": r["text"].strip()})
        if len(usable) < 2:
            texts = [r["text"] for r in replies]
            drop(p, "truncated" if cut else "empty", p["real"], texts[0] if texts else "", "twin", replies=texts)
            continue
        todo.append((p, usable))
    flat = [(p, r) for p, usable in todo for r in usable]
    cos = similarity([p["real"] for p, _ in flat], [r["text"] for _, r in flat]) if flat else []
    weighted = style is not None and cfg.style_weight > 0 and bool(flat)
    person = style([r["text"] for _, r in flat]) if weighted else [0.0] * len(flat)
    ranked, at = {}, 0
    for p, usable in todo:
        sims = [round(float(c), 4) for c in cos[at : at + len(usable)]]
        ps = [round(float(x), 4) for x in person[at : at + len(usable)]]
        at += len(usable)
        score = [c + cfg.style_weight * x for c, x in zip(sims, ps)] if weighted else sims
        best = max(range(len(usable)), key=score.__getitem__)
        farthest = sorted((i for i in range(len(usable)) if i != best), key=score.__getitem__)
        chosen = usable[best]
        for worst in farthest[: cfg.rejected_per_prompt]:
            rejected = usable[worst]
            gap = round(score[best] - score[worst], 4)
            if sims[worst] >= cfg.twin_max_similarity:
                drop(p, "twin_close", chosen["text"], rejected["text"], "twin", similarity=sims[worst])
            elif gap <= 0 or gap < cfg.closest_margin:  # as far as the nearest: nothing to prefer
                drop(p, "small_gap", chosen["text"], rejected["text"], "twin", gap=gap)
            else:
                ranked.setdefault(p["id"], []).append(
                    {
                        "chosen": chosen,
                        "rejected": rejected,
                        "chosen_to_real": sims[best],
                        "rejected_to_real": sims[worst],
                        **({"chosen_style": ps[best], "rejected_style": ps[worst]} if weighted else {}),
                    }
                )
    return ranked


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
