//! Deterministic synthetic images (stub: the embedded-registry work fills this in).
