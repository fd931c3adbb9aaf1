//! `Popen._communicate` (POSIX) on the engine's communicate loop ([`engine::Communicator`]):
//! the pipes are driven with the GIL released, with reads of up to 1 MiB straight into the
//! capture buffers and writes of up to 512 KiB, on pipes grown to 1 MiB when the caller did not
//! ask for a `pipesize`.
//!
//! Everything around the loop is CPython 3.11's `_communicate`, step by step and through
//! `Popen`'s own helpers (`_save_input`, `_remaining_time`, `_check_timeout`, `wait`,
//! `_translate_newlines`), so text mode, encodings and errors, timeouts and the
//! `TimeoutExpired` they raise are CPython's. Its awkward corners are kept: stdin is flushed,
//! and closed when there is no input, before the loop, swallowing `BrokenPipeError`; only the
//! first call writes input (a call resumed after a timeout registers no stdin); a pipe is
//! closed when it is finished; the output of a stream that produced nothing is `None` in a
//! `TimeoutExpired` until its end of file.
//!
//! The loop's state — the `Communicator`, with the output read so far and the input offset —
//! lives on the `Popen` object between calls, so a call after a timeout resumes without losing
//! or repeating a byte. Whenever a call leaves early (timeout, signal handler exception, error)
//! the same state is also written where CPython keeps it (`_fileobj2output`, `_input_offset`),
//! so CPython's own `_communicate` could resume it. A communication that CPython's
//! `_communicate` began, and input that is not a plain byte buffer, go to CPython's
//! `_communicate` whole.
//!
//! Signal handlers run promptly: a signal that interrupts the wait returns to the interpreter
//! (`PyErr_CheckSignals`), and the wait is cut in slices of at most [`SIGNAL_SLICE`] for a
//! signal delivered to another thread.
#![allow(unsafe_code)]

use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engine::{CaptureOptions, ChildPipes, Communicator, PipeEvent, Stream};
use pyo3::exceptions::{PyBrokenPipeError, PyOverflowError, PyRuntimeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{
    IntoPyDict, PyByteArray, PyBytes, PyDict, PyList, PyMemoryView, PyString, PyTuple,
};

/// The longest wait between two checks for Python signal handlers.
pub(crate) const SIGNAL_SLICE: Duration = Duration::from_secs(1);
/// The pipe size asked for pipes whose size the caller left alone.
const PIPE_SIZE: usize = 1 << 20;
/// The attribute of a `Popen` that holds the loop's state between calls.
const STATE_ATTR: &str = "_popen_communicator";

pub(crate) static CALLS: AtomicU64 = AtomicU64::new(0);

/// The loop's state for one `Popen`, kept on it between calls.
#[pyclass(module = "popen", name = "_CommunicateState")]
struct State {
    comm: Communicator,
    /// Which output streams reached end of file (CPython then holds an empty chunk for them).
    eof: [bool; 2],
    /// The whole output of each stream, once a call returned it: a later call returns it
    /// again, as CPython's (which keeps every chunk) does.
    returned: [Option<Py<PyBytes>>; 2],
}

/// The `Popen` streams, in CPython's order.
struct Files<'py> {
    stdin: Option<Bound<'py, PyAny>>,
    out: [Option<Bound<'py, PyAny>>; 2],
}

impl<'py> Files<'py> {
    fn of(popen: &Bound<'py, PyAny>) -> PyResult<Files<'py>> {
        let get = |name: &str| -> PyResult<Option<Bound<'py, PyAny>>> {
            let f = popen.getattr(name)?;
            Ok(if f.is_truthy()? { Some(f) } else { None })
        };
        Ok(Files {
            stdin: get("stdin")?,
            out: [get("stdout")?, get("stderr")?],
        })
    }
}

/// The descriptor of a file object that is still open.
fn open_fd(file: Option<&Bound<'_, PyAny>>) -> PyResult<Option<RawFd>> {
    match file {
        Some(f) if !f.getattr("closed")?.is_truthy()? => {
            Ok(Some(f.call_method0("fileno")?.extract()?))
        }
        _ => Ok(None),
    }
}

fn borrow(fd: Option<RawFd>) -> Option<BorrowedFd<'static>> {
    // SAFETY: each descriptor belongs to a file object of the Popen that the caller holds a
    // reference to for as long as the returned value is used, and only this loop closes those
    // file objects meanwhile (closing them from another thread during `communicate` is the
    // same misuse in CPython's own loop, whose selector keeps the numbers too).
    fd.map(|fd| unsafe { BorrowedFd::borrow_raw(fd) })
}

