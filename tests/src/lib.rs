//! Cross-crate and end-to-end tests for telltale live in `tests/`.
