"""A model's tokenizer as GGUF metadata, in both directions.

A GGUF carries its tokenizer as metadata: ``tokenizer.ggml.model`` (``gpt2`` = byte-level BPE,
``llama`` = SentencePiece BPE), the token strings, their types, BPE merges (gpt2) or scores
(llama), the special token ids, a pre-tokenizer name (``tokenizer.ggml.pre``) and the chat
template.

- import (:func:`build_tokenizer_files`): from those we build a fast tokenizer with the
  ``tokenizers`` library, so that ``mlx_lm.load`` (through transformers) opens the converted
  folder like any other;
- export (:func:`tokenizer_metadata`): from a model folder's ``tokenizer.json`` and
  ``tokenizer_config.json`` we write the same keys, so that llama.cpp, Ollama and transformers'
  GGUF loader tokenize as the MLX model does and apply its chat template.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from mlx_persona.core.errors import PersonaError

# GGUF token types (llama.cpp's llama_token_type).
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6

# Pre-tokenizer split patterns by ``tokenizer.ggml.pre`` name. GPT-2's pattern is the default.
_GPT2_PATTERN = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
_LLAMA3_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# Qwen2's split: like Llama 3's, but one digit at a time.
_QWEN2_PATTERN = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
# the split patterns a ``tokenizer.ggml.pre`` name stands for (export looks a pattern up here)
SPLIT_PATTERNS = {"llama-bpe": _LLAMA3_PATTERN, "qwen2": _QWEN2_PATTERN}


def _scalar(meta: Mapping[str, Any], key: str, default=None):
    v = meta.get(key, default)
    if hasattr(v, "item"):
        v = v.item()
    return v


def _list(meta: Mapping[str, Any], key: str) -> list:
    v = meta.get(key)
    if v is None:
        return []
    if hasattr(v, "tolist"):
        return v.tolist()
    return list(v)


def _byte_level_pre_tokenizer(pre: str):
    from tokenizers import Regex, pre_tokenizers

    byte_level = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    if pre in ("llama3", "llama-bpe", "llama-v3", "smaug-bpe", "qwen2"):
        pattern = _QWEN2_PATTERN if pre == "qwen2" else _LLAMA3_PATTERN
        split = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
        return pre_tokenizers.Sequence([split, byte_level])
    steps = []
    if pre == "smollm":  # SmolLM splits every digit on its own, then GPT-2 rules
        steps.append(pre_tokenizers.Digits(individual_digits=True))
    steps.append(pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True))
    return pre_tokenizers.Sequence(steps) if len(steps) > 1 else steps[0]


def _gpt2_tokenizer(tokens: list[str], meta: Mapping[str, Any]):
    from tokenizers import Tokenizer, decoders, models

    merges_raw = _list(meta, "tokenizer.ggml.merges")
    if not merges_raw:
        raise PersonaError("GGUF tokenizer has no BPE merges; cannot rebuild a gpt2 tokenizer")
    merges = [tuple(m.split(" ", 1)) for m in merges_raw]
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=merges, ignore_merges=False))
    tok.pre_tokenizer = _byte_level_pre_tokenizer(str(_scalar(meta, "tokenizer.ggml.pre", "gpt2")))
    tok.decoder = decoders.ByteLevel()
    return tok


def _spm_merges(tokens: list[str], scores: list[float], types: list[int]) -> list[tuple[str, str]]:
    """SentencePiece BPE keeps scores, not merges: a merge ``a b`` exists for every normal token
    ``ab`` whose halves are tokens too, ranked by the merged token's score (higher first)."""
    ids = {t: i for i, t in enumerate(tokens)}
    ranked = []
    for i, t in enumerate(tokens):
        if types[i] != NORMAL or len(t) < 2:
            continue
        for cut in range(1, len(t)):
            a, b = t[:cut], t[cut:]
            if a in ids and b in ids:
                ranked.append((-scores[i], ids[a], ids[b], a, b))
    ranked.sort()
    return [(a, b) for _, _, _, a, b in ranked]


def _spm_tokenizer(tokens: list[str], meta: Mapping[str, Any], types: list[int]):
    from tokenizers import Tokenizer, decoders, models, normalizers

    scores = [float(s) for s in _list(meta, "tokenizer.ggml.scores")] or [0.0] * len(tokens)
    unk_id = _scalar(meta, "tokenizer.ggml.unknown_token_id", 0)
    vocab = {t: i for i, t in enumerate(tokens)}
    tok = Tokenizer(
        models.BPE(
            vocab=vocab,
            merges=_spm_merges(tokens, scores, types),
            unk_token=tokens[unk_id],
            byte_fallback=True,
            fuse_unk=True,
        )
    )
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence(
        [
            decoders.Replace("▁", " "),
            decoders.ByteFallback(),
            decoders.Fuse(),
            decoders.Strip(" ", 1, 0),
        ]
    )
    return tok


