//! The communicate loop over borrowed descriptors (`Communicator`): what a binding that owns the
//! pipes itself relies on — an event for each finished pipe, the descriptors never closed by
//! the loop, resumption after a timeout without losing or repeating a byte, and a return on a
//! signal when asked for.

mod common;

use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant};

use popen::{
    CaptureLimit, CaptureOptions, ChildPipes, ChildStderr, ChildStdin, ChildStdout, Command,
    Communicator, OutputSpace, PipeEvent, Stdio, Stream,
};

/// The handle's pipes, owned here as a binding owns them.
struct Owned {
    stdin: Option<ChildStdin>,
    stdout: Option<ChildStdout>,
    stderr: Option<ChildStderr>,
}

impl Owned {
    fn pipes(&self) -> ChildPipes<'_> {
        ChildPipes {
            stdin: self.stdin.as_ref().map(|p| p.as_fd()),
            stdout: self.stdout.as_ref().map(|p| p.as_fd()),
            stderr: self.stderr.as_ref().map(|p| p.as_fd()),
        }
    }

    /// Steps until `Finished` or `TimedOut`, closing each pipe the loop reports finished;
    /// returns the events seen.
    fn drive(
        &mut self,
        comm: &mut Communicator,
        input: &[u8],
        deadline: Option<Instant>,
    ) -> Vec<PipeEvent> {
        let mut events = Vec::new();
        loop {
            comm.prepare(self.pipes()).expect("prepare");
            let event = comm.step(self.pipes(), input, deadline).expect("step");
            events.push(event);
            match event {
                PipeEvent::InputDone => self.stdin = None,
                PipeEvent::Eof(Stream::Stdout) => self.stdout = None,
                PipeEvent::Eof(Stream::Stderr) => self.stderr = None,
                PipeEvent::Finished | PipeEvent::TimedOut => return events,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

fn spawn(script: &str) -> (popen::Popen, Owned) {
    let mut child = Command::shell(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let owned = Owned {
        stdin: child.stdin.take(),
        stdout: child.stdout.take(),
        stderr: child.stderr.take(),
    };
    (child, owned)
}

/// Every pipe's end is reported once, in an order the child decides, and the loop finishes
/// only once the caller closed them all; the input and both outputs are whole.
#[test]
fn each_finished_pipe_is_reported_for_the_caller_to_close() {
    let input = common::noise(3 << 20, 7);
    let (child, mut owned) = spawn("cat; echo done >&2");
    let mut comm = Communicator::new(CaptureOptions::new());
    let events = owned.drive(&mut comm, &input, None);
    assert_eq!(events.last(), Some(&PipeEvent::Finished));
    for e in [
        PipeEvent::InputDone,
        PipeEvent::Eof(Stream::Stdout),
        PipeEvent::Eof(Stream::Stderr),
    ] {
        assert_eq!(events.iter().filter(|&&x| x == e).count(), 1, "{events:?}");
    }
    assert_eq!(comm.input_offset(), input.len());
    assert!(comm.output(Stream::Stdout) == &input[..]);
    assert_eq!(comm.output(Stream::Stderr), b"done\n");
    assert!(child.wait_shared().expect("wait").success());
}

/// The loop never closes a descriptor it borrows: after `InputDone` and `Eof` the caller's
/// descriptors are still open until the caller drops them.
#[test]
fn the_loop_leaves_the_descriptors_open() {
    let (child, mut owned) = spawn("exec 0<&-; echo x");
    let mut comm = Communicator::new(CaptureOptions::new());
    comm.prepare(owned.pipes()).expect("prepare");
    let stdout_fd = owned.stdout.as_ref().expect("piped").as_raw_fd();
    let mut stdout_eof = false;
    while !stdout_eof {
        let pipes = ChildPipes {
            stdin: None,
            ..owned.pipes()
        };
        match comm.step(pipes, &[], None).expect("step") {
            PipeEvent::Eof(Stream::Stdout) => stdout_eof = true,
            PipeEvent::Eof(Stream::Stderr) => owned.stderr = None,
            other => panic!("unexpected {other:?}"),
        }
    }
    // SAFETY: F_GETFD on a number only reads the descriptor table.
    assert_ne!(
        unsafe { libc::fcntl(stdout_fd, libc::F_GETFD) },
        -1,
        "the loop closed stdout"
    );
    Communicator::release(owned.pipes());
    drop(owned);
    assert!(child.wait_shared().expect("wait").success());
}

/// A child that closed its stdin ends the input early (`EPIPE` swallowed) with what it took.
#[test]
fn a_child_that_stops_reading_ends_the_input() {
    let input = vec![b'x'; 8 << 20];
    let (child, mut owned) = spawn("head -c 1000 >/dev/null; exec 0<&-; sleep 0.2; echo ok");
    let mut comm = Communicator::new(CaptureOptions::new());
    let events = owned.drive(&mut comm, &input, None);
    assert!(events.contains(&PipeEvent::InputDone));
    assert!(comm.input_offset() < input.len());
    assert_eq!(comm.output(Stream::Stdout), b"ok\n");
    assert!(child.wait_shared().expect("wait").success());
}

/// After a timeout, a later step goes on from where the first stopped: the input offset and
/// the output read so far are kept, and the final output has every byte exactly once.
#[test]
fn a_step_after_a_timeout_resumes_without_loss_or_repeat() {
    let (child, mut owned) = spawn("printf one; sleep 0.5; cat; printf two");
    let input = b"middle".to_vec();
    let mut comm = Communicator::new(CaptureOptions::new());
    let deadline = Instant::now() + Duration::from_millis(200);
    let events = owned.drive(&mut comm, &input, Some(deadline));
    assert_eq!(events.last(), Some(&PipeEvent::TimedOut));
    assert_eq!(comm.output(Stream::Stdout), b"one");
    let events = owned.drive(
        &mut comm,
        &input,
        Some(Instant::now() + Duration::from_secs(30)),
    );
    assert_eq!(events.last(), Some(&PipeEvent::Finished));
    assert_eq!(comm.input_offset(), input.len());
    assert_eq!(comm.take_output(Stream::Stdout), b"onemiddletwo");
    assert!(comm.output(Stream::Stdout).is_empty());
    assert!(child.wait_shared().expect("wait").success());
}

/// `prepare` grows the pipes to the options' size once; `release` gives them back blocking.
#[test]
fn prepare_grows_the_pipes_and_release_makes_them_blocking() {
    let (child, owned) = spawn("exec sleep 5");
    let mut comm = Communicator::new(CaptureOptions::new().pipe_size(Some(1 << 20)));
    comm.prepare(owned.pipes()).expect("prepare");
    let fd = owned.stdout.as_ref().expect("piped").as_raw_fd();
    // SAFETY: F_GETPIPE_SZ and F_GETFL on a live descriptor only read its state.
    let (size, flags) = unsafe {
        (
            libc::fcntl(fd, libc::F_GETPIPE_SZ),
            libc::fcntl(fd, libc::F_GETFL),
        )
    };
    // The kernel may refuse past a per-user quota; then the default stays.
    assert!(size == 1 << 20 || size == 65536, "{size}");
    assert_ne!(flags & libc::O_NONBLOCK, 0);
    Communicator::release(owned.pipes());
    // SAFETY: as above.
    assert_eq!(
        unsafe { libc::fcntl(fd, libc::F_GETFL) } & libc::O_NONBLOCK,
        0
    );
    drop(owned);
    child.kill().expect("kill");
    child.wait_shared().expect("wait");
}

extern "C" fn on_alarm(_: libc::c_int) {}

/// With `return_on_signal`, a signal caught by a handler ends the step with `Interrupted`
/// (so a runtime can run its own handlers) and the next step goes on; without it, the step
/// sleeps through. Installs a SIGALRM handler: in a copy of the test binary.
#[test]
fn return_on_signal_reports_a_caught_signal() {
    const NAME: &str = "return_on_signal_reports_a_caught_signal";
    if !common::in_scenario(NAME) {
        assert!(common::run_scenario(NAME, |_| {}).success());
        return;
    }
    // SAFETY: a handler that does nothing, installed without SA_RESTART so that poll fails
    // with EINTR; the scenario process is single-threaded.
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_alarm as *const () as usize;
        libc::sigaction(libc::SIGALRM, &sa, std::ptr::null_mut());
    }
    // The signal goes to this thread (the harness may run the test in a thread of its own,
    // and a process-directed signal would go to the main thread).
    // SAFETY: pthread_self has no preconditions.
    let me = unsafe { libc::pthread_self() } as usize;
    let alarm_in = move |ms: u64| {
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(ms));
            // SAFETY: the test thread is alive: it waits in the step this signal interrupts.
            unsafe { libc::pthread_kill(me as libc::pthread_t, libc::SIGALRM) };
        })
    };
    for interruptible in [true, false] {
        let (child, mut owned) = spawn("sleep 0.6; echo late");
        owned.stdin = None;
        let mut comm = Communicator::new(CaptureOptions::new());
        comm.return_on_signal(interruptible);
        comm.prepare(owned.pipes()).expect("prepare");
        let alarm = alarm_in(100);
        let start = Instant::now();
        let event = comm.step(owned.pipes(), &[], None).expect("step");
        alarm.join().expect("alarm thread");
        if interruptible {
            assert_eq!(event, PipeEvent::Interrupted);
            assert!(start.elapsed() < Duration::from_millis(500));
        } else {
            assert_ne!(event, PipeEvent::Interrupted);
        }
        let events = owned.drive(&mut comm, &[], None);
        assert_eq!(events.last(), Some(&PipeEvent::Finished));
        assert_eq!(comm.output(Stream::Stdout), b"late\n");
        child.wait_shared().expect("wait");
    }
    common::scenario_passed();
}

