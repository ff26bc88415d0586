//! The key-schedule gauges an overdue-rotation alert relies on: when the signing key
//! took over, and the configured rotation period. One test in its own binary, because
//! the metrics recorder is process-wide and another node would overwrite the gauges.

mod common;

use std::time::Duration;

use common::*;
use portcullis::clock::Clock;
use portcullis::issuer::Tick;

const ACTIVATED: &str = "portcullis_signing_key_activated_timestamp_seconds";
const PERIOD: &str = "portcullis_key_rotation_period_seconds";

/// The value of the unlabelled sample `name` in the node's `/metrics`.
fn gauge(node: &TestNode, name: &str) -> Option<f64> {
    let text = http()
        .get(node.url("/metrics"))
        .send()
        .expect("metrics answered")
        .text()
        .expect("metrics text");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

fn tick(node: &TestNode) {
    futures::executor::block_on(node.handles.issuer.send(Tick)).expect("issuer is running");
}

#[test]
fn signing_key_gauges_follow_the_schedule() {
    let node = TestNode::start();
    let started = node.clock.now_ms() as f64 / 1000.0;
    tick(&node);

    // The first key signs from start-up; rotation_period is 1 day in the test config.
    assert_eq!(gauge(&node, PERIOD), Some(86_400.0));
    let first = gauge(&node, ACTIVATED).expect("the activation gauge is exported");
    assert!(
        (first - started).abs() < 5.0,
        "first key activated at {first}, node started at {started}"
    );

    // The successor is published 5 minutes ahead; the gauge moves only when it signs.
    node.clock.advance(Duration::from_secs(24 * 3600 - 300));
    tick(&node);
    assert_eq!(gauge(&node, ACTIVATED), Some(first));
    node.clock.advance(Duration::from_secs(300));
    tick(&node);
    let second = gauge(&node, ACTIVATED).expect("the activation gauge is exported");
    assert!(
        (second - first - 86_400.0).abs() < 5.0,
        "successor activated at {second}, a period after {first}"
    );
}
