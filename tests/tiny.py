"""A tiny random-weight llama with a real byte-level BPE tokenizer and a ChatML template.

Built in a temp folder in about a second; loads with ``mlx_lm.load`` like any MLX model folder.
"""

from __future__ import annotations

import json
from pathlib import Path

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

SPECIAL = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]

CORPUS = [
    "yeah ship it. tests pass, merge after lunch.",
    "no. the cache is wrong, not the query. check the ttl.",
    "Great question! Let's break down the problem step by step.",
    "I'd be happy to help you with that request.",
    "what is the capital of France? Paris.",
    "def add(a, b):\n    return a + b  # 123 456 7890",
    "emoji 🙂 and accents: café, naïve, 日本語.",
]


def build_tokenizer(
    out: Path, pre_tokenizer=None, vocab_size: int = 400, unk_token: str | None = "<|endoftext|>", special_map=True
) -> int:
    """A byte-level BPE trained on :data:`CORPUS` with the ChatML specials, written to ``out``;
    returns the vocabulary size. ``pre_tokenizer``: the default is plain byte-level (a model
    family's own split regex goes in front of it, e.g. Qwen2's)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizer or pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(CORPUS * 4, trainer=trainer)
    tok.save(str(out / "tokenizer.json"))
    (out / "tokenizer_config.json").write_text(
        json.dumps(
            {
                "tokenizer_class": "PreTrainedTokenizerFast",
                "bos_token": None,
                "eos_token": "<|im_end|>",
                "pad_token": "<|endoftext|>",
                "unk_token": unk_token,
                "add_bos_token": False,
                "chat_template": CHATML_TEMPLATE,
                "model_max_length": 512,
            },
            indent=2,
        )
    )
    if special_map:
        (out / "special_tokens_map.json").write_text(
            json.dumps({"eos_token": "<|im_end|>", "pad_token": "<|endoftext|>"})
        )
    return tok.get_vocab_size()


def build_tiny_llama(out: Path, seed: int = 0, hidden: int = 64, layers: int = 2) -> Path:
    """Write a tiny llama model folder to ``out`` and return it."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_tokenizer(out)
    config = {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": hidden * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-5,
        "vocab_size": vocab,
        "rope_theta": 10000.0,
        "tie_word_embeddings": True,
        "max_position_embeddings": 512,
        "eos_token_id": 2,
        "bos_token_id": None,
    }
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def qwen2_config(hidden: int, layers: int, vocab: int, tie: bool) -> dict:
    """A small Qwen2 ``config.json`` (4 query and 2 key/value heads, MLP twice the width); the
    tiny test models and bench/reference_pass.py build theirs from it."""
    return {
        "model_type": "qwen2",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": hidden * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "rms_norm_eps": 1e-6,
        "vocab_size": vocab,
        "rope_theta": 1000000.0,
        "tie_word_embeddings": tie,
        "max_position_embeddings": 512,
    }


def build_tiny_qwen2(out: Path, seed: int = 0, hidden: int = 64, layers: int = 2, tie: bool = True) -> Path:
    """A tiny random Qwen2 (the family of the Mac recipe's Qwen2.5): biases on q/k/v, and tied
    (Qwen2.5 up to 3B) or untied (7B: its own ``lm_head``) embeddings. Same tokenizer as the llama."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = build_tokenizer(out)
    config = {**qwen2_config(hidden, layers, vocab, tie), "eos_token_id": 2, "bos_token_id": None}
    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    mx.eval(model.parameters())
    weights = dict(tree_flatten(model.parameters()))
    mx.save_safetensors(str(out / "model.safetensors"), weights, metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


def quantize_model_dir(src: Path, out: Path, group_size: int = 64, bits: int = 4) -> Path:
    """``src`` quantized as mlx_lm's converter does (``quantize_model``: every Linear and the
    embedding whose width the group divides; biases and norms stay float), written to ``out`` with
    the ``quantization`` block in its config, like an ``mlx-community/...-4bit`` folder."""
    from mlx_lm.utils import load, quantize_model, save

    model, tokenizer, config = load(str(src), return_config=True)
    model, config = quantize_model(model, config, group_size=group_size, bits=bits)
    save(Path(out), str(src), model, tokenizer, config, donate_model=False)
    return Path(out)
