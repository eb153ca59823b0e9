//! Placeholder: the benchmark lands in a later commit.
fn main() {}
