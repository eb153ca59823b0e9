//! Start-up of the real `orders-api` binary: settings it cannot use stop it at once
//! with a message naming the setting, and a busy port names the address.

mod common;

use std::time::Duration;

use common::run_to_exit;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn unusable_settings_stop_the_start_naming_the_variable() {
    for (key, value) in [
        ("INVENTORY_URL", "garbage"),
        ("INVENTORY_GRPC_URL", "not a uri"),
        ("DRAIN_DELAY_MS", "18446744073709551615"),
        ("SHUTDOWN_GRACE_MS", "18446744073709551615"),
        ("REQUEST_TIMEOUT_MS", "0"),
    ] {
        let (status, stderr) = run_to_exit(&[(key, value)], LIMIT);
        assert_eq!(status.code(), Some(2), "{key}={value:?}: {stderr}");
        assert!(
            stderr.starts_with(&format!("orders-api: {key} must")),
            "{key}={value:?}: {stderr}"
        );
    }
}

#[test]
fn a_busy_port_is_named_in_the_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = taken.local_addr().unwrap();
    let (status, stderr) = run_to_exit(&[("PORT", &addr.port().to_string())], LIMIT);
    assert!(!status.success(), "{stderr}");
    assert!(stderr.contains(&addr.to_string()), "names the address: {stderr}");
    assert!(stderr.contains("PORT"), "names the setting: {stderr}");
    drop(taken);
}
