use std::collections::BTreeSet;
use std::path::Path;

use fleet_testing::{OtlpReceiver, ReceivedSpan, WAIT, eventually};
use serde_json::{Value, json};
use shared_events::Topic;

use crate::helpers::{Fleet, refused};

/// The metric names a PromQL text uses: identifiers with an underscore that are neither
/// functions nor inside a quoted label value.
fn metric_names(promql: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = promql;
    while let Some(start) = rest.find(|c: char| c.is_ascii_alphabetic() || c == '_' || c == '"') {
        if rest[start..].starts_with('"') {
            let close = rest[start + 1..]
                .find('"')
                .map_or(rest.len(), |end| start + end + 2);
            rest = &rest[close..];
            continue;
        }
        let token_end = rest[start..]
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .map_or(rest.len(), |end| start + end);
        let token = &rest[start..token_end];
        let preceded_by_dollar = rest[..start].ends_with('$');
        let called = rest[token_end..].trim_start().starts_with('(');
        if token.contains('_') && !preceded_by_dollar && !called && !token.starts_with('_') {
            names.insert(token.to_owned());
        }
        rest = &rest[token_end..];
    }
    names
}

/// The PromQL of every rule in a rules file: each `expr:` value, inline or a `|` block (the
/// rest of the file, annotations included, is not PromQL).
fn rule_expressions(yaml: &str) -> Vec<String> {
    let mut expressions = Vec::new();
    let mut lines = yaml.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let Some(value) = trimmed.strip_prefix("expr:") else {
            continue;
        };
        let indent = line.len() - trimmed.len();
        match value.trim() {
            "|" | ">" => {
                let mut block = String::new();
                while let Some(next) = lines.next_if(|next| {
                    next.trim().is_empty() || next.len() - next.trim_start().len() > indent
                }) {
                    block.push_str(next);
                    block.push('\n');
                }
                expressions.push(block);
            }
            inline => expressions.push(inline.to_owned()),
        }
    }
    expressions
}

fn observability_file(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../kubernetes/base/observability")
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn metric_names_are_read_from_promql() {
    let names = metric_names(
        r#"histogram_quantile(0.99, sum by (service, le) (rate(http_request_duration_seconds_bucket{status=~"5..",state="in_use"}[$__rate_interval]))) > 0 and payment_circuit_state == 1"#,
    );
    let expected = [
        "http_request_duration_seconds_bucket",
        "payment_circuit_state",
    ];
    assert_eq!(names, expected.map(String::from).into());
}

#[test]
fn rule_expressions_are_read_from_the_rules_file() {
    let rules = rule_expressions(
        "      - alert: A\n        expr: |\n          sum(a_total)\n          > 1\n        for: 5m\n        \
         annotations:\n          runbook_url: \"x\"\n      - alert: B\n        expr: max(b_seconds) > 60\n",
    );
    assert_eq!(rules.len(), 2, "{rules:?}");
    assert_eq!(
        rules
            .iter()
            .flat_map(|e| metric_names(e))
            .collect::<Vec<_>>(),
        ["a_total", "b_seconds"]
    );
}

#[tokio::test]
async fn every_series_the_alerts_and_the_dashboard_use_is_exported() {
    let rules = rule_expressions(&observability_file("alerts.yml"));
    let mut wanted: BTreeSet<String> = rules.iter().flat_map(|e| metric_names(e)).collect();
    let dashboard: Value =
        serde_json::from_str(&observability_file("grafana-dashboard.json")).unwrap();
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            wanted.extend(metric_names(target["expr"].as_str().unwrap()));
        }
    }
    assert!(wanted.len() >= 12, "{wanted:?}");

    // Traffic that makes every series appear: a rent and a cancel (HTTP, payment calls, the
    // outbox, consumers) and an event nobody can read (the dead-letter topic).
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let customer = fleet.sign_up().await;
    let book = fleet.book(&manager, 300).await;
    let rental = fleet.rent(&customer, &book).await;
    let cancel = format!("/api/v1/rentals/{}/cancel", rental["id"].as_str().unwrap());
    assert_eq!(
        fleet
            .post(&cancel, &customer.token, json!({}))
            .await
            .status(),
        200
    );
    fleet
        .kafka
        .send(Topic::Rental, &book, b"not an event")
        .await;

    eventually(
        "every wanted series in some process's /metrics",
        WAIT,
        || async {
            let mut scraped = String::new();
            for (_, process) in fleet.processes() {
                let metrics = fleet.get_at(&process.ops_base_url, "/metrics", "").await;
                scraped.push_str(&metrics.text().await.ok()?);
            }
            let exported = |name: &str| {
                scraped.lines().any(|line| {
                    line.starts_with(&format!("{name}{{")) || line.starts_with(&format!("{name} "))
                })
            };
            let missing: Vec<&String> = wanted.iter().filter(|name| !exported(name)).collect();
            if !missing.is_empty() {
                eprintln!("not exported yet: {missing:?}");
            }
            missing.is_empty().then_some(())
        },
    )
    .await;
}

