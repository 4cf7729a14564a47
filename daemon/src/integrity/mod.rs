//! Tool integrity: canonical JSON fingerprints and scanning of tool definitions (pure code, no I/O).
