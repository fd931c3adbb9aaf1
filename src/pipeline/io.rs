//! The one loop that runs a pipeline to its end: it writes the input to the first stage,
//! reads the last stage's stdout and every stage's piped stderr, and watches every stage's
//! pidfd, all with one `poll(2)` — so no pattern of output can deadlock it, and a stage's exit
//! is reaped as it happens — then stops every stage when the deadline passes.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd};
use std::time::{Duration, Instant};

use super::error::{PipelineError, PipelineErrorKind};
use super::handle::PipelineChild;
use super::status::{PipelineOutput, StageReport};
use crate::capture::{Capture, CaptureLimit, ReadOnce, Scratch};
use crate::popen::Popen;
use crate::run::RunOptions;
use crate::status::ExitStatus;
use crate::stdio::{ChildStderr, ChildStdin, ChildStdout};
use crate::sys;
use crate::sys::poll::SigpipeGuard;
use crate::text::Stream;

/// The most bytes one `write` moves (half a grown pipe, so the stage reads one half while the
/// other is written).
const MAX_WRITE: usize = 512 << 10;
/// Without pidfds, how often a stage that has closed its pipes is polled for its exit.
const NO_PIDFD_POLL: Duration = Duration::from_millis(20);
/// The time at least given to reaping killed stages.
const REAP_AT_LEAST: Duration = Duration::from_millis(50);

/// Why the pump returned.
enum Pumped {
    /// Every pipe is at end of file and every stage reaped.
    Done,
    TimedOut,
    /// A stage's stream went over its error cap.
    Over(usize, Stream),
}

#[derive(Clone, Copy)]
enum Slot {
    Stdin,
    Stdout,
    Stderr(usize),
    Exit(usize),
}

struct Pump<'a> {
    stdin: Option<ChildStdin>,
    input: &'a [u8],
    pos: usize,
    stdout: Option<ChildStdout>,
    out: Capture,
    stderr: Vec<Option<ChildStderr>>,
    errs: Vec<Capture>,
    statuses: Vec<Option<ExitStatus>>,
    limits: [Option<CaptureLimit>; 2],
    tee: [bool; 2],
    /// Where bytes beyond a truncating cap are read to and dropped.
    scratch: Scratch,
}

/// Runs the started pipeline `child` to its end under `opts` and `deadline`.
pub(crate) fn run_to_end(
    child: &mut PipelineChild,
    opts: &RunOptions<'_>,
    deadline: Option<Instant>,
    n: usize,
) -> Result<PipelineOutput, PipelineError> {
    let mut pump = Pump {
        stdin: child.stdin.take(),
        input: opts.input.as_deref().unwrap_or_default(),
        pos: 0,
        stdout: child.stdout.take(),
        out: Capture::default(),
        stderr: child
            .stages_mut()
            .iter_mut()
            .map(|c| c.stderr.take())
            .collect(),
        errs: (0..n).map(|_| Capture::default()).collect(),
        statuses: vec![None; n],
        limits: [
            opts.capture_opts.limit(Stream::Stdout),
            opts.capture_opts.limit(Stream::Stderr),
        ],
        tee: opts.capture_opts.tee,
        scratch: Scratch::default(),
    };
    if pump.pos >= pump.input.len() {
        pump.stdin = None;
    }
    let pumped = pump
        .prepare(opts.capture_opts.pipe_size)
        .and_then(|()| pump.run(child.stages(), deadline));
    let stopped = match pumped {
        Ok(Pumped::Done) => None,
        Ok(Pumped::TimedOut) => Some(PipelineErrorKind::Timeout {
            timeout: opts.timeout.unwrap_or_default(),
        }),
        Ok(Pumped::Over(stage, stream)) => Some(PipelineErrorKind::LimitExceeded {
            stage,
            stream,
            limit: pump.limits[index(stream)].map_or(0, CaptureLimit::bytes),
        }),
        Err(e) => Some(PipelineErrorKind::Io(e)),
    };
    if let Some(kind) = stopped {
        let grace = match kind {
            PipelineErrorKind::Io(_) => Duration::ZERO,
            _ => opts.grace,
        };
        pump.stop(child, grace);
        if let PipelineErrorKind::LimitExceeded {
            stage,
            stream,
            limit,
        } = kind
        {
            let cap = match stream {
                Stream::Stdout => &mut pump.out,
                Stream::Stderr => &mut pump.errs[stage],
            };
            cap.buf.truncate(limit);
        }
        let stdout = std::mem::take(&mut pump.out.buf);
        return Err(PipelineError::new(kind, pump.reports(child), stdout));
    }
    let statuses = pump.statuses.iter().map(|s| s.expect("reaped")).collect();
    let status = child.status_of(statuses);
    if opts.check {
        if let Some(stage) = status.failed_stage() {
            let stdout = std::mem::take(&mut pump.out.buf);
            return Err(PipelineError::new(
                PipelineErrorKind::Failed { stage, status },
                pump.reports(child),
                stdout,
            ));
        }
    }
    Ok(PipelineOutput {
        status,
        stdout: std::mem::take(&mut pump.out.buf),
        stderr: pump
            .errs
            .iter_mut()
            .map(|c| std::mem::take(&mut c.buf))
            .collect(),
        args: child.stages().iter().map(|c| c.args().to_vec()).collect(),
        stdout_dropped: pump.out.dropped,
        stderr_dropped: pump.errs.iter().map(|c| c.dropped).collect(),
    })
}

