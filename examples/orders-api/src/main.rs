//! Reference Orders API.
fn main() {}