def build_tokenizer_files(meta: Mapping[str, Any]) -> dict[str, str]:
    """Return ``{filename: text}`` for tokenizer.json, tokenizer_config.json, special_tokens_map.json."""
    from tokenizers import AddedToken, processors

    kind = str(_scalar(meta, "tokenizer.ggml.model", ""))
    tokens = [str(t) for t in _list(meta, "tokenizer.ggml.tokens")]
    if not tokens:
        raise PersonaError("GGUF file has no tokenizer vocabulary (tokenizer.ggml.tokens)")
    types = [int(t) for t in _list(meta, "tokenizer.ggml.token_type")] or [NORMAL] * len(tokens)
    if kind == "gpt2":
        tok = _gpt2_tokenizer(tokens, meta)
    elif kind == "llama":
        tok = _spm_tokenizer(tokens, meta, types)
    else:
        raise PersonaError(f"tokenizer not supported: {kind or 'unknown'} (supported: gpt2, llama)")

    special = [AddedToken(tokens[i], special=True, normalized=False) for i, t in enumerate(types) if t == CONTROL]
    user = [AddedToken(tokens[i], special=False, normalized=False) for i, t in enumerate(types) if t == USER_DEFINED]
    tok.add_special_tokens(special)
    if user:
        tok.add_tokens(user)

    def token_of(key: str):
        i = _scalar(meta, f"tokenizer.ggml.{key}_token_id")
        return tokens[int(i)] if i is not None and 0 <= int(i) < len(tokens) else None

    bos, eos, pad, unk = token_of("bos"), token_of("eos"), token_of("padding"), token_of("unknown")
    add_bos = bool(_scalar(meta, "tokenizer.ggml.add_bos_token", kind == "llama"))
    if add_bos and bos is not None:
        tok.post_processor = processors.TemplateProcessing(
            single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, tokens.index(bos))]
        )

    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": bos,
        "eos_token": eos,
        "pad_token": pad if pad is not None else eos,
        "unk_token": unk,
        "add_bos_token": add_bos,
        "add_eos_token": False,
        "clean_up_tokenization_spaces": False,
        "model_max_length": int(_scalar(meta, "llama.context_length", 2048) or 2048),
    }
    template = _scalar(meta, "tokenizer.chat_template")
    if template:
        config["chat_template"] = str(template)
    special_map = {
        k: v
        for k, v in (("bos_token", bos), ("eos_token", eos), ("pad_token", config["pad_token"]), ("unk_token", unk))
        if v
    }
    return {
        "tokenizer.json": tok.to_str(pretty=False),
        "tokenizer_config.json": json.dumps(config, indent=2, ensure_ascii=False) + "\n",
        "special_tokens_map.json": json.dumps(special_map, indent=2, ensure_ascii=False) + "\n",
    }


# -- export: a model folder's tokenizer -> GGUF metadata -------------------------------------
def _pre_name(pre: dict | None) -> str:
    """``tokenizer.ggml.pre`` for a ``tokenizer.json`` pre-tokenizer: the name llama.cpp uses for
    the same split, or a one-line error for a split it would apply differently."""
    steps = (pre or {}).get("pretokenizers", [pre] if pre else [])
    kinds = [s.get("type") for s in steps]
    if kinds == ["ByteLevel"] and steps[0].get("use_regex", True):
        return "gpt2"
    if kinds == ["Digits", "ByteLevel"] and steps[0].get("individual_digits") and steps[1].get("use_regex", True):
        return "smollm"
    if kinds == ["Split", "ByteLevel"] and not steps[1].get("use_regex", True):
        pattern = (steps[0].get("pattern") or {}).get("Regex")
        for name, known in SPLIT_PATTERNS.items():
            if pattern == known:
                return name
    raise PersonaError(
        f"tokenizer not supported for GGUF export: its pre-tokenizer ({'+'.join(map(str, kinds)) or 'none'}) "
        "matches none llama.cpp knows (gpt2, smollm, llama-bpe, qwen2)"
    )


def _is_sentencepiece(tj: dict) -> bool:
    model = tj.get("model") or {}
    text = json.dumps([tj.get("normalizer"), tj.get("pre_tokenizer"), tj.get("decoder")])
    return bool(model.get("byte_fallback")) or "Metaspace" in text or "\u2581" in text


def _merge_strings(merges: list) -> list[str]:
    """``tokenizer.json`` keeps merges as ``"a b"`` (older) or ``["a", "b"]`` (newer)."""
    return [m if isinstance(m, str) else " ".join(m) for m in merges]