/// Whether CPython's loop would write this input as the plain bytes of a byte buffer.
fn plain_input(input: &Bound<'_, PyAny>, text_mode: bool) -> PyResult<bool> {
    if input.is_none()
        || input.is_instance_of::<PyBytes>()
        || input.is_instance_of::<PyByteArray>()
        || (text_mode && input.is_instance_of::<PyString>())
    {
        return Ok(true);
    }
    if input.is_instance_of::<PyMemoryView>() {
        return Ok(input.getattr("itemsize")?.extract::<usize>()? == 1
            && input.getattr("ndim")?.extract::<usize>()? == 1
            && input.getattr("c_contiguous")?.is_truthy()?);
    }
    Ok(false)
}

/// `_communicate(self, input, endtime, orig_timeout)` on the engine.
#[pyfunction]
#[pyo3(name = "_engine_communicate")]
pub(crate) fn communicate<'py>(
    popen: &Bound<'py, PyAny>,
    input: &Bound<'py, PyAny>,
    endtime: &Bound<'py, PyAny>,
    orig_timeout: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyAny>> {
    let py = popen.py();
    let started = popen.getattr("_communication_started")?.is_truthy()?;
    let ours = popen.getattr_opt(STATE_ATTR)?.filter(|s| !s.is_none());
    let text_mode = popen.getattr("text_mode")?.is_truthy()?;
    if (started && ours.is_none()) || !plain_input(input, text_mode)? {
        return crate::accelerate::stock(py, "_communicate")?.call1((
            popen,
            input,
            endtime,
            orig_timeout,
        ));
    }
    CALLS.fetch_add(1, Ordering::Relaxed);
    let files = Files::of(popen)?;
    let has_input = input.is_truthy()?;
    if let (Some(stdin), false) = (&files.stdin, started) {
        // Flushing may block, if the caller wrote to stdin on its own.
        swallow_broken_pipe(py, stdin.call_method0("flush"))?;
        if !has_input {
            swallow_broken_pipe(py, stdin.call_method0("close"))?;
        }
    }
    if !started {
        let map = PyDict::new(py);
        for f in files.out.iter().flatten() {
            map.set_item(f, PyList::empty(py))?;
        }
        popen.setattr("_fileobj2output", map)?;
    }
    popen.call_method1("_save_input", (input,))?;

    let state: Bound<'py, State> = match ours {
        Some(s) => s.cast_into::<State>()?,
        None => {
            let caller_sized = popen.getattr("pipesize")?.extract::<i64>().unwrap_or(-1) > 0;
            let opts = CaptureOptions::new().pipe_size((!caller_sized).then_some(PIPE_SIZE));
            let mut comm = Communicator::new(opts);
            comm.return_on_signal(true);
            let s = Bound::new(
                py,
                State {
                    comm,
                    eof: [false; 2],
                    returned: [None, None],
                },
            )?;
            popen.setattr(STATE_ATTR, &s)?;
            s
        }
    };
    // Only the first call writes (CPython registers stdin only when this call has input).
    let data = if has_input && files.stdin.is_some() {
        let saved = popen.getattr("_input")?;
        // bytes are borrowed as they are; a mutable buffer is copied once, so that no other
        // thread can change it under the loop.
        Some(match saved.cast_into::<PyBytes>() {
            Ok(b) => b,
            Err(e) => py
                .import("builtins")?
                .getattr("bytes")?
                .call1((e.into_inner(),))?
                .cast_into::<PyBytes>()?,
        })
    } else {
        None
    };
    let result = pump(popen, &files, &state, data.as_ref(), endtime);
    // Whatever happened, the pipes still open go back to blocking mode, as CPython's are.
    let still_open = [
        open_fd(files.stdin.as_ref().filter(|_| data.is_some())),
        open_fd(files.out[0].as_ref()),
        open_fd(files.out[1].as_ref()),
    ];
    if let [Ok(stdin), Ok(stdout), Ok(stderr)] = still_open {
        Communicator::release(ChildPipes {
            stdin: borrow(stdin),
            stdout: borrow(stdout),
            stderr: borrow(stderr),
        });
    }
    match result {
        Ok(true) => {}
        Ok(false) => {
            let seqs = mirror(popen, &files, &state.borrow())?;
            let kwargs = [("skip_check_and_raise", true)].into_py_dict(py)?;
            popen.call_method(
                "_check_timeout",
                (endtime, orig_timeout, &seqs[0], &seqs[1]),
                Some(&kwargs),
            )?;
            return Err(PyRuntimeError::new_err(
                "_check_timeout(..., skip_check_and_raise=True) failed to raise TimeoutExpired.",
            ));
        }
        Err(e) => {
            mirror(popen, &files, &state.borrow())?;
            return Err(e);
        }
    }
    popen.call_method(
        "wait",
        (),
        Some(
            &[(
                "timeout",
                popen.call_method1("_remaining_time", (endtime,))?,
            )]
            .into_py_dict(py)?,
        ),
    )?;
    let mut st = state.borrow_mut();
    let mut outputs = Vec::with_capacity(2);
    for (i, s) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
        outputs.push(match &files.out[i] {
            None => py.None().into_bound(py),
            Some(f) => {
                let bytes = match &st.returned[i] {
                    Some(b) => b.bind(py).clone(),
                    None => bytes_of(py, st.comm.take_output(s))?,
                };
                st.returned[i] = Some(bytes.clone().unbind());
                let bytes = bytes.into_any();
                if text_mode {
                    popen.call_method1(
                        "_translate_newlines",
                        (bytes, f.getattr("encoding")?, f.getattr("errors")?),
                    )?
                } else {
                    bytes
                }
            }
        });
    }
    Ok(PyTuple::new(py, outputs)?.into_any())
}

