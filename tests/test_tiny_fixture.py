def test_tiny_model_loads_and_generates(tiny_model_dir):
    from mlx_lm import generate, load

    model, tok = load(str(tiny_model_dir))
    prompt = tok.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=False)
    assert prompt.endswith("<|im_start|>assistant\n")
    ids = tok.encode("ship it 🙂")
    assert tok.decode(ids) == "ship it 🙂"
    out = generate(model, tok, prompt, max_tokens=5)
    assert isinstance(out, str)
