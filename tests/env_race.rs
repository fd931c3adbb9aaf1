//! The child's environment is a consistent snapshot of the parent's, even while another thread
//! changes the parent's environment.
//!
//! Each test changes the process environment from a second thread, so it runs in a fresh copy
//! of this binary (see `common::run_scenario`).

mod common;

use common::{in_scenario, run_scenario, scenario_passed};
use popen::posix_spawn::{FileActions, SpawnAttr};
use popen::{Command, SpawnPath, Stdio};
use std::io::Read;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

const SPAWNS_PER_PATH: usize = 300;
const RACING_VARS: usize = 64;

/// Starts a thread that adds and removes `RACING_VARS` variables until `stop` is set: each
/// added variable makes the C library grow (and move) its `environ` array.
fn churn_environment(stop: Arc<AtomicBool>) -> JoinHandle<()> {
    std::thread::spawn(move || {
        let mut round = 0u64;
        while !stop.load(Ordering::Relaxed) {
            for i in 0..RACING_VARS {
                std::env::set_var(format!("POPEN_RACE_{i}"), format!("v{i}-{round}"));
            }
            for i in 0..RACING_VARS {
                std::env::remove_var(format!("POPEN_RACE_{i}"));
            }
            round += 1;
        }
    })
}

/// Checks that every `NAME=value` entry of `env -0`'s output is well formed: a non-empty
/// printable name without `=`, each name once, and a racing variable with its own value.
fn assert_well_formed(listing: &[u8], what: &str) {
    let mut names = std::collections::HashSet::new();
    for entry in listing.split(|&b| b == 0).filter(|e| !e.is_empty()) {
        let text = String::from_utf8_lossy(entry);
        let eq = entry
            .iter()
            .position(|&b| b == b'=')
            .unwrap_or_else(|| panic!("{what}: entry without '=': {text:?}"));
        let (name, value) = (&entry[..eq], &entry[eq + 1..]);
        assert!(
            !name.is_empty() && name.iter().all(|b| b.is_ascii_graphic()),
            "{what}: malformed name in {text:?}"
        );
        assert!(names.insert(name.to_vec()), "{what}: {text:?} twice");
        if let Some(i) = name.strip_prefix(b"POPEN_RACE_") {
            let prefix = [b"v", i, b"-"].concat();
            assert!(value.starts_with(&prefix), "{what}: garbage in {text:?}");
        }
    }
    assert!(names.contains(&b"PATH"[..]), "{what}: PATH missing");
}

fn with_churn(f: impl FnOnce()) {
    let stop = Arc::new(AtomicBool::new(false));
    let churn = churn_environment(stop.clone());
    f();
    stop.store(true, Ordering::Relaxed);
    churn.join().unwrap();
}

#[test]
fn spawns_succeed_and_children_see_a_consistent_environment_while_it_changes() {
    const NAME: &str = "spawns_succeed_and_children_see_a_consistent_environment_while_it_changes";
    if !in_scenario(NAME) {
        assert!(run_scenario(NAME, |_| {}).success());
        return;
    }
    with_churn(|| {
        for path in SpawnPath::ALL {
            for n in 0..SPAWNS_PER_PATH {
                let status = Command::new("/bin/true")
                    .spawn_path(path)
                    .spawn()
                    .unwrap_or_else(|e| panic!("{path}: spawn {n} failed: {e}"))
                    .wait()
                    .unwrap();
                assert!(status.success(), "{path}: spawn {n}: {status}");
            }
            for n in 0..SPAWNS_PER_PATH / 10 {
                let mut child = Command::from_argv(["env", "-0"])
                    .spawn_path(path)
                    .stdout(Stdio::piped())
                    .spawn()
                    .unwrap_or_else(|e| panic!("{path}: env spawn {n} failed: {e}"));
                let mut listing = Vec::new();
                child
                    .stdout
                    .take()
                    .unwrap()
                    .read_to_end(&mut listing)
                    .unwrap();
                assert!(child.wait().unwrap().success(), "{path}: env {n}");
                assert_well_formed(&listing, &format!("{path}: env {n}"));
            }
        }
    });
    scenario_passed();
}

#[test]
fn the_posix_spawn_layer_snapshots_the_environment_too() {
    const NAME: &str = "the_posix_spawn_layer_snapshots_the_environment_too";
    if !in_scenario(NAME) {
        assert!(run_scenario(NAME, |_| {}).success());
        return;
    }
    let (actions, attr) = (FileActions::new().unwrap(), SpawnAttr::new().unwrap());
    with_churn(|| {
        for n in 0..SPAWNS_PER_PATH {
            let child = popen::Popen::posix_spawn("/bin/true", &["true"], None, &actions, &attr)
                .unwrap_or_else(|e| panic!("spawn {n} failed: {e}"));
            assert!(child.wait().unwrap().success(), "spawn {n}");
            // posix_spawnp searches PATH, which another thread may be changing too.
            let child = popen::Popen::posix_spawnp("true", &["true"], None, &actions, &attr)
                .unwrap_or_else(|e| panic!("spawnp {n} failed: {e}"));
            assert!(child.wait().unwrap().success(), "spawnp {n}");
        }
    });
    scenario_passed();
}
