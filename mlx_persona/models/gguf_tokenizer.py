"""Rebuild a Hugging Face ``tokenizer.json`` from the vocabulary stored in a GGUF file.

A GGUF carries its tokenizer as metadata: ``tokenizer.ggml.model`` (``gpt2`` = byte-level BPE,
``llama`` = SentencePiece BPE), the token strings, their types, BPE merges (gpt2) or scores
(llama), the special token ids, a pre-tokenizer name (``tokenizer.ggml.pre``) and the chat
template. From those we build a fast tokenizer with the ``tokenizers`` library, so that
``mlx_lm.load`` (through transformers) opens the converted folder like any other.
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
    if pre in ("llama3", "llama-bpe", "llama-v3", "smaug-bpe"):
        split = pre_tokenizers.Split(Regex(_LLAMA3_PATTERN), behavior="isolated")
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
