use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on `127.0.0.1` that was free a moment ago.
///
/// The port is found by binding port 0 and closing the listener again, so another
/// process could in principle take it before the caller binds it; the servers in this
/// crate retry on a fresh port when that happens.
///
/// ```
/// let port = telltale_test_support::free_port();
/// assert_ne!(port, 0);
/// ```
pub fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 must work on a test machine")
}

/// Starts a server on a fresh free port, trying up to five ports: `spawn(port)` may fail
/// because another process took the port between [`free_port`] and the bind. Returns the
/// last error when every try failed, naming `what` when there was none.
pub(crate) fn spawn_on_free_port(
    what: &str,
    mut spawn: impl FnMut(u16) -> Result<(), crate::ServerError>,
) -> Result<(), crate::ServerError> {
    let mut last = None;
    for _ in 0..5 {
        match spawn(free_port()) {
            Ok(()) => return Ok(()),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| crate::ServerError::new(format!("{what} did not start"))))
}
