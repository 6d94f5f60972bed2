"""Data sets: manifests, subject splits and the preprocessed crop cache."""
