"""``python -m mlx_persona.eval``: the eval stage's child process (see :mod:`mlx_persona.eval.evaluate`)."""

from mlx_persona.eval.evaluate import main

if __name__ == "__main__":
    main()
