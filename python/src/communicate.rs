//! `Popen._communicate` (POSIX) on the engine's communicate loop ([`engine::Communicator`]):
//! the pipes are driven with the GIL released, with reads of up to 1 MiB straight into the
//! `bytes` objects `communicate()` returns ([`Filling`]: never copied after the read) and
//! writes of up to 512 KiB, on pipes grown to 1 MiB when the caller did not ask for a
//! `pipesize`.
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
//! The loop's state — the `Communicator` with the input offset, and the `bytes` objects
//! holding the output read so far — lives on the `Popen` object between calls, so a call after
//! a timeout resumes without losing or repeating a byte. Whenever a call leaves early (timeout,
//! signal handler exception, error) the same state is also written where CPython keeps it
//! (`_fileobj2output`, `_input_offset`), so CPython's own `_communicate` could resume it. A communication that CPython's
//! `_communicate` began, and input that is not a plain byte buffer, go to CPython's
//! `_communicate` whole.
//!
//! Signal handlers run promptly: a signal that interrupts the wait returns to the interpreter
//! (`PyErr_CheckSignals`), and the wait is cut in slices of at most [`SIGNAL_SLICE`] for a
//! signal delivered to another thread.
#![allow(unsafe_code)]

use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use engine::{CaptureOptions, ChildPipes, Communicator, OutputSpace, PipeEvent, Stream};
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
    /// The `bytes` objects each stream is read into until it is returned.
    out: [Filling; 2],
}

/// The room given to a stream's `bytes` object before its first read: a pipe of the default
/// size, and below glibc's first `mmap` threshold (128 KiB), so a short output costs no
/// `mmap`/`munmap`. Larger outputs double it.
const FIRST_ROOM: usize = 64 << 10;

extern "C" {
    /// CPython's resize of a `bytes` object that only its caller references (public in
    /// CPython's headers, not in pyo3's bindings): a `realloc` of the object, which for a large
    /// one is a `mremap` that moves no byte. On failure the object is freed, `*bytes` is null
    /// and an exception is set.
    fn _PyBytes_Resize(bytes: *mut *mut ffi::PyObject, newsize: ffi::Py_ssize_t) -> libc::c_int;
}

/// A `bytes` object that the output of one stream is read into, with the GIL released: its
/// first `filled` bytes are output, the rest room for more. It grows (with the GIL held) when
/// the loop reports it full, by doubling, and is cut to `filled` when the stream is done, so
/// the object `communicate()` returns is the one the kernel wrote into. No other code holds a
/// reference to it until then (its reference count is 1, as resizing requires), so none can
/// see its bytes while they change.
#[derive(Default)]
struct Filling {
    obj: Option<Py<PyBytes>>,
    filled: usize,
}

impl Filling {
    /// Makes sure there is room after the filled bytes: allocates the object the first time,
    /// doubles it when full.
    fn make_room(&mut self, py: Python<'_>) -> PyResult<()> {
        let room = match &self.obj {
            None => FIRST_ROOM,
            Some(obj) if obj.bind(py).as_bytes().len() == self.filled => {
                self.filled.saturating_mul(2).max(FIRST_ROOM)
            }
            Some(_) => return Ok(()),
        };
        self.obj = Some(match self.obj.take() {
            None => new_bytes(py, room)?,
            Some(obj) => resize(py, obj, room)?,
        });
        Ok(())
    }

