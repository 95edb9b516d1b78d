"""The evaluation: held-out perplexity, similarity and style per model (evaluate.py; python -m mlx_persona.eval), metrics, the models of a run."""
