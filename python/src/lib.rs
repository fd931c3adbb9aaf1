//! The `popen` Python module: CPython's `subprocess` on the popen engine.
//!
//! `popen.fork_exec` takes the same 23 positional arguments as CPython 3.11's
//! `_posixsubprocess.fork_exec`, raises the same exceptions for bad arguments, and reports a
//! failure in the child through the same error pipe, but starts the child with
//! [`popen::Command`](engine::Command): `posix_spawn` or a vfork-style child without the GIL,
//! and `fork` only when a `preexec_fn` needs the interpreter in the child.
//!
//! `popen.install()` makes the running interpreter's `subprocess` module use it, and also puts
//! `Popen._communicate` and `Popen._wait` on the engine's communicate loop and a pidfd wait
//! (`install(fork_exec_only=True)` leaves them alone); `popen.uninstall()` restores CPython's;
//! `popen.installed()` names what is in place; `popen.call_count()` and `popen.call_counts()`
//! count the calls.
#![deny(unsafe_code)]

mod accelerate;
mod args;
mod communicate;
mod fds;
mod posix_spawn;
mod spawn;
mod wait;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use pyo3::exceptions::{PySystemError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyFrozenSet, PyTuple};

static CALLS: AtomicU64 = AtomicU64::new(0);

/// CPython's own functions, saved by `install()` for `uninstall()`:
/// (`subprocess._fork_exec`, `_posixsubprocess.fork_exec`).
static SAVED: Mutex<Option<(Py<PyAny>, Py<PyAny>)>> = Mutex::new(None);

/// fork_exec(args, executable_list, close_fds, pass_fds, cwd, env,
///           p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite,
///           errpipe_read, errpipe_write, restore_signals, call_setsid, pgid_to_set,
///           gid, extra_groups, uid, child_umask, preexec_fn, allow_vfork)
/// --
///
/// Spawn a fresh new child process, as CPython's _posixsubprocess.fork_exec does, on the
/// popen engine.
///
/// Returns the child's pid. A failure in the child (chdir, exec, preexec_fn, ...) is written
/// to errpipe_write as "ExceptionName:hexerrno:message"; subprocess.Popen turns it into the
/// exception.
#[pyfunction]
#[pyo3(signature = (*args, **kwargs))]
fn fork_exec(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<i32> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    if kwargs.is_some_and(|k| !k.is_empty()) {
        return Err(PyTypeError::new_err(
            "fork_exec() takes no keyword arguments",
        ));
    }
    no_panic(|| {
        let mut gc = GcPause::default();
        let req = args::parse(args, &mut || gc.disable())?;
        spawn::fork_exec(py, req)
    })
}

/// Runs one call of a drop-in function; a Rust panic, which would be a bug whatever the
/// arguments, becomes `SystemError` (as an internal error of a C function does) instead of
/// pyo3's `PanicException`, which no caller of CPython's functions expects.
pub(crate) fn no_panic<T>(f: impl FnOnce() -> PyResult<T>) -> PyResult<T> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_or_else(|payload| {
        let msg = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_default();
        Err(PySystemError::new_err(format!(
            "internal error in popen: {msg}"
        )))
    })
}

/// Disables the garbage collector for the rest of a `fork_exec` call with a `preexec_fn`, as
/// CPython does (a collection in the forked child could run arbitrary finalizers), and
/// re-enables it on drop if it was enabled.
#[derive(Default)]
struct GcPause {
    reenable: bool,
}

impl GcPause {
    fn disable(&mut self) {
        #[allow(unsafe_code)]
        // SAFETY: called with the GIL held; returns the previous state.
        let was_enabled = unsafe { ffi::PyGC_Disable() } == 1;
        self.reenable |= was_enabled;
    }
}

impl Drop for GcPause {
    fn drop(&mut self) {
        if self.reenable {
            #[allow(unsafe_code)]
            // SAFETY: dropped inside fork_exec, with the GIL held.
            unsafe {
                ffi::PyGC_Enable()
            };
        }
    }
}

/// install(fork_exec_only=False)
/// --
///
/// Put this interpreter's subprocess module on the popen engine: children start with
/// popen.fork_exec (replaces subprocess._fork_exec and _posixsubprocess.fork_exec, and
/// os.posix_spawn(p)), and, unless fork_exec_only, Popen._communicate and Popen._wait run on
/// the engine's communicate loop and a pidfd wait, with the GIL released while they block.
/// Calling it again makes the set of replacements the one asked for.
#[pyfunction]
#[pyo3(pass_module, signature = (fork_exec_only = false))]
fn install(module: &Bound<'_, PyModule>, fork_exec_only: bool) -> PyResult<()> {
    let py = module.py();
    let ours = module.getattr("fork_exec")?;
    let subprocess = py.import("subprocess")?;
    let posixsubprocess = py.import("_posixsubprocess")?;
    let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
    if saved.is_none() {
        *saved = Some((
            subprocess.getattr("_fork_exec")?.unbind(),
            posixsubprocess.getattr("fork_exec")?.unbind(),
        ));
    }
    subprocess.setattr("_fork_exec", &ours)?;
    posixsubprocess.setattr("fork_exec", &ours)?;
    posix_spawn::install(module)?;
    if fork_exec_only {
        accelerate::uninstall(module)
    } else {
        accelerate::install(module)
    }
}