    /// The object's buffer lent to the loop, if there is one.
    fn space(&mut self, py: Python<'_>) -> Option<OutputSpace<'_>> {
        let obj = self.obj.as_ref()?.bind(py);
        let len = obj.as_bytes().len();
        // SAFETY: the object's `len`-byte buffer, which stays where it is and alive as long
        // as `self` (which owns the only reference and is borrowed mutably for the returned
        // lifetime) does not resize or drop it. No other code references the object, so no
        // one reads or writes these bytes while the loop writes them.
        let buf = unsafe {
            std::slice::from_raw_parts_mut(
                ffi::PyBytes_AsString(obj.as_ptr()).cast::<MaybeUninit<u8>>(),
                len,
            )
        };
        Some(OutputSpace::new(buf, self.filled))
    }

    /// The output read so far.
    fn bytes<'a>(&'a self, py: Python<'a>) -> &'a [u8] {
        self.obj
            .as_ref()
            .map_or(&[], |obj| &obj.as_bytes(py)[..self.filled])
    }

    /// The finished output, as the object it was read into, cut to its length.
    fn finish<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        let filled = std::mem::take(&mut self.filled);
        match self.obj.take() {
            None => Ok(PyBytes::new(py, b"")),
            Some(obj) => Ok(resize(py, obj, filled)?.into_bound(py)),
        }
    }
}

/// A new `bytes` object of `len` bytes, not initialised.
fn new_bytes(py: Python<'_>, len: usize) -> PyResult<Py<PyBytes>> {
    let len =
        ffi::Py_ssize_t::try_from(len).map_err(|_| PyOverflowError::new_err("output too large"))?;
    // SAFETY: with a null pointer, PyBytes_FromStringAndSize allocates a new object of `len`
    // (> 1, so not a shared singleton) uninitialised bytes, or returns null with an exception
    // set; the reference is ours.
    let obj = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromStringAndSize(std::ptr::null(), len))?
    };
    Ok(obj.cast_into::<PyBytes>()?.unbind())
}

/// `obj`, which no other code references, resized to `len` bytes (its first bytes kept).
fn resize(py: Python<'_>, obj: Py<PyBytes>, len: usize) -> PyResult<Py<PyBytes>> {
    let len =
        ffi::Py_ssize_t::try_from(len).map_err(|_| PyOverflowError::new_err("output too large"))?;
    let mut ptr = obj.into_ptr();
    // SAFETY: `ptr` is a bytes object whose one reference we own (a `Filling`'s: it never
    // gives the object out before this), as _PyBytes_Resize requires; the call consumes that
    // reference and leaves in `ptr` a new one to the resized object, or null with an
    // exception set.
    if unsafe { _PyBytes_Resize(&mut ptr, len) } < 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: on success `ptr` is an owned reference to a bytes object.
    let obj = unsafe { Bound::from_owned_ptr(py, ptr) };
    Ok(obj.cast_into::<PyBytes>()?.unbind())
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
                    out: Default::default(),
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
    for i in 0..2 {
        outputs.push(match &files.out[i] {
            None => py.None().into_bound(py),
            Some(f) => {
                let bytes = match &st.returned[i] {
                    Some(b) => b.bind(py).clone(),
                    None => st.out[i].finish(py)?,
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
        for (i, fd) in [pipes.stdout, pipes.stderr].into_iter().enumerate() {
            if fd.is_some() {
                st.out[i].make_room(py)?;
            }
        }
        let slice = Instant::now() + SIGNAL_SLICE;
        let until = Some(deadline.map_or(slice, |d| d.min(slice)));
        let State { comm, out, .. } = &mut *st;
        let [out0, out1] = out;
        let mut spaces = [out0.space(py), out1.space(py)];
        let event = py.detach(|| {
            let [s0, s1] = &mut spaces;
            comm.step_into(pipes, input, until, [s0.as_mut(), s1.as_mut()])
        });
        let filled = spaces.map(|s| s.map(|s| s.filled()));
        for (o, f) in [out0, out1].into_iter().zip(filled) {
            o.filled = f.unwrap_or(o.filled);
        }
        match event? {
            // The room is made before the next step.
            PipeEvent::OutputFull(_) => {}
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
    for ((file, out), (eof, seq)) in files
        .out
        .iter()
        .zip(&st.out)
        .zip(st.eof.iter().zip(&mut seqs))
    {
        if let Some(f) = file {
            let list = PyList::empty(py);
            let data = out.bytes(py);
            if !data.is_empty() {
                list.append(PyBytes::new(py, data))?;
            }
            if *eof {
                list.append(PyBytes::new(py, b""))?;
            }
            map.set_item(f, &list)?;
            *seq = list.into_any();
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
