"""``python -m mlx_persona.dpo``: the DPO stage's child process (see :mod:`mlx_persona.dpo.train`)."""

from mlx_persona.dpo.train import main

if __name__ == "__main__":
    main()