/// uninstall()
/// --
///
/// Restore the functions and methods install() replaced. Does nothing if install() was not
/// called.
#[pyfunction]
#[pyo3(pass_module)]
fn uninstall(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some((subprocess_fe, posix_fe)) = saved.take() {
        py.import("subprocess")?
            .setattr("_fork_exec", subprocess_fe)?;
        py.import("_posixsubprocess")?
            .setattr("fork_exec", posix_fe)?;
    }
    posix_spawn::uninstall(py)?;
    accelerate::uninstall(module)
}

/// installed()
/// --
///
/// What of popen is in place, as a frozenset of names: "fork_exec" (subprocess starts
/// children with popen.fork_exec), "posix_spawn" (os.posix_spawn and os.posix_spawnp are
/// popen's), "communicate" and "wait" (Popen._communicate and Popen._wait are popen's).
/// Empty, and so false, when nothing is.
#[pyfunction]
#[pyo3(pass_module)]
fn installed<'py>(module: &Bound<'py, PyModule>) -> PyResult<Bound<'py, PyFrozenSet>> {
    let py = module.py();
    let mut names = Vec::new();
    let current = py.import("subprocess")?.getattr("_fork_exec")?;
    if current.is(&module.getattr("fork_exec")?) {
        names.push("fork_exec");
    }
    if py
        .import("os")?
        .getattr("posix_spawn")?
        .is(&module.getattr("posix_spawn")?)
    {
        names.push("posix_spawn");
    }
    names.extend(accelerate::installed(module)?);
    PyFrozenSet::new(py, names)
}

/// call_counts()
/// --
///
/// How many times each replacement has run in this process, as a dict: "fork_exec",
/// "posix_spawn" (os.posix_spawn and os.posix_spawnp), "communicate" and "wait" (the calls
/// the engine served, not those handed to CPython's own methods).
#[pyfunction]
#[pyo3(pass_module)]
fn call_counts<'py>(module: &Bound<'py, PyModule>) -> PyResult<Bound<'py, PyDict>> {
    let counts = PyDict::new(module.py());
    counts.set_item("fork_exec", CALLS.load(Ordering::Relaxed))?;
    counts.set_item(
        "posix_spawn",
        module.call_method0("posix_spawn_call_count")?,
    )?;
    counts.set_item("communicate", communicate::CALLS.load(Ordering::Relaxed))?;
    counts.set_item("wait", wait::CALLS.load(Ordering::Relaxed))?;
    Ok(counts)
}

/// call_count()
/// --
///
/// How many times popen.fork_exec has been called in this process.
#[pyfunction]
fn call_count() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// set_spawn_path(path)
/// --
///
/// Prefer one of the engine's spawn paths for every later fork_exec of this process, when it
/// can honour the call's options: "posix_spawn", "vfork" or "fork"; None restores the
/// automatic choice. For tests and benchmarks.
#[pyfunction]
fn set_spawn_path(path: Option<&str>) -> PyResult<()> {
    let path = match path {
        None => None,
        Some("posix_spawn") => Some(engine::SpawnPath::PosixSpawn),
        Some("vfork") => Some(engine::SpawnPath::CloneVfork),
        Some("fork") => Some(engine::SpawnPath::Fork),
        Some(other) => {
            return Err(PyValueError::new_err(format!(
                "unknown spawn path {other:?}: expected 'posix_spawn', 'vfork', 'fork' or None"
            )))
        }
    };
    engine::testing::set_default_spawn_path(path);
    Ok(())
}

/// CPython's subprocess on the popen engine: a drop-in _posixsubprocess.fork_exec.
#[pymodule(name = "popen")]
fn popen_module(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(fork_exec, m)?)?;
    m.add_function(wrap_pyfunction!(install, m)?)?;
    m.add_function(wrap_pyfunction!(uninstall, m)?)?;
    m.add_function(wrap_pyfunction!(installed, m)?)?;
    m.add_function(wrap_pyfunction!(call_count, m)?)?;
    m.add_function(wrap_pyfunction!(call_counts, m)?)?;
    m.add_function(wrap_pyfunction!(communicate::communicate, m)?)?;
    m.add_function(wrap_pyfunction!(wait::wait, m)?)?;
    m.add_function(wrap_pyfunction!(set_spawn_path, m)?)?;
    posix_spawn::register(m)?;
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    // The wheel is a package whose `__init__.py` star-imports this module (the layout that
    // ships the type stubs): `__all__` makes that bring every name, the private ones that the
    // replacements call included.
    let names: Vec<String> = m
        .dict()
        .keys()
        .iter()
        .map(|k| k.extract::<String>())
        .collect::<PyResult<_>>()?;
    let exported: Vec<&String> = names
        .iter()
        .filter(|n| !n.starts_with("__") || *n == "__version__")
        .collect();
    m.add("__all__", exported)?;
    Ok(())
}