impl Pump<'_> {
    fn pipe_fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.stdin
            .iter()
            .map(AsFd::as_fd)
            .chain(self.stdout.iter().map(AsFd::as_fd))
            .chain(self.stderr.iter().flatten().map(AsFd::as_fd))
    }

    /// Makes the parent's pipes non-blocking and grows them as asked.
    fn prepare(&mut self, pipe_size: Option<usize>) -> io::Result<()> {
        for fd in self.pipe_fds() {
            sys::fd::set_nonblocking(fd, true)?;
            if let Some(size) = pipe_size {
                if sys::poll::pipe_size(fd).is_ok_and(|cur| cur < size) {
                    // Best effort: the kernel refuses past the per-user pipe quota.
                    let _ = sys::fd::set_pipe_size(fd, size);
                }
            }
        }
        Ok(())
    }

    /// Moves data and reaps stages until every pipe is at end of file and every stage reaped,
    /// the deadline passes, or a cap is exceeded.
    fn run(&mut self, stages: &[Popen], deadline: Option<Instant>) -> io::Result<Pumped> {
        let sigpipe = self.stdin.is_some().then(SigpipeGuard::new);
        let mut fds: Vec<libc::pollfd> = Vec::new();
        let mut slots: Vec<Slot> = Vec::new();
        loop {
            fds.clear();
            slots.clear();
            let mut add = |fd: BorrowedFd<'_>, events, slot| {
                fds.push(libc::pollfd {
                    fd: fd.as_raw_fd(),
                    events,
                    revents: 0,
                });
                slots.push(slot);
            };
            if let Some(stdin) = &self.stdin {
                add(stdin.as_fd(), libc::POLLOUT, Slot::Stdin);
            }
            if let Some(stdout) = &self.stdout {
                add(stdout.as_fd(), libc::POLLIN, Slot::Stdout);
            }
            for (i, e) in self.stderr.iter().enumerate() {
                if let Some(e) = e {
                    add(e.as_fd(), libc::POLLIN, Slot::Stderr(i));
                }
            }
            let pipes = fds.len();
            let mut without_pidfd = false;
            for (i, child) in stages.iter().enumerate() {
                if self.statuses[i].is_some() {
                    continue;
                }
                match child.pidfd() {
                    Some(fd) => {
                        fds.push(libc::pollfd {
                            fd: fd.as_raw_fd(),
                            events: libc::POLLIN,
                            revents: 0,
                        });
                        slots.push(Slot::Exit(i));
                    }
                    None => match child.poll()? {
                        Some(s) => self.statuses[i] = Some(s),
                        None => without_pidfd = true,
                    },
                }
            }
            if pipes == 0 && self.statuses.iter().all(Option::is_some) {
                return Ok(Pumped::Done);
            }
            // Checked on every turn, so that a stage that never stops writing still times out.
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return Ok(Pumped::TimedOut);
            }
            let wake = if without_pidfd {
                let soon = Instant::now() + NO_PIDFD_POLL;
                Some(deadline.map_or(soon, |d| d.min(soon)))
            } else {
                deadline
            };
            if fds.is_empty() {
                let left = wake.map_or(NO_PIDFD_POLL, |w| {
                    w.saturating_duration_since(Instant::now())
                });
                std::thread::sleep(left);
                continue;
            }
            if sys::poll::poll(&mut fds, wake)? == 0 {
                continue;
            }
            for k in 0..fds.len() {
                let revents = fds[k].revents;
                if revents & libc::POLLNVAL != 0 {
                    return Err(io::Error::from_raw_os_error(libc::EBADF));
                }
                if revents == 0 {
                    continue;
                }
                match slots[k] {
                    Slot::Stdin => self.write_input(sigpipe.as_ref())?,
                    Slot::Stdout => {
                        if self.read(Stream::Stdout, stages.len() - 1)? {
                            return Ok(Pumped::Over(stages.len() - 1, Stream::Stdout));
                        }
                    }
                    Slot::Stderr(i) => {
                        if self.read(Stream::Stderr, i)? {
                            return Ok(Pumped::Over(i, Stream::Stderr));
                        }
                    }
                    Slot::Exit(i) => self.statuses[i] = stages[i].poll()?,
                }
            }
        }
    }

    fn write_input(&mut self, sigpipe: Option<&SigpipeGuard>) -> io::Result<()> {
        let Some(stdin) = &self.stdin else {
            return Ok(());
        };
        let end = self.input.len().min(self.pos + MAX_WRITE);
        match sys::fd::write(stdin.as_fd(), &self.input[self.pos..end]) {
            Ok(n) => {
                self.pos += n;
                if self.pos >= self.input.len() {
                    self.stdin = None;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) if e.raw_os_error() == Some(libc::EPIPE) => {
                // The first stage does not want the rest (`head -c 10`): not an error.
                if let Some(guard) = sigpipe {
                    guard.consume();
                }
                self.stdin = None;
            }
            Err(e) => return Err(e),
        }
        Ok(())
    }

    /// Reads what `stream` of stage `stage` has, until it would block; closes it at end of
    /// file. Returns whether it went over an error cap.
    fn read(&mut self, stream: Stream, stage: usize) -> io::Result<bool> {
        let limit = self.limits[index(stream)];
        let tee = self.tee[index(stream)];
        let (pipe, cap) = match stream {
            Stream::Stdout => (self.stdout.as_ref().map(AsFd::as_fd), &mut self.out),
            Stream::Stderr => (
                self.stderr[stage].as_ref().map(AsFd::as_fd),
                &mut self.errs[stage],
            ),
        };
        let Some(fd) = pipe else {
            return Ok(false);
        };
        let eof = loop {
            match cap.read_once(fd, stream, (limit, tee), None, &mut self.scratch)? {
                ReadOnce::Eof => break true,
                ReadOnce::Moved { over: true, .. } => return Ok(true),
                // The pipe is most likely empty: back to poll rather than an EAGAIN read.
                ReadOnce::WouldBlock | ReadOnce::Moved { emptied: true, .. } => break false,
                ReadOnce::Moved { .. } | ReadOnce::Full => {}
            }
        };
        if eof {
            match stream {
                Stream::Stdout => self.stdout = None,
                Stream::Stderr => self.stderr[stage] = None,
            }
        }
        Ok(false)
    }

    /// Stops every stage: SIGTERM, the pipes read for at most `grace`, SIGKILL to survivors,
    /// the pipes closed, and every stage reaped (given at least 50 ms).
    fn stop(&mut self, child: &PipelineChild, grace: Duration) {
        let stages = child.stages();
        let signal_all = |signal| {
            let _ = child.send_signal(signal);
            child.signal_own_group(signal);
        };
        self.stdin = None;
        if !grace.is_zero() {
            signal_all(libc::SIGTERM);
            // Bytes past a cap are dropped from now on, so the drain can go on.
            for limit in self.limits.iter_mut().flatten() {
                *limit = CaptureLimit::Truncate(limit.bytes());
            }
            let _ = self.run(stages, Instant::now().checked_add(grace));
        }
        signal_all(libc::SIGKILL);
        // Whatever still holds the pipes open (a grandchild) is not waited for any longer.
        self.stdout = None;
        self.stderr.iter_mut().for_each(|e| *e = None);
        let reap_by = Instant::now() + grace.max(REAP_AT_LEAST);
        let _ = crate::wait_set::wait_all_deadline(stages, Some(reap_by));
        for (slot, c) in self.statuses.iter_mut().zip(stages) {
            if slot.is_none() {
                *slot = c.poll().ok().flatten();
            }
        }
    }

    fn reports(&mut self, child: &PipelineChild) -> Vec<StageReport> {
        child
            .stages()
            .iter()
            .zip(&mut self.errs)
            .zip(&self.statuses)
            .map(|((c, err), status)| StageReport {
                args: c.args().to_vec(),
                pid: Some(c.pid()),
                status: *status,
                stderr: std::mem::take(&mut err.buf),
            })
            .collect()
    }
}

fn index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}
