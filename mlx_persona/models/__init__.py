"""Models: resolution (folder, hub id, 'default'), the embedded default model, GGUF import, fuse, batched generation and the embedding model."""