def _chat_template(model_dir, config: dict) -> str | None:
    from pathlib import Path

    template = config.get("chat_template")
    if isinstance(template, list):  # named templates: the default one
        template = next((t.get("template") for t in template if t.get("name") == "default"), None)
    jinja = Path(model_dir) / "chat_template.jinja"
    if not template and jinja.is_file():
        template = jinja.read_text(encoding="utf-8")
    return template or None


def tokenizer_metadata(model_dir, n_vocab: int) -> dict[str, Any]:
    """The ``tokenizer.*`` GGUF keys for the tokenizer of the MLX folder ``model_dir``.

    ``n_vocab`` is the number of rows of the embedding matrix: llama.cpp wants one token per row,
    so ids the tokenizer does not use (Qwen pads its matrix to a multiple of 128) become
    ``[PAD<id>]`` tokens of type UNUSED. Keys: ``model``, ``pre``, ``tokens``, ``token_type``,
    ``merges`` (gpt2) or ``scores`` (llama), the special token ids, ``add_bos_token``,
    ``add_eos_token`` and ``chat_template``; values are plain Python (lists, ints, str, bool).
    """
    from pathlib import Path

    model_dir = Path(model_dir)
    try:
        tj = json.loads((model_dir / "tokenizer.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        raise PersonaError(f"{model_dir}: no readable tokenizer.json (GGUF export needs a fast tokenizer)") from None
    try:
        config = json.loads((model_dir / "tokenizer_config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        config = {}
    model = tj.get("model") or {}
    if model.get("type") != "BPE":
        raise PersonaError(f"tokenizer not supported for GGUF export: {model.get('type')} (BPE tokenizers only)")
    spm = _is_sentencepiece(tj)
    by_id = {int(i): t for t, i in model.get("vocab", {}).items()}
    added = {int(a["id"]): a for a in tj.get("added_tokens", [])}
    by_id.update({i: a["content"] for i, a in added.items()})
    if max(by_id, default=-1) >= n_vocab:
        raise PersonaError(f"the tokenizer has ids up to {max(by_id)} but the embedding only {n_vocab} rows")
    merges = _merge_strings(model.get("merges", []))
    merged_rank = {m.replace(" ", "", 1): r for r, m in reversed(list(enumerate(merges)))}

    def special_id(key: str) -> int | None:
        tok = config.get(key)
        if isinstance(tok, dict):
            tok = tok.get("content")
        ids = [i for i, t in by_id.items() if t == tok] if tok else []
        return ids[0] if ids else None

    unk = special_id("unk_token")
    tokens, types, scores = [], [], []
    for i in range(n_vocab):
        tok = by_id.get(i)
        if tok is None:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
            scores.append(-1e9)
            continue
        tokens.append(tok)
        if spm and len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
            types.append(BYTE)  # byte fallback pieces, even where the tokenizer lists them as added
        elif i == unk:
            types.append(UNKNOWN)
        elif i in added:
            types.append(CONTROL if added[i].get("special") else USER_DEFINED)
        else:
            types.append(NORMAL)
        # SentencePiece ranks merges by the merged token's score: higher merges first
        rank = merged_rank.get(tok)
        scores.append(0.0 if types[-1] != NORMAL else -float(rank) if rank is not None else -float(len(merges) + i))

    meta: dict[str, Any] = {"tokenizer.ggml.tokens": tokens, "tokenizer.ggml.token_type": types}
    if spm:
        meta["tokenizer.ggml.model"] = "llama"
        meta["tokenizer.ggml.pre"] = "default"
        meta["tokenizer.ggml.scores"] = scores
    else:
        meta["tokenizer.ggml.model"] = "gpt2"
        meta["tokenizer.ggml.pre"] = _pre_name(tj.get("pre_tokenizer"))
        meta["tokenizer.ggml.merges"] = merges
    for key, gguf_key in (("bos", "bos"), ("eos", "eos"), ("unk", "unknown"), ("pad", "padding")):
        i = special_id(f"{key}_token")
        if i is not None:
            meta[f"tokenizer.ggml.{gguf_key}_token_id"] = i
    post = json.dumps(tj.get("post_processor"))
    bos = meta.get("tokenizer.ggml.bos_token_id")
    adds_bos = bos is not None and json.dumps(by_id[bos]) in post  # a template that puts BOS first
    meta["tokenizer.ggml.add_bos_token"] = bool(config.get("add_bos_token", adds_bos))
    meta["tokenizer.ggml.add_eos_token"] = bool(config.get("add_eos_token", False))
    template = _chat_template(model_dir, config)
    if template:
        meta["tokenizer.chat_template"] = template
    return meta