/// A caller's growable buffer, lent to each step as an `OutputSpace`.
struct Lent {
    buf: Vec<MaybeUninit<u8>>,
    filled: usize,
}

impl Lent {
    fn with_room(room: usize) -> Lent {
        Lent {
            buf: vec![MaybeUninit::uninit(); room],
            filled: 0,
        }
    }

    fn bytes(&self) -> Vec<u8> {
        // SAFETY: the steps initialised the first `filled` bytes.
        self.buf[..self.filled]
            .iter()
            .map(|b| unsafe { b.assume_init() })
            .collect()
    }
}

impl Owned {
    /// `drive` with stdout and stderr read into `lent`, which doubles whenever a step reports
    /// it full; returns the events seen.
    fn drive_into(
        &mut self,
        comm: &mut Communicator,
        input: &[u8],
        deadline: Option<Instant>,
        lent: &mut [Lent; 2],
    ) -> Vec<PipeEvent> {
        let mut events = Vec::new();
        loop {
            comm.prepare(self.pipes()).expect("prepare");
            let [out, err] = lent;
            let mut spaces = [
                OutputSpace::new(&mut out.buf, out.filled),
                OutputSpace::new(&mut err.buf, err.filled),
            ];
            let [so, se] = &mut spaces;
            let event = comm
                .step_into(self.pipes(), input, deadline, [Some(so), Some(se)])
                .expect("step_into");
            let filled = spaces.map(|s| s.filled());
            out.filled = filled[0];
            err.filled = filled[1];
            events.push(event);
            match event {
                PipeEvent::InputDone => self.stdin = None,
                PipeEvent::Eof(Stream::Stdout) => self.stdout = None,
                PipeEvent::Eof(Stream::Stderr) => self.stderr = None,
                PipeEvent::OutputFull(s) => {
                    let l = &mut lent[s as usize];
                    assert_eq!(l.filled, l.buf.len(), "OutputFull with room left");
                    let room = (l.buf.len() * 2).max(1);
                    l.buf.resize(room, MaybeUninit::uninit());
                }
                PipeEvent::Finished | PipeEvent::TimedOut => return events,
                other => panic!("unexpected {other:?}"),
            }
        }
    }
}

