"""The bottom layer: errors, the registry, families and formats, progress, paths, atomic files, hashing,
manifests, versions, the Hugging Face checkpoint and its config. Imports nothing above it."""
