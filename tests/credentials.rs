//! The child's user and groups: a root parent's supplementary groups do not follow a child that
//! runs as another user, unless asked for.
//!
//! The tests change this process's groups, so each runs in a fresh copy of this binary (see
//! `common::run_scenario`).

mod common;

use common::{in_scenario, output, run_scenario, scenario_passed};
use popen::{Command, SpawnPath};

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail.
    unsafe { libc::geteuid() == 0 }
}

/// The `Groups:` line of the child's `/proc/self/status`, without its label.
fn child_groups(cmd: &mut Command) -> String {
    let (status, exit) = output(cmd.arg("/proc/self/status"));
    assert!(exit.success(), "{exit}");
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("Groups:"))
        .expect("a Groups: line");
    line.trim().to_owned()
}

/// Gives this (scenario) process the supplementary groups `adm` (4) and `sudo` (27).
fn join_groups() {
    let groups: [libc::gid_t; 2] = [4, 27];
    // SAFETY: setgroups reads `groups.len()` ids from the array.
    let ret = unsafe { libc::setgroups(groups.len(), groups.as_ptr()) };
    assert_eq!(ret, 0, "setgroups: {}", std::io::Error::last_os_error());
}

#[test]
fn a_child_run_as_another_user_drops_roots_groups_unless_asked_to_keep_them() {
    const NAME: &str = "a_child_run_as_another_user_drops_roots_groups_unless_asked_to_keep_them";
    if !is_root() {
        eprintln!("skipped: needs root, to change users and groups");
        return;
    }
    if !in_scenario(NAME) {
        assert!(run_scenario(NAME, |_| {}).success());
        return;
    }
    join_groups();
    for path in [SpawnPath::CloneVfork, SpawnPath::Fork] {
        let cat = || {
            let mut c = Command::new("cat");
            c.spawn_path(path);
            c
        };
        assert_eq!(child_groups(cat().uid(65534)), "", "{path}: uid only");
        assert_eq!(
            child_groups(cat().uid(65534).gid(65534)),
            "",
            "{path}: uid and gid"
        );
        assert_eq!(
            child_groups(cat().uid(65534).keep_supplementary_groups(true)),
            "4 27",
            "{path}: groups kept as asked"
        );
        assert_eq!(
            child_groups(cat().uid(65534).extra_groups([65534])),
            "65534",
            "{path}: extra_groups"
        );
        assert_eq!(child_groups(&mut cat()), "4 27", "{path}: no uid");
    }
    scenario_passed();
}
