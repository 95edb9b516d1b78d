"""The data: readers for every raw chat format (ingest/), the cleaning rules, samples and split, stats, and the text habits every stage measures (style.py). The clean stage lives in clean.py."""