#[tokio::test]
async fn one_rent_is_one_trace_across_the_fleet() {
    let fleet = Fleet::start().await;
    let manager = fleet.manager().await;
    let customer = fleet.sign_up().await;
    let book = fleet.book(&manager, 300).await;
    let trace_id = "0af7651916cd43dd8448eb211c80319c";
    let response = fleet
        .client
        .post(fleet.url("/api/v1/rentals"))
        .bearer_auth(&customer.token)
        .header("traceparent", format!("00-{trace_id}-b7ad6b7169203331-01"))
        .json(&json!({"bookId": book}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    // The gateway and rental log the request, payment the call rental made, and every consumer
    // (book-management, user, view, points) the events of the rent it applied. Consumers apply at
    // their own pace, so everything is awaited together: view sees BookRented and PaymentApproved
    // on two topics, in either order.
    let applied = |logs: String| {
        logs.lines()
            .filter(|line| line.contains(trace_id) && line.contains("event applied"))
            .count()
    };
    eventually(
        "the rent's trace id in every process's logs and the events applied in it",
        WAIT,
        || async {
            let missing: Vec<&str> = fleet
                .processes()
                .into_iter()
                .filter(|(_, process)| !process.logs().contains(trace_id))
                .map(|(name, _)| name)
                .collect();
            let in_books = applied(fleet.books.logs());
            let on_the_board = applied(fleet.view.logs());
            let in_points = applied(fleet.points.logs());
            if !missing.is_empty() || in_books < 1 || on_the_board < 2 || in_points < 1 {
                eprintln!(
                    "no trace id yet in: {missing:?}; applied by book-management: {in_books}, \
                     by view: {on_the_board}, by points: {in_points}"
                );
                return None;
            }
            Some(())
        },
    )
    .await;
}

#[tokio::test]
async fn one_rent_is_one_exported_trace_parent_linked_across_http_and_kafka() {
    let collector = OtlpReceiver::start().await;
    let fleet = Fleet::start_with_everyone(&collector.env()).await;
    let manager = fleet.manager().await;
    let customer = fleet.sign_up().await;
    let book = fleet.book(&manager, 300).await;
    // No traceparent: the gateway's span starts the trace.
    let response = fleet
        .client
        .post(fleet.url("/api/v1/rentals"))
        .bearer_auth(&customer.token)
        .json(&json!({"bookId": book}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);

    let is = |span: &ReceivedSpan, service: &str, kind: &str, name: &str| {
        span.service == service && span.kind == format!("SPAN_KIND_{kind}") && span.name == name
    };
    // Every consumer of rental.events applies BookRented; view also applies PaymentApproved.
    let consumers = ["book-management", "payment", "user", "view", "points"];
    let trace = eventually("the rent's spans from every process", WAIT, || async {
        let spans = collector.spans();
        let root = spans
            .iter()
            .find(|s| is(s, "gateway", "SERVER", "POST /api/v1/rentals"))?
            .trace_id
            .clone();
        let trace: Vec<ReceivedSpan> = spans.into_iter().filter(|s| s.trace_id == root).collect();
        let consumed = |service: &str, event: &str| {
            trace
                .iter()
                .any(|s| is(s, service, "CONSUMER", &format!("consume {event}")))
        };
        let complete = consumers.iter().all(|c| consumed(c, "BookRented"))
            && consumed("view", "PaymentApproved");
        if !complete {
            let seen: Vec<_> = trace.iter().map(|s| (&s.service, &s.name)).collect();
            eprintln!("the rent's trace so far: {seen:?}");
        }
        complete.then_some(trace)
    })
    .await;

    let parent = |span: &ReceivedSpan| {
        trace
            .iter()
            .find(|p| p.span_id == span.parent_span_id)
            .unwrap_or_else(|| panic!("the parent of {span:?} is not in the trace"))
    };
    let one = |service: &str, kind: &str, name: &str| {
        let found: Vec<_> = trace
            .iter()
            .filter(|s| is(s, service, kind, name))
            .collect();
        assert_eq!(found.len(), 1, "{service} {kind} {name:?} in {trace:#?}");
        found[0]
    };
    // One root, the gateway's; every other span's parent is in the trace.
    let roots: Vec<_> = trace
        .iter()
        .filter(|s| s.parent_span_id.is_empty())
        .collect();
    assert_eq!(roots.len(), 1, "{roots:#?}");
    assert!(is(roots[0], "gateway", "SERVER", "POST /api/v1/rentals"));
    for span in trace.iter().filter(|s| !s.parent_span_id.is_empty()) {
        parent(span);
    }
    // HTTP: gateway → rental → payment, each call the parent of the server's span.
    let to_rental = one("gateway", "CLIENT", "call rental");
    assert_eq!(parent(to_rental).span_id, roots[0].span_id);
    let rent = one("rental", "SERVER", "POST /api/v1/rentals");
    assert_eq!(parent(rent).span_id, to_rental.span_id);
    let to_payment = one("rental", "CLIENT", "call payment");
    assert_eq!(parent(to_payment).span_id, rent.span_id);
    let payment = trace
        .iter()
        .find(|s| s.service == "payment" && s.kind == "SPAN_KIND_SERVER")
        .expect("payment's span");
    assert_eq!(parent(payment).span_id, to_payment.span_id);
    // Kafka: each event's publish span is the child of the request that wrote it, and the parent
    // of every consumer's span for that event.
    for span in trace.iter().filter(|s| s.kind == "SPAN_KIND_CONSUMER") {
        let publish = parent(span);
        assert_eq!(publish.kind, "SPAN_KIND_PRODUCER", "{span:?} ← {publish:?}");
        let writer = parent(publish);
        assert_eq!(writer.kind, "SPAN_KIND_SERVER", "{publish:?} ← {writer:?}");
        let expected_writer = if span.name == "consume BookRented" {
            rent
        } else {
            payment
        };
        assert_eq!(writer.span_id, expected_writer.span_id, "{span:?}");
    }
}

#[tokio::test]
async fn metrics_are_served_on_each_process_operations_port_alone() {
    let fleet = Fleet::start().await;
    for (name, process) in fleet.processes() {
        process.assert_operations_port(name).await;
    }
    // Nor does the public entry point forward a scrape to a service.
    refused(fleet.get("/metrics", "").await, 404).await;
    refused(fleet.get("/api/v1/metrics", "").await, 404).await;
}
