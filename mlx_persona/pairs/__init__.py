"""The pair generator: base and fused SFT model answer the same prompts; chosen/rejected pairs for DPO (build.py; python -m mlx_persona.pairs)."""
