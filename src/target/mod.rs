//! The embedded synthetic registry (stub: the embedded-registry work fills this in).
