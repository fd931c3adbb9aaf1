//! Many concurrent spawns: no descriptor leaks into another child, none is left open in the
//! parent, and no zombie remains.

mod common;

use common::{in_scenario, open_fds, run_scenario, scenario_passed, zombie_children};
use popen::{Command, SpawnPath, Stdio};

#[test]
fn ten_thousand_spawns_from_four_threads() {
    const NAME: &str = "ten_thousand_spawns_from_four_threads";
    if in_scenario(NAME) {
        let before = open_fds();
        let threads: Vec<_> = (0..4)
            .map(|t| {
                std::thread::spawn(move || {
                    for i in 0..2500 {
                        let mut cmd = Command::new("true");
                        if i % 3 == 0 {
                            cmd.stdout(Stdio::piped()).stdin(Stdio::piped());
                        }
                        if i % 50 == 0 {
                            // Now and then through the other paths too.
                            cmd.spawn_path(SpawnPath::ALL[(t + i / 50) % 3]);
                        }
                        let child = cmd.spawn().unwrap();
                        if i % 7 == 0 {
                            drop(child); // left to the reaper
                        } else {
                            assert!(child.wait().unwrap().success());
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while popen::testing::pending_orphans() > 0 && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        // The reaper thread's wake-up pipe is the only descriptor allowed to be new.
        let after: Vec<_> = open_fds()
            .into_iter()
            .filter(|fd| !before.contains(fd))
            .collect();
        assert!(after.len() <= 2, "new descriptors: {after:?}");
        assert_eq!(zombie_children(), Vec::<i32>::new());
        scenario_passed();
    }
    let status = run_scenario(NAME, |_| {});
    assert!(status.success(), "{status}");
}

#[test]
fn concurrent_spawns_never_leak_pipes_into_other_children() {
    // close_fds off: only close-on-exec protects a child from another thread's pipes.
    let listing = |path: SpawnPath| {
        let mut child = Command::new("ls")
            .arg("/proc/self/fd")
            .close_fds(false)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn_path(path)
            .spawn()
            .unwrap();
        let out = common::read_all(&mut child);
        child.wait().unwrap();
        out
    };
    // What a child sees with nothing else going on: 0–2, the directory ls opened, and whatever
    // this test process itself inherited without close-on-exec.
    let baseline = listing(SpawnPath::PosixSpawn);
    assert!(baseline.starts_with("0\n1\n"), "{baseline}");
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let baseline = baseline.clone();
            std::thread::spawn(move || {
                for i in 0..60 {
                    assert_eq!(listing(SpawnPath::ALL[(t + i) % 3]), baseline);
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
}
