"""The recipe runner: recipes, the pipeline, sweeps, and the run command."""
