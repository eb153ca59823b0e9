//! Bad specs fail with a message naming the file, the line and the fix.

use telltale_slo::ServiceSpec;

const GOOD: &str = "\
service: orders-api
labels:
  team: orders
slos:
  - name: availability
    kind: availability
    objective: 99.9
  - name: latency
    kind: latency
    objective: 99
    threshold: 0.25
";

/// Parses `yaml`, expects an error, checks `file:line:` and that the message and the fix
/// contain the given fragments.
fn expect_error(yaml: &str, line: u64, message: &str, fix: &str) -> String {
    let err = ServiceSpec::from_yaml_str(yaml, "slo.yaml").expect_err("spec must be rejected");
    let text = err.to_string();
    eprintln!("{text}");
    assert_eq!(err.file(), Some("slo.yaml"), "{text}");
    assert_eq!(err.line(), Some(line), "{text}");
    assert!(text.starts_with(&format!("slo.yaml:{line}:")), "{text}");
    assert!(err.message().contains(message), "{text}");
    assert!(err.fix().contains(fix), "{text}");
    text
}

#[test]
fn the_good_spec_and_the_shipped_example_parse() {
    let spec = ServiceSpec::from_yaml_str(GOOD, "slo.yaml").unwrap();
    assert_eq!(spec.slos.len(), 2);
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/orders-api/slo.yaml");
    let spec = ServiceSpec::from_yaml_file(example).unwrap();
    assert_eq!(spec.service, "orders-api");
    assert_eq!(spec.dependencies, ["inventory"]);
    assert_eq!(spec.slos[0].objective.to_string(), "99.9");
    assert_eq!(spec.slos[0].window.as_str(), "30d");
}

#[test]
fn unknown_key_names_line_and_fix() {
    let yaml = GOOD.replace("    objective: 99.9\n", "    objective: 99.9\n    objectve: 99\n");
    expect_error(&yaml, 8, "objectve", "remove the key or correct its spelling");
    let yaml = GOOD.replace("labels:", "lables:");
    expect_error(&yaml, 2, "lables", "remove the key");
}

#[test]
fn objective_of_100_or_0_is_rejected() {
    let yaml = GOOD.replace("objective: 99.9", "objective: 100");
    let text = expect_error(&yaml, 7, "strictly between 0 and 100", "in percent");
    assert!(text.contains("slos[0].objective"), "{text}");
    let yaml = GOOD.replace("objective: 99\n", "objective: 0\n");
    expect_error(&yaml, 10, "strictly between 0 and 100", "in percent");
    let yaml = GOOD.replace("objective: 99\n", "objective: 120\n");
    expect_error(&yaml, 10, "strictly between 0 and 100", "in percent");
}

#[test]
fn threshold_not_a_bucket_boundary_is_rejected_with_the_boundaries() {
    let yaml = GOOD.replace("threshold: 0.25", "threshold: 0.3");
    expect_error(&yaml, 11, "not a bucket boundary", "0.25, 0.5");
    // With custom buckets, 0.3 is fine.
    let yaml = format!(
        "buckets: [0.1, 0.3, 1]\n{}",
        GOOD.replace("threshold: 0.25", "threshold: 0.3")
    );
    ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
    // A latency SLO without threshold.
    let yaml = GOOD.replace("    threshold: 0.25\n", "");
    expect_error(&yaml, 9, "needs a `threshold`", "threshold: 0.25");
}

#[test]
fn duplicate_slo_names_are_rejected() {
    let yaml = GOOD.replace("name: latency", "name: availability");
    expect_error(&yaml, 8, "already used by slos[0]", "different name");
}

#[test]
fn unknown_metric_and_label_are_rejected() {
    let yaml = GOOD.replace(
        "    objective: 99.9\n",
        "    objective: 99.9\n    metric: http_requests_totl\n",
    );
    expect_error(
        &yaml,
        8,
        "unknown metric `http_requests_totl`",
        "http_server_request_duration_seconds",
    );
    let yaml = GOOD.replace(
        "    objective: 99.9\n",
        "    objective: 99.9\n    selectors:\n      status: \"200\"\n",
    );
    expect_error(&yaml, 9, "unknown label `status`", "http_request_method");
    let yaml = GOOD.replace("team: orders", "severity: high");
    expect_error(&yaml, 3, "set by telltale-slo", "rename it");
}