/// The loop: steps the communicator with the GIL released, closes each finished pipe as
/// CPython does, and runs signal handlers. `true` when every pipe is finished, `false` at the
/// deadline.
fn pump(
    popen: &Bound<'_, PyAny>,
    files: &Files<'_>,
    state: &Bound<'_, State>,
    data: Option<&Bound<'_, PyBytes>>,
    endtime: &Bound<'_, PyAny>,
) -> PyResult<bool> {
    let py = popen.py();
    let remaining: Option<f64> = popen
        .call_method1("_remaining_time", (endtime,))?
        .extract()?;
    let deadline = remaining
        .and_then(|r| Instant::now().checked_add(Duration::try_from_secs_f64(r.max(0.0)).ok()?));
    // A finite timeout too large for the clock waits forever, as it would in CPython.
    let input: &[u8] = data.map_or(&[], |d| d.as_bytes());
    let mut writing = data.is_some();
    let mut first = true;
    loop {
        let pipes = (
            open_fd(files.stdin.as_ref().filter(|_| writing))?,
            open_fd(files.out[0].as_ref())?,
            open_fd(files.out[1].as_ref())?,
        );
        if std::mem::take(&mut first) && pipes != (None, None, None) {
            check_selector_timeout(remaining)?;
        }
        let pipes = ChildPipes {
            stdin: borrow(pipes.0),
            stdout: borrow(pipes.1),
            stderr: borrow(pipes.2),
        };
        let mut st = state.borrow_mut();
        st.comm.prepare(pipes)?;
        let slice = Instant::now() + SIGNAL_SLICE;
        let until = Some(deadline.map_or(slice, |d| d.min(slice)));
        let comm = &mut st.comm;
        let event = py.detach(|| comm.step(pipes, input, until))?;
        match event {
            PipeEvent::InputDone => {
                writing = false;
                drop(st);
                if let Some(stdin) = &files.stdin {
                    stdin.call_method0("close")?;
                }
            }
            PipeEvent::Eof(s) => {
                let i = index(s);
                st.eof[i] = true;
                drop(st);
                if let Some(f) = &files.out[i] {
                    f.call_method0("close")?;
                }
            }
            PipeEvent::Finished => return Ok(true),
            PipeEvent::TimedOut if deadline.is_some_and(|d| Instant::now() >= d) => {
                return Ok(false)
            }
            PipeEvent::TimedOut | PipeEvent::Interrupted => {
                drop(st);
                py.check_signals()?;
            }
            other => {
                return Err(PyRuntimeError::new_err(format!(
                    "unexpected communicate event {other:?}"
                )))
            }
        }
    }
}