/// Output read into lent spaces arrives whole and in order in the caller's memory, however
/// small the room: each full space is reported, the caller grows it, and the next step goes on
/// after its last byte. The communicator's own buffers stay empty.
#[test]
fn step_into_reads_into_the_callers_buffers_and_reports_each_full_one() {
    let input = common::noise(3 << 20, 11);
    let (child, mut owned) = spawn("cat; printf done >&2");
    let mut comm = Communicator::new(CaptureOptions::new());
    let mut lent = [Lent::with_room(1), Lent::with_room(0)];
    let events = owned.drive_into(&mut comm, &input, None, &mut lent);
    assert_eq!(events.last(), Some(&PipeEvent::Finished));
    let full = |s| {
        events
            .iter()
            .filter(|e| **e == PipeEvent::OutputFull(s))
            .count()
    };
    // 1 → 4 MiB by doubling: 22 growths of stdout; stderr grows from 0 to 8.
    assert!(full(Stream::Stdout) >= 20, "{events:?}");
    assert!(full(Stream::Stderr) >= 1, "{events:?}");
    assert!(lent[0].bytes() == input, "stdout differs from the input");
    assert_eq!(lent[1].bytes(), b"done");
    assert!(comm.output(Stream::Stdout).is_empty());
    assert!(comm.output(Stream::Stderr).is_empty());
    assert!(child.wait_shared().expect("wait").success());
}

