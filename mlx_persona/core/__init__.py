"""Leaf helpers every stage uses: the error type, atomic writes and run folders, run-folder names, settings typing, paths, the fast BLAS. Imports nothing else of mlx_persona."""
