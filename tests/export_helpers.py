"""Tiny models for the export tests, and the independent readers that check what export writes.

- :func:`f16_exact` copies a model folder with every weight rounded to float16 (kept as float32),
  so an F16 GGUF holds exactly the MLX weights and greedy tokens can be compared one for one;
- :func:`build_tiny_qwen2`: a random Qwen2 with attention biases, untied output layer, Qwen2's
  own pre-tokenizer split and an embedding padded past the tokenizer's vocabulary (as Qwen2.5's);
- :func:`build_tiny_spm_llama`: a random llama with a SentencePiece-style BPE tokenizer (byte
  fallback, ``▁`` for spaces, BOS added), the kind TinyLlama and Mistral use;
- :func:`greedy_mlx` / :func:`greedy_torch`: plain argmax decoding, no cache, no stop token;
- :func:`hf_gguf`: transformers' GGUF loader (``gguf_file=``), the reader people use.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tiny import CORPUS, build_tokenizer, qwen2_config

QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
    r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

PROMPTS = [
    "should we ship friday?",
    "the cache is wrong again",
    "what is the capital of France?",
    "emoji 🙂 café naïve 日本語",
    "def add(a, b):\n    return a + b  # 123",
]
TEXTS = PROMPTS + [
    "Ünïcödé ß ñ Ω ж 中文 한국어 עברית",
    "🙂🚀👩‍💻 mixed emoji + ZWJ",
    "for i in range(10):\n\tprint(f'{i:03d}')  // 42 == 0x2A",
    "  leading spaces and\ttabs\n\nnewlines  ",
    "<|im_start|>user\nhi<|im_end|>",
]


def f16_exact(src: Path, dst: Path) -> Path:
    """A copy of the model folder whose weights are float16 values stored as float32."""
    import mlx.core as mx

    shutil.copytree(src, dst)
    for f in dst.glob("*.safetensors"):
        w = mx.load(str(f))
        w = {k: v.astype(mx.float16).astype(mx.float32) for k, v in w.items()}
        mx.save_safetensors(str(f), w, metadata={"format": "mlx"})
    return dst


def _qwen2_tokenizer(out: Path) -> int:
    """The tiny tokenizer with Qwen2's split regex in front of the byte-level step, no unk token."""
    from tokenizers import Regex, pre_tokenizers

    split = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    return build_tokenizer(out, split, vocab_size=420, unk_token=None, special_map=False)


def build_tiny_qwen2(out: Path, seed: int = 1, hidden: int = 64, layers: int = 2) -> Path:
    """A tiny random Qwen2 model folder (q/k/v biases, untied lm_head, padded embedding)."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import qwen2

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    vocab = _qwen2_tokenizer(out)
    padded = (vocab + 63) // 64 * 64 + 64  # rows no token uses, as Qwen2.5 pads to a multiple of 128
    config = {**qwen2_config(hidden, layers, padded, tie=False), "eos_token_id": 2}
    mx.random.seed(seed)
    model = qwen2.Model(qwen2.ModelArgs.from_dict(config))
    # biases are zero at init: give them values, or a wrong bias export would go unseen
    params = dict(tree_flatten(model.parameters()))
    for k in [k for k in params if k.endswith(".bias")]:
        params[k] = mx.random.normal(params[k].shape) * 0.5
    mx.eval(params)
    mx.save_safetensors(str(out / "model.safetensors"), params, metadata={"format": "mlx"})
    (out / "config.json").write_text(json.dumps(config, indent=2))
    return out


ZEPHYR_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}{{ eos_token }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_spm_llama(out: Path, seed: int = 2, hidden: int = 64, layers: int = 2) -> Path:
    """A tiny random llama whose tokenizer is SentencePiece-style BPE (``tokenizer.ggml.model``
    ``llama`` in GGUF): ``▁`` for spaces, ``<0xNN>`` byte fallback, ``<s>`` added first."""
    import mlx.core as mx
    from mlx.utils import tree_flatten
    from mlx_lm.models import llama
    from tokenizers import Tokenizer, decoders, models, normalizers, processors, trainers

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("\u2581"), normalizers.Replace(" ", "\u2581")])
    tok.decoder = decoders.Sequence(
        [decoders.Replace("\u2581", " "), decoders.ByteFallback(), decoders.Fuse(), decoders.Strip(" ", 1, 0)]
    )
    specials = ["<unk>", "<s>", "</s>"] + [f"<0x{i:02X}>" for i in range(256)]
    tok.train_from_iterator(
        CORPUS * 4, trainer=trainers.BpeTrainer(vocab_size=600, special_tokens=specials, show_progress=False)
    )
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", 1)])
    tok.save(str(out / "tokenizer.json"))
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "bos_token": "<s>",
        "eos_token": "</s>",
        "unk_token": "<unk>",
        "add_bos_token": True,
        "chat_template": ZEPHYR_TEMPLATE,
    }
    (out / "tokenizer_config.json").write_text(json.dumps(config, indent=2))
    cfg = {
        "model_type": "llama",
        "hidden_size": hidden,
        "num_hidden_layers": layers,
        "intermediate_size": hidden * 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "rms_norm_eps": 1e-5,
        "vocab_size": tok.get_vocab_size(),
        "tie_word_embeddings": False,
        "max_position_embeddings": 512,
    }
    mx.random.seed(seed)
    model = llama.Model(llama.ModelArgs.from_dict(cfg))
    mx.eval(model.parameters())
    mx.save_safetensors(
        str(out / "model.safetensors"), dict(tree_flatten(model.parameters())), metadata={"format": "mlx"}
    )
    (out / "config.json").write_text(json.dumps(cfg, indent=2))
    return out


def prompt_ids(tokenizer, prompt: str) -> list[int]:
    msgs = [{"role": "system", "content": "You are Sam."}, {"role": "user", "content": prompt}]
    return list(tokenizer.apply_chat_template(msgs, add_generation_prompt=True, tokenize=True))


def greedy_mlx(model, ids: list[int], n: int = 20) -> list[int]:
    """``ids`` + ``n`` argmax tokens (KV cache; never stops early)."""
    import mlx.core as mx
    from mlx_lm.models.cache import make_prompt_cache

    cache = make_prompt_cache(model)
    out, step = list(ids), mx.array([ids])
    for _ in range(n):
        out.append(int(mx.argmax(model(step, cache=cache)[0, -1]).item()))
        step = mx.array([[out[-1]]])
    return out


def greedy_torch(model, ids: list[int], n: int = 20) -> list[int]:
    import torch

    out, step, past = list(ids), torch.tensor([ids]), None
    with torch.no_grad():
        for _ in range(n):
            r = model(step, past_key_values=past, use_cache=True)
            past = r.past_key_values
            out.append(int(r.logits[0, -1].argmax()))
            step = torch.tensor([[out[-1]]])
    return out


def argmax_mlx(model, ids: list[int]):
    import mlx.core as mx
    import numpy as np

    return np.array(mx.argmax(model(mx.array([ids]))[0], axis=-1))


def argmax_torch(model, ids: list[int]):
    import torch

    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].argmax(-1).numpy()


def hf_gguf(path: Path, tokenizer: bool = True):
    """(model, tokenizer or None) read from a GGUF file by transformers' own GGUF loader, float32.
    Torch runs one thread: on a busy 2-core machine two threads made decoding 3x slower."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.set_num_threads(1)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=torch.float32)
    tok = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name) if tokenizer else None
    return model.eval(), tok
