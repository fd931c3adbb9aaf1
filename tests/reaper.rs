//! Children dropped while they run: reaped in the background, without filling the caller's
//! descriptor table.

mod common;

use common::{in_scenario, open_fds, run_scenario, scenario_passed, zombie_children};
use popen::{Command, SpawnPath};
use std::time::{Duration, Instant};

/// Lowers this process's soft limit on open descriptors to `n` (in a scenario process only).
fn limit_open_files(n: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit read and write one valid rlimit.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim), 0);
        lim.rlim_cur = n;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &lim), 0);
    }
}

#[test]
fn many_dropped_children_leave_the_descriptor_table_usable_and_no_zombie() {
    const NAME: &str = "many_dropped_children_leave_the_descriptor_table_usable_and_no_zombie";
    if in_scenario(NAME) {
        limit_open_files(256);
        let before = open_fds().len();
        for i in 0..300 {
            let path = SpawnPath::ALL[i % SpawnPath::ALL.len()];
            let child = Command::new("sleep")
                .arg("2")
                .spawn_path(path)
                .spawn()
                .unwrap_or_else(|e| panic!("spawn {i} ({path}): {e}"));
            drop(child);
        }
        assert!(
            popen::testing::pending_orphans() > 64,
            "the children exited too soon"
        );
        // The reaper holds a bounded number of descriptors, whatever the number of children.
        std::fs::File::open("/dev/null").expect("open a file while 300 children are dropped");
        let held = open_fds().len() - before;
        assert!(
            held <= 64 + 4,
            "{held} descriptors held for dropped children"
        );
        // Every one is reaped once it exits, without another spawn.
        let deadline = Instant::now() + Duration::from_secs(60);
        while (popen::testing::pending_orphans() > 0 || !zombie_children().is_empty())
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(popen::testing::pending_orphans(), 0);
        assert_eq!(zombie_children(), Vec::<i32>::new());
        scenario_passed();
    }
    assert!(run_scenario(NAME, |_| {}).success());
}
