"""``python -m mlx_persona.sft``: the SFT stage's child process (see :mod:`mlx_persona.sft.train`)."""

from mlx_persona.sft.train import main

if __name__ == "__main__":
    main()
