"""``python -m mlx_persona.pairs``: the pair generator's child process (see :mod:`mlx_persona.pairs.child`)."""

import os

from mlx_persona.pairs.child import main

if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
