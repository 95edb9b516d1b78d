"""The DPO stage: the loss (loss.py), log-probs (logps.py), the reference cache, pair data, settings, the command and the child process (train.py; python -m mlx_persona.dpo)."""
