//! The re-run helpers of `tests/common`: a scenario copy's output stays out of the harness's
//! streams while it passes, and when it fails it is shown with every line naming the scenario.

mod common;

use common::{in_scenario, run_scenario, scenario_command, scenario_passed};
use popen::Stdio;
use std::time::Duration;

const PASSES: &str = "scenario_that_passes";
const FAILS: &str = "scenario_that_fails";

/// Started only by the test below; run directly, it does nothing.
#[test]
fn scenario_that_passes() {
    if in_scenario(PASSES) {
        println!("marker-pass-out");
        eprintln!("marker-pass-err");
        scenario_passed();
    }
}

/// Started only by the test below; run directly, it does nothing.
#[test]
fn scenario_that_fails() {
    if in_scenario(FAILS) {
        println!("marker-fail-out");
        panic!("marker-fail-panic");
    }
}

#[test]
fn scenario_output_is_shown_only_on_failure_and_named() {
    const NAME: &str = "scenario_output_is_shown_only_on_failure_and_named";
    if in_scenario(NAME) {
        assert!(run_scenario(PASSES, |_| {}).success());
        assert!(!run_scenario(FAILS, |_| {}).success());
        scenario_passed();
    }
    // The two runs above happen in a copy whose streams this test reads.
    let out = scenario_command(NAME)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
        .communicate(None, Some(Duration::from_secs(120)))
        .unwrap();
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{}\n{all}", out.status);
    assert!(!all.contains("marker-pass"), "{all}");
    for marker in ["marker-fail-out", "marker-fail-panic"] {
        assert!(all.contains(marker), "{marker} missing:\n{all}");
    }
    let prefix = format!("[scenario {FAILS}] ");
    for line in all.lines().filter(|l| l.contains("marker-fail")) {
        assert!(line.starts_with(&prefix), "{line:?} in:\n{all}");
    }
}