#[test]
fn bad_window_is_rejected() {
    let yaml = GOOD.replace(
        "    objective: 99.9\n",
        "    objective: 99.9\n    window: 30days\n",
    );
    expect_error(&yaml, 8, "window `30days` is not a duration", "e.g. 30d");
    let yaml = GOOD.replace("    objective: 99.9\n", "    objective: 99.9\n    window: 5m\n");
    expect_error(&yaml, 8, "outside 3d..366d", "30d");
}

#[test]
fn syntax_and_type_errors_have_locations() {
    let yaml = GOOD.replace("objective: 99.9", "objective: high");
    let err = ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap_err();
    assert_eq!(err.line(), Some(7), "{err}");
    let err = ServiceSpec::from_yaml_str("service: [unclosed\n", "slo.yaml").unwrap_err();
    assert!(err.line().is_some(), "{err}");
}

#[test]
fn builder_validates_like_yaml() {
    use telltale_slo::spec::Slo;
    let err = ServiceSpec::builder("orders-api")
        .slo(Slo::latency("latency", 99.0, 0.3))
        .build()
        .unwrap_err();
    assert_eq!(err.path(), "slos[0].threshold");
    assert!(err.line().is_none());
    let err = ServiceSpec::builder("orders-api").build().unwrap_err();
    assert_eq!(err.path(), "slos");
}

#[test]
fn cli_writes_nothing_for_an_invalid_spec_and_everything_for_a_valid_one() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.yaml");
    std::fs::write(&bad, GOOD.replace("objective: 99.9", "objective: 100")).unwrap();
    let out = dir.path().join("out");
    let res = std::process::Command::new(env!("CARGO_BIN_EXE_telltale-slo"))
        .arg("generate")
        .arg(&bad)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(!res.status.success());
    let stderr = String::from_utf8_lossy(&res.stderr);
    assert!(stderr.contains("bad.yaml:7:"), "{stderr}");
    assert!(!out.exists(), "nothing may be written for an invalid spec");

    let good = dir.path().join("good.yaml");
    std::fs::write(&good, GOOD).unwrap();
    let res = std::process::Command::new(env!("CARGO_BIN_EXE_telltale-slo"))
        .arg("generate")
        .arg(&good)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(res.status.success(), "{}", String::from_utf8_lossy(&res.stderr));
    assert!(out.join("prometheus/orders-api.rules.yaml").is_file());
    assert!(out.join("alertmanager/alertmanager.yaml").is_file());
    assert!(out.join("grafana/orders-api.json").is_file());
    assert!(out.join("runbooks/OrdersApiAvailabilitySloBurn.md").is_file());
    // No temporary files left behind.
    for entry in std::fs::read_dir(out.join("prometheus")).unwrap() {
        let name = entry.unwrap().file_name();
        assert!(!name.to_string_lossy().contains(".tmp-"), "{name:?}");
    }
}

#[test]
fn docs_show_the_exact_error_messages() {
    let docs = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/slo.md")).unwrap();
    let cases = [
        GOOD.replace("    objective: 99.9\n", "    objective: 99.9\n    objectve: 99\n"),
        GOOD.replace("objective: 99.9", "objective: 100"),
        GOOD.replace("threshold: 0.25", "threshold: 0.3"),
        GOOD.replace("name: latency", "name: availability"),
        GOOD.replace(
            "    objective: 99.9\n",
            "    objective: 99.9\n    metric: http_requests_totl\n",
        ),
        GOOD.replace(
            "    objective: 99.9\n",
            "    objective: 99.9\n    selectors:\n      status: \"200\"\n",
        ),
        GOOD.replace(
            "    objective: 99.9\n",
            "    objective: 99.9\n    window: 30days\n",
        ),
    ];
    for yaml in cases {
        let err = ServiceSpec::from_yaml_str(&yaml, "slo.yaml")
            .unwrap_err()
            .to_string();
        assert!(
            docs.contains(&err),
            "docs/slo.md does not show this message:\n{err}"
        );
    }
}

const JOB: &str = "\
service: orders-api
slos:
  - name: fulfilment
    kind: availability
    queue: fulfil_order
    objective: 99
";

