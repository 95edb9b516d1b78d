"""Style-fidelity: would a classifier that knows the person take a reply for theirs?

The twin score compares a model with the base model, so a reply that is merely *unlike the base*
(shorter, blunter) scores well. Style-fidelity needs no base model. The story:

1. **Data.** From the train split only (``clean/train.jsonl``): the person's messages (assistant
   turns) against the other speakers' messages (user turns) in the same chats. Every sample
   repeats its conversation's earlier turns, so each distinct text counts once per speaker.
2. **Features.** The MiniLM embedding of a message (384 numbers, what it says and how) beside its
   habit features from :mod:`mlx_persona.data.style` (length, emoji, how it starts and ends,
   ! and ? per word, assistant phrases), each standardised with the train mean and spread.
3. **Classifier.** L2-regularised logistic regression, fitted by Newton's method in numpy, with
   balanced class weights so that P = 0.5 means "could be either" whatever the class sizes.
4. **Check.** Accuracy on the valid and test splits' real messages that the train split does not
   contain: near 0.5 (balanced) means the score says nothing about this person.
5. **Score.** Style-fidelity of a model = mean P(person | reply) over its generated test replies;
   the person's own test replies give the ceiling, the other speakers' held-out messages the floor.

The embedder is an argument (texts -> unit vectors, shape (n, d)), so tests pass a cheap one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mlx_persona.data import style

Embedder = Callable[[Sequence[str]], np.ndarray]

HABIT_FEATURES = (
    "log_words",
    "emoji_per_reply",
    "share_with_emoji",
    "ends_period",
    "ends_exclamation",
    "ends_question",
    "ends_ellipsis",
    "ends_none",
    "share_lowercase_start",
    "exclamations_per_100_words",
    "questions_per_100_words",
    "slop_hits",
)


@dataclass
class FidelityConfig:
    """Knobs of the style classifier (the defaults are what the eval stage uses)."""

    l2: float = field(
        default=10.0,
        metadata={
            "help": "L2 penalty on the standardised weights (larger: less sure of itself; 1 pins most P to 0 or 1 on a few hundred messages)."
        },
    )
    max_per_speaker: int = field(
        default=3000, metadata={"help": "Most train messages per speaker (a fixed-seed sample beyond)."}
    )
    seed: int = field(
        default=0, metadata={"help": "Seed of that sample: the same messages, the same classifier, every run."}
    )
    iterations: int = field(default=50, metadata={"help": "Most Newton steps (it converges in about ten)."})


# -- data -------------------------------------------------------------------------------------


def speaker_messages(paths: Iterable[Path]) -> tuple[list[str], list[str]]:
    """Distinct non-empty texts of the person (assistant) and of the others (user), first-seen order."""
    seen: dict[str, dict[str, None]] = {"assistant": {}, "user": {}}
    for path in paths:
        with open(path, encoding="utf-8") as f:
            for line in f:
                try:
                    msgs = json.loads(line).get("messages")
                except (ValueError, AttributeError):
                    continue  # the clean stage writes these files; a torn line is not ours to report
                for m in msgs if isinstance(msgs, list) else []:
                    text = str(m.get("content") or "").strip() if isinstance(m, dict) else ""
                    if text and m.get("role") in seen:
                        seen[m["role"]][text] = None
    return list(seen["assistant"]), list(seen["user"])


def habit_features(texts: Sequence[str]) -> np.ndarray:
    """One row of :data:`HABIT_FEATURES` per text: shape (len(texts), len(HABIT_FEATURES))."""
    rows = []
    for t in texts:
        h = style.habits([t])
        ends = h["ends_with"]
        rows.append(
            [
                math.log1p(style.word_count(t)),
                h["emoji_per_reply"],
                h["share_with_emoji"],
                ends["period"],
                ends["exclamation"],
                ends["question"],
                ends["ellipsis"],
                ends["none"],
                h["share_lowercase_start"],
                h["exclamations_per_100_words"],
                h["questions_per_100_words"],
                sum(style.slop_hits(t).values()),
            ]
        )
    return np.asarray(rows, float).reshape(len(texts), len(HABIT_FEATURES))


# -- the classifier ---------------------------------------------------------------------------


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))  # = 1 / (1 + exp(-z)), without overflow


def fit_logistic(
    X: np.ndarray, y: np.ndarray, l2: float = 10.0, iterations: int = 50, tol: float = 1e-8
) -> tuple[np.ndarray, float]:
    """Weights ``w`` (d,) and bias ``b`` minimising the class-balanced, L2-penalised log loss.

    ``X`` (n, d) standardised features, ``y`` (n,) in {0, 1}. With class weights
    ``c_i = n / (2 n_{y_i})`` (both classes weigh the same in total) and ``z = X w + b``:

        J(w, b) = (1/n) Σ_i c_i [log(1 + e^{z_i}) − y_i z_i] + (l2/2n) ||w||²

    J is strictly convex in ``w``; Newton steps with backtracking (halve until J drops) reach
    its minimum, the same on every run (no random start). The bias is not penalised.
    """
    X, y = np.asarray(X, float), np.asarray(y, float)
    n, d = X.shape
    counts = np.array([np.sum(y == 0), np.sum(y == 1)], float)
    if counts.min() == 0:
        raise ValueError("fit_logistic needs examples of both classes")
    c = n / (2.0 * counts[y.astype(int)])
    A = np.hstack([X, np.ones((n, 1))])  # (n, d+1): the bias is the last weight
    penalty = np.full(d + 1, l2)
    penalty[-1] = 0.0

    def objective(theta):
        z = A @ theta
        return (np.sum(c * (np.logaddexp(0.0, z) - y * z)) + 0.5 * np.sum(penalty * theta**2)) / n

    theta = np.zeros(d + 1)
    value = objective(theta)
    for _ in range(iterations):
        p = _sigmoid(A @ theta)
        grad = (A.T @ (c * (p - y)) + penalty * theta) / n  # (d+1,)
        hess = (A.T * (c * p * (1.0 - p))) @ A / n + np.diag(penalty) / n  # (d+1, d+1)
        step = np.linalg.solve(hess + 1e-10 * np.eye(d + 1), grad)
        t, new = 1.0, objective(theta - step)
        while new > value and t > 1e-6:  # backtrack: a full step can overshoot far from the minimum
            t *= 0.5
            new = objective(theta - t * step)
        if new > value:
            break
        theta, done, value = theta - t * step, value - new < tol, new
        if done:
            break
    return theta[:-1], float(theta[-1])


@dataclass
class StyleClassifier:
    """P(person | text) from an embedder, the habit features and a fitted logistic regression."""

    embed: Embedder
    mean: np.ndarray  # (d,) train mean of each feature
    scale: np.ndarray  # (d,) train standard deviation (1 where a feature is constant)
    weights: np.ndarray
    bias: float

    def features(self, texts: Sequence[str]) -> np.ndarray:
        return features(self.embed, texts)

    def p_person(self, texts: Sequence[str]) -> np.ndarray:
        """P(person | text) for each text: shape (len(texts),)."""
        if not len(texts):
            return np.zeros((0,))
        return _sigmoid(((self.features(texts) - self.mean) / self.scale) @ self.weights + self.bias)


def features(embed: Embedder, texts: Sequence[str]) -> np.ndarray:
    """Embedding and habit features side by side: shape (len(texts), d_embed + len(HABIT_FEATURES))."""
    return np.hstack([np.asarray(embed(list(texts)), float), habit_features(texts)])


def _cap(texts: list[str], most: int, rng: np.random.Generator) -> list[str]:
    if len(texts) <= most:
        return texts
    return [texts[i] for i in np.sort(rng.choice(len(texts), size=most, replace=False))]


def train_classifier(
    person: list[str], others: list[str], embed: Embedder, cfg: FidelityConfig | None = None
) -> StyleClassifier:
    """Fit the classifier on the person's (label 1) and the others' (label 0) messages."""
    cfg = cfg or FidelityConfig()
    rng = np.random.default_rng(cfg.seed)
    person, others = _cap(person, cfg.max_per_speaker, rng), _cap(others, cfg.max_per_speaker, rng)
    X = features(embed, person + others)
    y = np.r_[np.ones(len(person)), np.zeros(len(others))]
    mean, scale = X.mean(axis=0), X.std(axis=0)
    scale = np.where(scale > 1e-8, scale, 1.0)
    w, b = fit_logistic((X - mean) / scale, y, cfg.l2, cfg.iterations)
    return StyleClassifier(embed, mean, scale, w, b)


def held_out_check(clf: StyleClassifier, person: Sequence[str], others: Sequence[str]) -> dict:
    """Accuracy at P = 0.5 on messages the classifier has not seen (both classes present)."""
    p_person, p_other = clf.p_person(person), clf.p_person(others)
    rec_p, rec_o = float(np.mean(p_person >= 0.5)), float(np.mean(p_other < 0.5))
    return {
        "person_messages": len(person),
        "other_messages": len(others),
        "accuracy": (rec_p * len(person) + rec_o * len(others)) / (len(person) + len(others)),
        "balanced_accuracy": (rec_p + rec_o) / 2,
        "person_recall": rec_p,
        "other_recall": rec_o,
        "person_mean_p": float(p_person.mean()),
        "other_mean_p": float(p_other.mean()),
    }


MIN_PER_SPEAKER = 5  # fewer train messages of either speaker: no classifier worth reporting


def build(
    train: Path, held_out: Sequence[Path], embed: Embedder, cfg: FidelityConfig | None = None
) -> tuple[StyleClassifier | None, dict, str | None]:
    """Train on ``train``, check on ``held_out`` (the files that exist); returns
    ``(classifier or None, the JSON record, the reason it was skipped or None)``."""
    cfg = cfg or FidelityConfig()
    person, others = speaker_messages([train])
    record = {
        "train": {
            "path": str(train),
            "person_messages": len(person),
            "other_messages": len(others),
            "features": f"MiniLM embedding + {len(HABIT_FEATURES)} habit features",
            "l2": cfg.l2,
            "max_per_speaker": cfg.max_per_speaker,
            "seed": cfg.seed,
        }
    }
    if min(len(person), len(others)) < MIN_PER_SPEAKER:
        return (
            None,
            record,
            (
                f"{train}: {len(person)} messages of the person and {len(others)} of others; "
                f"the style classifier needs at least {MIN_PER_SPEAKER} of each"
            ),
        )
    clf = train_classifier(person, others, embed, cfg)
    seen = set(person) | set(others)
    files = [p for p in held_out if Path(p).is_file()]
    hp, ho = speaker_messages(files)
    hp, ho = [t for t in hp if t not in seen], [t for t in ho if t not in seen]
    if hp and ho:
        record["held_out"] = {"paths": [str(p) for p in files], **held_out_check(clf, hp, ho)}
    else:
        record["held_out"] = {
            "paths": [str(p) for p in files],
            "person_messages": len(hp),
            "other_messages": len(ho),
            "note": "no held-out messages of both speakers: accuracy not measured",
        }
    return clf, record, None


def summary(p_person: np.ndarray) -> dict:
    """Style-fidelity of a set of replies: mean P(person), its median, the share taken for the person."""
    p = np.asarray(p_person, float)
    if p.size == 0:
        return {"n": 0}
    return {
        "mean": float(p.mean()),
        "median": float(np.median(p)),
        "share_ge_half": float(np.mean(p >= 0.5)),
        "n": int(p.size),
    }
