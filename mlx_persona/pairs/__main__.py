"""``python -m mlx_persona.pairs``: the pair generator's child process (see :mod:`mlx_persona.pairs.build`)."""

from mlx_persona.pairs.build import main

if __name__ == "__main__":
    main()