/// Refuses a timeout as CPython's selector (`PollSelector.select`, then `poll.poll`) refuses
/// it, with the same exception, where CPython's `_communicate` has a pipe to watch: an
/// infinite or NaN time, or one past `poll`'s range (about 24.8 days).
fn check_selector_timeout(remaining: Option<f64>) -> PyResult<()> {
    // NaN passes CPython's `timeout <= 0` test; so it does here.
    let Some(r) = remaining.filter(|r| r.is_nan() || *r > 0.0) else {
        return Ok(());
    };
    let ms = (r * 1e3).ceil();
    if ms.is_nan() {
        return Err(PyValueError::new_err("cannot convert float NaN to integer"));
    }
    if ms.is_infinite() {
        return Err(PyOverflowError::new_err(
            "cannot convert float infinity to integer",
        ));
    }
    if ms > (i64::MAX / 1_000_000) as f64 {
        return Err(PyOverflowError::new_err(
            "timestamp too large to convert to C _PyTime_t",
        ));
    }
    if ms > f64::from(i32::MAX) {
        return Err(PyOverflowError::new_err("timeout is too large"));
    }
    Ok(())
}

/// Writes the loop's progress where CPython's `_communicate` keeps it; returns the output
/// sequences (`None` for a stream that is not piped) as `_check_timeout` takes them.
fn mirror<'py>(
    popen: &Bound<'py, PyAny>,
    files: &Files<'py>,
    st: &State,
) -> PyResult<[Bound<'py, PyAny>; 2]> {
    let py = popen.py();
    if files.stdin.is_some() && !popen.getattr("_input")?.is_none() {
        popen.setattr("_input_offset", st.comm.input_offset())?;
    }
    let map = popen.getattr("_fileobj2output")?;
    let mut seqs = [py.None().into_bound(py), py.None().into_bound(py)];
    for (i, s) in [Stream::Stdout, Stream::Stderr].into_iter().enumerate() {
        if let Some(f) = &files.out[i] {
            let list = PyList::empty(py);
            let data = st.comm.output(s);
            if !data.is_empty() {
                list.append(PyBytes::new(py, data))?;
            }
            if st.eof[i] {
                list.append(PyBytes::new(py, b""))?;
            }
            map.set_item(f, &list)?;
            seqs[i] = list.into_any();
        }
    }
    Ok(seqs)
}

/// `BrokenPipeError` is ignored by `communicate`, as in CPython.
fn swallow_broken_pipe(py: Python<'_>, r: PyResult<Bound<'_, PyAny>>) -> PyResult<()> {
    match r {
        Err(e) if e.is_instance_of::<PyBrokenPipeError>(py) => Ok(()),
        Err(e) => Err(e),
        Ok(_) => Ok(()),
    }
}

fn index(s: Stream) -> usize {
    match s {
        Stream::Stdout => 0,
        Stream::Stderr => 1,
    }
}

/// A new `bytes` holding `data`, which it consumes. A large one is filled, and `data` freed,
/// with the GIL released (no other thread can see the object yet), its pages faulted in by one
/// `madvise` rather than one fault each.
fn bytes_of(py: Python<'_>, data: Vec<u8>) -> PyResult<Bound<'_, PyBytes>> {
    const LARGE: usize = 1 << 20;
    if data.len() < LARGE {
        return Ok(PyBytes::new(py, &data));
    }
    let len = ffi::Py_ssize_t::try_from(data.len())
        .map_err(|_| pyo3::exceptions::PyOverflowError::new_err("output too large"))?;
    // SAFETY: with a null pointer, PyBytes_FromStringAndSize allocates an uninitialised object
    // of `len` bytes (or returns null with an exception set), which we own.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), len))?
    };
    let obj = obj.cast_into::<PyBytes>()?;
    // SAFETY: the object is a bytes object of `len` bytes that no one else has seen.
    let dst = unsafe { ffi::PyBytes_AsString(obj.as_ptr()) } as usize;
    py.detach(move || {
        const PAGE: usize = 4096;
        let (from, to) = (dst.next_multiple_of(PAGE), (dst + data.len()) / PAGE * PAGE);
        if from < to {
            let (start, len) = (from as *mut libc::c_void, to - from);
            // SAFETY: whole pages inside the object's buffer, which we own and are about to
            // overwrite; MADV_POPULATE_WRITE only maps them (advice: errors change nothing).
            unsafe { libc::madvise(start, len, libc::MADV_POPULATE_WRITE) };
        }
        // SAFETY: `dst` is the start of the object's `len`-byte buffer, which `data` (a Rust
        // slice) cannot overlap; the object is alive (owned by `obj`) and unseen by others.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst as *mut u8, data.len()) };
        drop(data);
    });
    Ok(obj)
}
