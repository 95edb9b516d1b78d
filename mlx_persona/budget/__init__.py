"""The memory budget: model shapes, device profiles, the peak-memory estimate (estimate.py), and the fit solver and preflight (fit.py)."""
