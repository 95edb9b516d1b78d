"""The SFT stage: settings (config.py), the command (cli.py) and the child process (train.py; python -m mlx_persona.sft)."""
