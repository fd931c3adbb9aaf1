//! Redirections to and from a path: `Stdio::read_from`, `write_to`, `append_to`.

mod common;

use common::on_each_path;
use popen::{Command, Stdio, Step};
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A fresh path in a fresh directory, removed with it at the end of the test.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "popen-redirect-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir(&dir).unwrap();
        Scratch(dir)
    }

    fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn write_to_creates_or_truncates_and_append_to_appends() {
    on_each_path(
        || Command::shell("echo new"),
        |path, cmd| {
            let dir = Scratch::new();
            let file = dir.file("out");
            std::fs::write(&file, "old contents, longer than the new\n").unwrap();
            assert!(cmd
                .stdout(Stdio::write_to(&file))
                .status()
                .unwrap()
                .success());
            assert_eq!(std::fs::read_to_string(&file).unwrap(), "new\n", "{path}");
            cmd.stdout(Stdio::append_to(&file));
            cmd.status().unwrap();
            cmd.status().unwrap();
            assert_eq!(
                std::fs::read_to_string(&file).unwrap(),
                "new\nnew\nnew\n",
                "{path}"
            );
            let created = dir.file("created");
            cmd.stderr(Stdio::append_to(&created));
            cmd.status().unwrap();
            assert_eq!(std::fs::read_to_string(&created).unwrap(), "", "{path}");
        },
    );
}

#[test]
fn read_from_feeds_stdin_and_both_streams_can_share_a_file() {
    on_each_path(
        || Command::shell("cat; echo err >&2"),
        |path, cmd| {
            let dir = Scratch::new();
            let (input, log) = (dir.file("in"), dir.file("log"));
            std::fs::write(&input, "from the file\n").unwrap();
            cmd.stdin(Stdio::read_from(&input))
                .stdout(Stdio::write_to(&log))
                .stderr(Stdio::same_as_stdout());
            assert!(cmd.status().unwrap().success(), "{path}");
            assert_eq!(
                std::fs::read_to_string(&log).unwrap(),
                "from the file\nerr\n",
                "{path}"
            );
        },
    );
}

#[test]
fn the_file_is_opened_at_spawn_not_when_the_command_is_built() {
    let dir = Scratch::new();
    let input = dir.file("later");
    let mut cmd = Command::new("cat");
    cmd.stdin(Stdio::read_from(&input));
    // Not there yet: the spawn fails, naming it.
    let err = cmd.spawn().map(drop).unwrap_err();
    assert_eq!(err.step(), Step::Open);
    std::fs::write(&input, "now\n").unwrap();
    assert_eq!(cmd.output().unwrap().stdout, b"now\n");
    std::fs::write(&input, "changed\n").unwrap();
    assert_eq!(cmd.output().unwrap().stdout, b"changed\n");
}

#[test]
fn an_unopenable_path_is_named() {
    on_each_path(
        || Command::new("true"),
        |path, cmd| {
            let dir = Scratch::new();
            let missing = dir.file("no/such/dir/out");
            let err = cmd
                .stdout(Stdio::write_to(&missing))
                .spawn()
                .map(drop)
                .unwrap_err();
            assert_eq!(err.step(), Step::Open, "{path}");
            assert_eq!(err.kind(), std::io::ErrorKind::NotFound, "{path}");
            assert_eq!(err.path(), Some(missing.as_path()), "{path}");
            assert_eq!(
                err.to_string(),
                format!("could not open {missing:?}: No such file or directory (os error 2)")
            );
            // A directory cannot be written to: EISDIR, still named.
            let err = cmd
                .stdout(Stdio::write_to(&dir.0))
                .spawn()
                .map(drop)
                .unwrap_err();
            assert_eq!(
                (err.step(), err.path()),
                (Step::Open, Some(dir.0.as_path()))
            );
        },
    );
}

#[test]
fn a_path_with_a_nul_byte_is_refused_before_anything_is_opened() {
    let err = Command::new("true")
        .stdout(Stdio::write_to("a\0b"))
        .spawn()
        .map(drop)
        .unwrap_err();
    assert_eq!(err.step(), Step::Prepare);
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[test]
fn a_relative_path_is_resolved_from_this_process_not_the_child_cwd() {
    let dir = Scratch::new();
    let name = format!("popen-relative-{}", std::process::id());
    let here = std::env::current_dir().unwrap().join(&name);
    let mut cmd = Command::new("pwd");
    cmd.cwd(&dir.0).stdout(Stdio::write_to(&name));
    let status = cmd.status();
    let written = std::fs::read_to_string(&here);
    let _ = std::fs::remove_file(&here);
    assert!(status.unwrap().success());
    assert!(!dir.0.join(&name).exists());
    assert_eq!(
        std::path::Path::new(written.unwrap().trim_end()),
        dir.0.canonicalize().unwrap()
    );
}

#[test]
fn no_descriptor_is_left_open_in_the_parent() {
    const NAME: &str = "no_descriptor_is_left_open_in_the_parent";
    if common::in_scenario(NAME) {
        let dir = Scratch::new();
        std::fs::write(dir.file("in"), "x").unwrap();
        let before = common::open_fds();
        for _ in 0..3 {
            let status = Command::new("cat")
                .stdin(Stdio::read_from(dir.file("in")))
                .stdout(Stdio::write_to(dir.file("out")))
                .stderr(Stdio::append_to(dir.file("err")))
                .status()
                .unwrap();
            assert!(status.success());
            let _ = Command::new("cat")
                .stdin(Stdio::read_from(dir.file("in")))
                .stdout(Stdio::write_to(dir.file("missing/out")))
                .spawn()
                .map(drop)
                .unwrap_err();
        }
        if common::open_fds() != before {
            std::process::exit(1);
        }
        common::scenario_passed();
    }
    assert!(common::run_scenario(NAME, |_| {}).success());
}