#[test]
fn job_slos_parse_and_read_the_queue_runs() {
    let spec = ServiceSpec::from_yaml_str(JOB, "slo.yaml").unwrap();
    let slo = &spec.slos[0];
    assert_eq!(slo.queue.as_deref(), Some("fulfil_order"));
    let ratio = telltale_slo::promql::error_ratio(&spec, slo, "1h");
    assert_eq!(
        ratio,
        "(sum(rate(messaging_process_duration_seconds_count{service=\"orders-api\",messaging_destination_name=\"fulfil_order\",error_type!=\"\"}[1h])) or vector(0))\n/\nsum(rate(messaging_process_duration_seconds_count{service=\"orders-api\",messaging_destination_name=\"fulfil_order\"}[1h]))"
    );
    let latency = JOB.replace("kind: availability", "kind: latency\n    threshold: 2.5");
    let spec = ServiceSpec::from_yaml_str(&latency, "slo.yaml").unwrap();
    let ratio = telltale_slo::promql::error_ratio(&spec, &spec.slos[0], "5m");
    assert!(
        ratio.contains("messaging_process_duration_seconds_bucket{service=\"orders-api\",messaging_destination_name=\"fulfil_order\",le=\"2.5\"}[5m]"),
        "{ratio}"
    );
    let absent = telltale_slo::promql::absent_expr(&spec, &spec.slos[0]);
    assert!(
        absent.contains("messaging_destination_name=\"fulfil_order\""),
        "{absent}"
    );
    // The same in both schemes: jobs have one set of names.
    let legacy = JOB.replace("slos:", "scheme: legacy\nslos:");
    let spec = ServiceSpec::from_yaml_str(&legacy, "slo.yaml").unwrap();
    assert!(
        telltale_slo::promql::error_ratio(&spec, &spec.slos[0], "1h")
            .starts_with("(sum(rate(messaging_process_duration_seconds_count{")
    );
}

