//! `LogConfig::init` installs the global subscriber once; a second call is an error, not a panic.
//! (Its own test binary: the global subscriber is process-wide.)

use telltale_log::{LogConfig, LogConfigError, LogFormat};

#[test]
fn init_installs_once_and_then_reports_already_initialized() {
    let guard = LogConfig::new("init-test")
        .format(LogFormat::Json)
        .init()
        .expect("first init");
    tracing::info!(answer = 42, "written through the global subscriber");
    let again = LogConfig::new("init-test").format(LogFormat::Json).init();
    assert!(
        matches!(again, Err(LogConfigError::AlreadyInitialized(_))),
        "{again:?}"
    );
    assert_eq!(guard.dropped_lines(), 0);
    drop(guard);
}
