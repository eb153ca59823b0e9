//! Inventory service.
fn main() {}