#[test]
fn job_slos_reject_routes_metric_request_labels_and_bad_queues() {
    let yaml = JOB.replace(
        "    objective: 99\n",
        "    objective: 99\n    routes: [\"/orders\"]\n",
    );
    expect_error(&yaml, 7, "has no routes", "remove `routes`");
    let yaml = JOB.replace(
        "    objective: 99\n",
        "    objective: 99\n    metric: messaging_process_duration_seconds\n",
    );
    expect_error(
        &yaml,
        7,
        "always reads messaging_process_duration_seconds",
        "remove `metric`",
    );
    let yaml = JOB.replace(
        "    objective: 99\n",
        "    objective: 99\n    selectors: {http_route: /orders}\n",
    );
    expect_error(
        &yaml,
        7,
        "unknown label `http_route` for a job SLO",
        "messaging_system, environment",
    );
    let yaml = JOB.replace(
        "    objective: 99\n",
        "    objective: 99\n    selectors: {messaging_system: postgresql}\n",
    );
    let spec = ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
    assert!(
        telltale_slo::promql::error_ratio(&spec, &spec.slos[0], "1h")
            .contains("messaging_system=\"postgresql\"")
    );
    let yaml = JOB.replace("queue: fulfil_order", "queue: \"\"");
    expect_error(&yaml, 5, "queue \"\" is not a queue name", "Telemetry::job");
    let yaml = JOB.replace("queue: fulfil_order", "queue: \"tab\\there\"");
    expect_error(
        &yaml,
        5,
        "queue \"tab\\there\" is not a queue name",
        "1 to 255 characters",
    );
    // Names with characters PromQL must quote or regex-escape are fine.
    let yaml = JOB.replace("queue: fulfil_order", "queue: \"emails/high.priority\"");
    let spec = ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
    assert!(
        telltale_slo::promql::error_ratio(&spec, &spec.slos[0], "1h")
            .contains(r#"messaging_destination_name="emails/high.priority""#)
    );
    // The builder validates the same way.
    let err = ServiceSpec::builder("orders-api")
        .slo(
            telltale_slo::spec::Slo::availability("fulfilment", 99.0)
                .queue("fulfil_order")
                .route("/orders"),
        )
        .build()
        .unwrap_err();
    assert!(err.to_string().contains("has no routes"), "{err}");
}

#[test]
fn window_shorter_than_the_slowest_burn_rate_alert_is_rejected() {
    // The 3d/6h ticket reads three days of errors: a shorter SLO window makes no sense.
    let yaml = GOOD.replace("    objective: 99.9\n", "    objective: 99.9\n    window: 2d\n");
    let text = expect_error(&yaml, 8, "window 2d is outside 3d..366d", "28d or 30d");
    assert!(text.contains("slos[0].window"), "{text}");
    assert!(text.contains("3d/6h"), "{text}");
    let yaml = GOOD.replace("    objective: 99.9\n", "    objective: 99.9\n    window: 71h\n");
    expect_error(&yaml, 8, "outside 3d..366d", "30d");
    for ok in ["3d", "72h", "4w", "28d", "720h", "366d"] {
        let yaml = GOOD.replace(
            "    objective: 99.9\n",
            &format!("    objective: 99.9\n    window: {ok}\n"),
        );
        ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap_or_else(|e| panic!("{ok}: {e}"));
    }
}

#[test]
fn an_objective_without_any_paging_pair_is_rejected_with_the_cut_off() {
    // 80% over 30d: the page thresholds are 14.4 × 0.2 = 2.88 and 6 × 0.2 = 1.2, both
    // above any error ratio; pages need more than 100 - 100/6 = 83.33%.
    let yaml = GOOD.replace("objective: 99.9", "objective: 80");
    let text = expect_error(
        &yaml,
        7,
        "objective 80 over 30d leaves no paging burn-rate alert",
        "raise the objective",
    );
    assert!(text.contains("slos[0].objective"), "{text}");
    assert!(text.contains("2.88 over 1h/5m, 1.2 over 6h/30m"), "{text}");
    assert!(text.contains("above 100 - 100/6 ≈ 83.33%"), "{text}");
    // 28 days: the slowest page burns 5.6x, so the cut-off is 100 - 100/5.6.
    let yaml = GOOD.replace("    objective: 99.9\n", "    objective: 82\n    window: 28d\n");
    expect_error(&yaml, 7, "above 100 - 100/5.6 ≈ 82.14%", "shorter window");
    // Just above the cut-off one page pair is left (6 × 0.16 = 0.96).
    let yaml = GOOD.replace("objective: 99.9", "objective: 84");
    ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
    // The builder validates the same way.
    let err = ServiceSpec::builder("orders-api")
        .slo(telltale_slo::Slo::availability("availability", 83.0))
        .build()
        .unwrap_err();
    assert_eq!(err.path(), "slos[0].objective");
}

#[test]
fn slo_names_that_give_the_same_alert_names_are_rejected() {
    let yaml = GOOD
        .replace("name: latency", "name: Availability")
        .replace("name: Availability", "name: avail-ability");
    let yaml = yaml.replace("name: availability", "name: avail_ability");
    let text = expect_error(
        &yaml,
        8,
        "SLO name `avail-ability` gives the same alert and runbook names as `avail_ability` (slos[0]): OrdersApiAvailAbilitySloBurn",
        "differ in more than `-`, `_` and case",
    );
    assert!(text.contains("slos[1].name"), "{text}");
    // Names that camel-case alike but for case (runbook files on a case-insensitive file
    // system) too.
    let err = ServiceSpec::builder("orders-api")
        .slo(telltale_slo::Slo::availability("checkout-latency", 99.9))
        .slo(telltale_slo::Slo::availability("checkoutlatency", 99.9))
        .build()
        .unwrap_err();
    assert_eq!(err.path(), "slos[1].name", "{err}");
    let err = ServiceSpec::builder("orders-api")
        .slo(telltale_slo::Slo::availability("checkout-latency", 99.9))
        .slo(telltale_slo::Slo::latency("checkout_latency", 99.0, 0.25))
        .build()
        .unwrap_err();
    assert!(err.message().contains("OrdersApiCheckoutLatencySloBurn"), "{err}");
}

#[test]
fn template_braces_in_alert_labels_and_annotations_are_rejected() {
    let yaml = GOOD.replace("team: orders", "team: \"{{ $labels.x }}\"");
    let text = expect_error(
        &yaml,
        3,
        "the label value `{{ $labels.x }}` contains `{{` or `}}`",
        "remove the double braces",
    );
    assert!(text.contains("labels.team"), "{text}");
    let yaml = GOOD.replace("team: orders", "team: \"orders}}\"");
    expect_error(&yaml, 3, "contains `{{` or `}}`", "remove the double braces");
    let yaml = format!("runbook_base: \"https://runbooks.example.com/{{{{ .x }}}}\"\n{GOOD}");
    let text = expect_error(&yaml, 1, "the URL", "remove the double braces");
    assert!(text.contains("runbook_base"), "{text}");
    let yaml = JOB.replace("queue: fulfil_order", "queue: \"fulfil_{{order}}\"");
    let text = expect_error(
        &yaml,
        5,
        "the queue name `fulfil_{{order}}`",
        "remove the double braces",
    );
    assert!(text.contains("slos[0].queue"), "{text}");
    // Single braces are fine (no template action).
    let yaml = GOOD.replace("team: orders", "team: \"{orders}\"");
    ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
}

#[test]
fn an_overflowing_window_is_not_a_duration() {
    // 99999999999999 weeks overflow u64 seconds: an error, not a panic or a wrapped value.
    let yaml = GOOD.replace(
        "    objective: 99.9\n",
        "    objective: 99.9\n    window: 99999999999999w\n",
    );
    expect_error(&yaml, 8, "window `99999999999999w` is not a duration", "e.g. 30d");
    assert_eq!(telltale_slo::spec::Window::parse("99999999999999w"), None);
    assert_eq!(telltale_slo::spec::Window::parse("30500568904944w"), None);
    assert_eq!(
        telltale_slo::spec::Window::parse("30500568904943w").map(|w| w.seconds()),
        Some(30_500_568_904_943 * 604_800)
    );
}

#[test]
fn the_objective_field_is_validated_even_when_set_after_construction() {
    use telltale_slo::{Decimal, Slo};
    for (objective, message) in [
        (
            Decimal::ZERO,
            "objective 0 is not a percentage strictly between 0 and 100",
        ),
        (
            Decimal::new(-5, 0),
            "objective -5 is not a percentage strictly between 0 and 100",
        ),
        (
            Decimal::HUNDRED,
            "objective 100 is not a percentage strictly between 0 and 100",
        ),
        (
            Decimal::new(1_000_000_001, 7),
            "objective 100.0000001 is not a percentage",
        ),
        (
            Decimal::new(999_999_999, 7),
            "leaves an error budget below 0.0001%",
        ),
    ] {
        let mut slo = Slo::availability("availability", 99.9);
        slo.objective = objective;
        let err = ServiceSpec::builder("orders-api")
            .slo(slo)
            .build()
            .expect_err("invalid objective accepted");
        assert_eq!(err.path(), "slos[0].objective", "{err}");
        assert!(err.message().contains(message), "{err}");
    }
    // And a valid field replacing an invalid constructor argument is fine.
    let mut slo = Slo::availability("availability", 100.0);
    slo.objective = "99.5".parse().unwrap();
    let spec = ServiceSpec::builder("orders-api").slo(slo).build().unwrap();
    assert_eq!(spec.slos[0].error_budget().to_string(), "0.005");
}

#[test]
fn values_with_too_many_digits_are_rejected_not_replaced() {
    let yaml = format!("warnings:\n  error_ratio: 1.2345678901234567e-14\n{GOOD}");
    let text = expect_error(&yaml, 2, "has more than 30 digits", "round it");
    assert!(text.contains("warnings.error_ratio"), "{text}");
    let yaml = format!("warnings:\n  dependency_error_ratio: 1.2345678901234567e-14\n{GOOD}");
    expect_error(&yaml, 2, "has more than 30 digits", "round it");
    let yaml = GOOD.replace("objective: 99.9", "objective: 1e-30");
    let text = expect_error(&yaml, 7, "has more than 30 digits", "fewer digits");
    assert!(text.contains("slos[0].objective"), "{text}");
    let err = ServiceSpec::builder("orders-api")
        .slo(telltale_slo::Slo::availability("availability", 1e-30))
        .build()
        .unwrap_err();
    assert!(err.message().contains("more than 30 digits"), "{err}");
    let err = ServiceSpec::builder("orders-api")
        .slo(telltale_slo::Slo::availability("availability", f64::NAN))
        .build()
        .unwrap_err();
    assert!(
        err.message().contains("objective NaN is not a percentage"),
        "{err}"
    );
    // Small values that have an exact decimal are kept as written.
    let yaml = format!("warnings:\n  error_ratio: 1.5e-9\n{GOOD}");
    let spec = ServiceSpec::from_yaml_str(&yaml, "slo.yaml").unwrap();
    assert_eq!(spec.warnings.error_ratio.to_string(), "0.0000000015");
}
