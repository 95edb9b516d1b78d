"""Export: the twin leaves the pipeline through the doors people run models from.

    run folder (its twin) or MLX model folder
        ├─▶ gguf      one GGUF file (llama.cpp's ``gguf`` package; f16, q8_0, q4_0)
        ├─▶ ollama    the GGUF + a Modelfile (TEMPLATE = the model's chat template, SYSTEM = the
        │             persona line, stops, temperature, context)
        ├─▶ lmstudio  the MLX folder placed as <models dir>/mlx-persona/<name>/
        └─▶ mlx       a clean MLX folder with a model card (README.md), the one to upload

``config.py`` holds the recipe's ``export:`` block, ``targets.py`` the four targets,
``ollama.py`` the chat template → Go template translation, ``card.py`` the model card and
``cli.py`` the ``mlx-persona export`` command. The GGUF writer itself lives in
:mod:`mlx_persona.models.gguf_export` (``fuse --gguf`` uses it too).
"""