/// A step into lent spaces that times out keeps what it read in them; the next step goes on
/// after it, without losing or repeating a byte.
#[test]
fn step_into_resumes_after_a_timeout_without_loss_or_repeat() {
    let (child, mut owned) = spawn("printf one; sleep 0.5; cat; printf two");
    let input = b"middle".to_vec();
    let mut comm = Communicator::new(CaptureOptions::new());
    let mut lent = [Lent::with_room(2), Lent::with_room(2)];
    let deadline = Instant::now() + Duration::from_millis(200);
    let events = owned.drive_into(&mut comm, &input, Some(deadline), &mut lent);
    assert_eq!(events.last(), Some(&PipeEvent::TimedOut));
    assert_eq!(lent[0].bytes(), b"one");
    let later = Some(Instant::now() + Duration::from_secs(30));
    let events = owned.drive_into(&mut comm, &input, later, &mut lent);
    assert_eq!(events.last(), Some(&PipeEvent::Finished));
    assert_eq!(comm.input_offset(), input.len());
    assert_eq!(lent[0].bytes(), b"onemiddletwo");
    assert!(child.wait_shared().expect("wait").success());
}

/// Caps count the bytes a lent space holds, including those it held before the step.
#[test]
fn step_into_caps_count_the_bytes_the_space_holds() {
    let (child, mut owned) = spawn("printf 0123456789");
    owned.stdin = None;
    let opts = CaptureOptions::new().stdout_limit(CaptureLimit::Error(5));
    let mut comm = Communicator::new(opts);
    let mut buf = vec![MaybeUninit::uninit(); 64];
    buf[..3].fill(MaybeUninit::new(b'x'));
    let mut space = OutputSpace::new(&mut buf, 3);
    let event = loop {
        comm.prepare(owned.pipes()).expect("prepare");
        match comm.step_into(owned.pipes(), b"", None, [Some(&mut space), None]) {
            Ok(PipeEvent::Eof(Stream::Stderr)) => owned.stderr = None,
            other => break other.expect("step_into"),
        }
    };
    assert_eq!(event, PipeEvent::LimitExceeded(Stream::Stdout));
    // 3 held before, then 3 within the cap and the one byte that tells it is exceeded.
    assert_eq!(space.filled(), 6);
    drop(owned);
    let _ = child.wait_shared();
}
