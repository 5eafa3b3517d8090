//! Field-by-field descriptions of raw bytes (written next).
