//! `popen.posix_spawn` and `popen.posix_spawnp`: CPython 3.11's `os.posix_spawn` and
//! `os.posix_spawnp`, started by the engine's `posix_spawn` layer
//! ([`engine::posix_spawn`]) — the same [`FileActions`], [`SpawnAttr`] and call that the
//! engine's own `posix_spawn` path uses.
//!
//! The arguments are taken apart in CPython's order and with its exceptions and messages: the
//! argument list as Argument Clinic unpacks it (`path` first, then `resetids` and `setsid`),
//! then `argv`, `env`, the file actions and the attributes as `py_posix_spawn`,
//! `parse_file_actions` and `parse_posix_spawn_flags` in `Modules/posixmodule.c` check them,
//! through the same C-API conversions (`PyUnicode_FSConverter`, `PyLong_AsLong`, …) called via
//! `pyo3::ffi`. A failed spawn raises `OSError(errno, strerror, path)`, as CPython's does. As in
//! CPython, the GIL is held during the spawn: no Python thread changes the environment (whose
//! `PATH` `posix_spawnp` searches) meanwhile.
//!
//! `install()` (in `lib.rs`) puts these functions in place of `os.posix_spawn`,
//! `os.posix_spawnp` and their `posix.` originals; `uninstall()` puts the originals back.
#![allow(unsafe_code)]

use std::ffi::{c_int, c_long, CString, OsString};
use std::os::unix::ffi::OsStringExt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::args::{c_int_arg, check_pointer_array, fs_convert};
use engine::posix_spawn::{self as layer, FileActions, SpawnAttr};
use engine::SigSet;
use pyo3::exceptions::{
    PyDeprecationWarning, PyNotImplementedError, PyOSError, PyOverflowError, PyRuntimeWarning,
    PySystemError, PyTypeError, PyValueError,
};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

/// The file action tags, as `os.POSIX_SPAWN_OPEN`, `_CLOSE` and `_DUP2`.
const OPEN: c_long = 0;
const CLOSE: c_long = 1;
const DUP2: c_long = 2;

/// The keyword-only parameters, in Argument Clinic's order.
const KEYWORDS: [&str; 7] = [
    "file_actions",
    "setpgroup",
    "resetids",
    "setsid",
    "setsigmask",
    "setsigdef",
    "scheduler",
];

static CALLS: AtomicU64 = AtomicU64::new(0);

/// CPython's `posix.posix_spawn` and `posix.posix_spawnp`, saved by `install()`.
static SAVED: Mutex<Option<[Py<PyAny>; 2]>> = Mutex::new(None);

/// Execute the program specified by path in a new process, as os.posix_spawn does, on the
/// popen engine's posix_spawn layer.
///
///   path          the executable file (str, bytes or os.PathLike); not searched in PATH
///   argv          tuple or list of strings, argv[0] first
///   env           mapping of strings to strings: the child's environment
///   file_actions  sequence of (POSIX_SPAWN_OPEN, fd, path, flags, mode),
///                 (POSIX_SPAWN_CLOSE, fd) and (POSIX_SPAWN_DUP2, fd, new_fd) tuples
///   setpgroup     process group for the child (0: a new group)
///   resetids      reset the effective ids to the real ones
///   setsid        start the child in a new session
///   setsigmask    signals blocked in the child
///   setsigdef     signals reset to the default disposition in the child
///   scheduler     (policy or None, os.sched_param)
///
/// Returns the child's pid; the caller waits for it (os.waitpid).
#[pyfunction]
// The signature of CPython 3.11's function.
#[pyo3(
    signature = (*args, **kwargs),
    text_signature = "($module, path, argv, env, /, *, file_actions=(), setpgroup=<unrepresentable>, resetids=False, setsid=False, setsigmask=(), setsigdef=(), scheduler=<unrepresentable>)"
)]
pub(crate) fn posix_spawn(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<i32> {
    crate::no_panic(|| spawn(py, "posix_spawn", false, args, kwargs))
}

/// Execute the program specified by path in a new process, as os.posix_spawnp does, on the
/// popen engine's posix_spawn layer: like posix_spawn, but a path without a slash is searched
/// in this process's PATH (not in env's).
///
/// Returns the child's pid; the caller waits for it (os.waitpid).
#[pyfunction]
// The signature of CPython 3.11's function.
#[pyo3(
    signature = (*args, **kwargs),
    text_signature = "($module, path, argv, env, /, *, file_actions=(), setpgroup=<unrepresentable>, resetids=False, setsid=False, setsigmask=(), setsigdef=(), scheduler=<unrepresentable>)"
)]
pub(crate) fn posix_spawnp(
    py: Python<'_>,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<i32> {
    crate::no_panic(|| spawn(py, "posix_spawnp", true, args, kwargs))
}

/// posix_spawn_call_count()
/// --
///
/// How many times popen.posix_spawn and popen.posix_spawnp have been called in this process.
#[pyfunction]
fn posix_spawn_call_count() -> u64 {
    CALLS.load(Ordering::Relaxed)
}

/// Adds the functions and the file action tags to the module.
pub(crate) fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_function(wrap_pyfunction!(posix_spawn, m)?)?;
    m.add_function(wrap_pyfunction!(posix_spawnp, m)?)?;
    m.add_function(wrap_pyfunction!(posix_spawn_call_count, m)?)?;
    m.add("POSIX_SPAWN_OPEN", OPEN)?;
    m.add("POSIX_SPAWN_CLOSE", CLOSE)?;
    m.add("POSIX_SPAWN_DUP2", DUP2)?;
    Ok(())
}

/// Puts this module's functions in place of `posix_spawn` and `posix_spawnp` in `os` and
/// `posix`, saving CPython's the first time.
pub(crate) fn install(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let ours = [
        module.getattr("posix_spawn")?,
        module.getattr("posix_spawnp")?,
    ];
    let posix = py.import("posix")?;
    let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
    if saved.is_none() {
        *saved = Some([
            posix.getattr("posix_spawn")?.unbind(),
            posix.getattr("posix_spawnp")?.unbind(),
        ]);
    }
    for m in [posix, py.import("os")?] {
        m.setattr("posix_spawn", &ours[0])?;
        m.setattr("posix_spawnp", &ours[1])?;
    }
    Ok(())
}

/// Puts CPython's functions back, if `install()` replaced them.
pub(crate) fn uninstall(py: Python<'_>) -> PyResult<()> {
    let mut saved = SAVED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some([spawn, spawnp]) = saved.take() {
        for m in [py.import("posix")?, py.import("os")?] {
            m.setattr("posix_spawn", &spawn)?;
            m.setattr("posix_spawnp", &spawnp)?;
        }
    }
    Ok(())
}

/// `py_posix_spawn`: check and convert everything, then spawn.
fn spawn(
    py: Python<'_>,
    name: &str,
    search: bool,
    args: &Bound<'_, PyTuple>,
    kwargs: Option<&Bound<'_, PyDict>>,
) -> PyResult<i32> {
    CALLS.fetch_add(1, Ordering::Relaxed);
    let ([path, argv, env], kw) = unpack(name, args, kwargs)?;
    let [file_actions, setpgroup, resetids, setsid, setsigmask, setsigdef, scheduler] = kw;
    let (c_path, path_object) = convert_path(name, &path)?;
    // Argument Clinic converts the two ints right after the path.
    let resetids = resetids.map(|o| as_int(&o)).transpose()?.unwrap_or(0) != 0;
    let setsid = setsid.map(|o| as_int(&o)).transpose()?.unwrap_or(0) != 0;

    if !(argv.is_instance_of::<PyList>() || argv.is_instance_of::<PyTuple>()) {
        return Err(PyTypeError::new_err(format!(
            "{name}: argv must be a tuple or list"
        )));
    }
    // SAFETY: `argv` is a valid object; we are attached. A failing `__len__` (-1) gives the
    // same ValueError as an empty argv, as in CPython, which replaces that error.
    let argc = unsafe { ffi::PySequence_Size(argv.as_ptr()) };
    if argc < 1 {
        let _ = PyErr::take(py);
        return Err(PyValueError::new_err(format!(
            "{name}: argv must not be empty"
        )));
    }
    // SAFETY: `env` is a valid object; we are attached.
    if unsafe { ffi::PyMapping_Check(env.as_ptr()) } == 0 {
        return Err(PyTypeError::new_err(format!(
            "{name}: environment must be a mapping object"
        )));
    }
    check_pointer_array(argc)?;
    // Not sized by `argc`: a length that Python code reports may lie.
    let mut c_argv = Vec::new();
    for i in 0..argc {
        // SAFETY: as above; `PySequence_ITEM` is `PySequence_GetItem` without the negative
        // index fix-up, and `i` is not negative. A new reference or NULL comes back.
        let item =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PySequence_GetItem(argv.as_ptr(), i)) }?;
        c_argv.push(OsString::from_vec(fs_convert(&item)?));
    }
    if c_argv[0].is_empty() {
        return Err(PyValueError::new_err(format!(
            "{name}: argv first element cannot be empty"
        )));
    }
    let c_env = env_list(&env)?;

    let mut actions = FileActions::new().map_err(|e| os_error(py, &e, None))?;
    if let Some(seq) = file_actions.filter(|f| !f.is_none()) {
        parse_file_actions(&seq, &mut actions)?;
    }
    let flags = Flags {
        setpgroup,
        resetids,
        setsid,
        setsigmask,
        setsigdef,
        scheduler,
    };
    let attr = parse_flags(py, name, flags)?;

    py.import("sys")?
        .getattr("audit")?
        .call1(("os.posix_spawn", &path_object, &argv, &env))?;

    let path = OsString::from_vec(c_path.into_bytes());
    let started = if search {
        layer::spawnp(&path, &c_argv, Some(c_env.as_slice()), &actions, &attr)
    } else {
        layer::spawn(&path, &c_argv, Some(c_env.as_slice()), &actions, &attr)
    };
    // The caller reaps the child (os.waitpid), as with CPython's.
    started
        .map(|child| child.pid())
        .map_err(|e| os_error(py, e.io_error(), Some(&path_object)))
}

/// Argument Clinic's unpacking: exactly three positional arguments, then the keyword-only
/// ones by name. Returns the three and the seven (absent: `None`).
#[allow(clippy::type_complexity)]
fn unpack<'py>(
    name: &str,
    args: &Bound<'py, PyTuple>,
    kwargs: Option<&Bound<'py, PyDict>>,
) -> PyResult<([Bound<'py, PyAny>; 3], [Option<Bound<'py, PyAny>>; 7])> {
    let nargs = args.len();
    let nkwargs = kwargs.map_or(0, |k| k.len());
    let maxargs = 3 + KEYWORDS.len();
    if nargs + nkwargs > maxargs {
        return Err(PyTypeError::new_err(format!(
            "{name}() takes at most {maxargs} {}arguments ({} given)",
            if nargs == 0 { "keyword " } else { "" },
            nargs + nkwargs
        )));
    }
    if nargs != 3 {
        return Err(PyTypeError::new_err(format!(
            "{name}() takes exactly 3 positional arguments ({nargs} given)"
        )));
    }
    let positional = [args.get_item(0)?, args.get_item(1)?, args.get_item(2)?];
    let mut keywords: [Option<Bound<'py, PyAny>>; 7] = Default::default();
    if let Some(kwargs) = kwargs {
        let mut found = 0;
        for (slot, key) in keywords.iter_mut().zip(KEYWORDS) {
            *slot = kwargs.get_item(key)?;
            found += usize::from(slot.is_some());
        }
        if found < nkwargs {
            for key in kwargs.keys() {
                let known = KEYWORDS.iter().any(|k| key.eq(k).unwrap_or(false));
                if !known {
                    return Err(PyTypeError::new_err(format!(
                        "'{}' is an invalid keyword argument for {name}()",
                        key.str()?
                    )));
                }
            }
        }
    }
    Ok((positional, keywords))
}

/// CPython's `path_t` converter (no fd, not nullable): str, bytes or `os.PathLike` (a
/// bytes-like object with a `DeprecationWarning`), without a NUL byte. Returns the bytes and
/// the object the path is reported as (the result of `__fspath__`, else the argument).
fn convert_path<'py>(
    name: &str,
    obj: &Bound<'py, PyAny>,
) -> PyResult<(CString, Bound<'py, PyAny>)> {
    let py = obj.py();
    let should_be = || {
        format!(
            "{name}: path should be string, bytes or os.PathLike, not {}",
            type_name(obj)
        )
    };
    let mut o = obj.clone();
    // SAFETY: `obj` is a valid object.
    let is_buffer = unsafe { ffi::PyObject_CheckBuffer(obj.as_ptr()) } != 0;
    let mut is_bytes = obj.is_instance_of::<PyBytes>();
    let mut is_unicode = obj.is_instance_of::<PyString>();
    if !is_buffer && !is_bytes && !is_unicode {
        let Some(fspath) = lookup_special(obj, "__fspath__")? else {
            return Err(PyTypeError::new_err(should_be()));
        };
        let res = fspath.call0()?;
        is_unicode = res.is_instance_of::<PyString>();
        is_bytes = res.is_instance_of::<PyBytes>();
        if !is_unicode && !is_bytes {
            return Err(PyTypeError::new_err(format!(
                "expected {}.__fspath__() to return str or bytes, not {}",
                type_name(obj),
                type_name(&res)
            )));
        }
        o = res;
    }
    let bytes = if is_unicode {
        fs_convert(&o)?
    } else if is_bytes {
        o.cast::<PyBytes>()?.as_bytes().to_vec()
    } else {
        let msg = CString::new(should_be()).expect("no NUL in a type name");
        PyErr::warn(py, &py.get_type::<PyDeprecationWarning>(), &msg, 1)?;
        // SAFETY: `o` is a valid object; a new reference or NULL comes back.
        let b = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyBytes_FromObject(o.as_ptr())) }?;
        b.cast::<PyBytes>()?.as_bytes().to_vec()
    };
    let c_path = CString::new(bytes)
        .map_err(|_| PyValueError::new_err(format!("{name}: embedded null character in path")))?;
    Ok((c_path, o))
}

/// `_PyObject_LookupSpecial`: the attribute looked up on the type, bound to `obj`.
fn lookup_special<'py>(obj: &Bound<'py, PyAny>, attr: &str) -> PyResult<Option<Bound<'py, PyAny>>> {
    let ty = obj.get_type();
    let Ok(found) = ty.getattr(attr) else {
        return Ok(None);
    };
    if found.get_type().hasattr("__get__")? {
        return found.call_method1("__get__", (obj, ty)).map(Some);
    }
    Ok(Some(found))
}

/// `parse_envlist`: `NAME=value` entries from a mapping's keys and values.
fn env_list(env: &Bound<'_, PyAny>) -> PyResult<Vec<OsString>> {
    let py = env.py();
    // SAFETY: `env` is a valid object; we are attached.
    let n = unsafe { ffi::PyMapping_Size(env.as_ptr()) };
    if n < 0 {
        return Err(PyErr::fetch(py));
    }
    check_pointer_array(n)?;
    // SAFETY: as above; each call returns a new reference or NULL.
    let keys = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyMapping_Keys(env.as_ptr())) }?;
    // SAFETY: as above.
    let vals = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyMapping_Values(env.as_ptr())) }?;
    let (Ok(keys), Ok(vals)) = (keys.cast::<PyList>(), vals.cast::<PyList>()) else {
        return Err(PyTypeError::new_err(
            "env.keys() or env.values() is not a list",
        ));
    };
    // Not sized by `n`: a length that Python code reports may lie.
    let mut out = Vec::new();
    for i in 0..n as usize {
        let (key, val) = (keys.get_item(i)?, vals.get_item(i)?);
        let mut entry = fs_convert(&key)?;
        let val = fs_convert(&val)?;
        if entry.is_empty() || entry[1..].contains(&b'=') {
            return Err(PyValueError::new_err("illegal environment variable name"));
        }
        entry.push(b'=');
        entry.extend_from_slice(&val);
        out.push(OsString::from_vec(entry));
    }
    Ok(out)
}

/// `parse_file_actions`: each tuple checked, converted and added in turn.
fn parse_file_actions(seq: &Bound<'_, PyAny>, actions: &mut FileActions) -> PyResult<()> {
    let py = seq.py();
    // SAFETY: `seq` is valid, the message NUL-terminated; a new reference or NULL comes back.
    let fast = unsafe {
        Bound::from_owned_ptr_or_err(
            py,
            ffi::PySequence_Fast(
                seq.as_ptr(),
                c"file_actions must be a sequence or None".as_ptr(),
            ),
        )
    }?;
    let items: Vec<Bound<'_, PyAny>> = match fast.cast::<PyList>() {
        Ok(list) => list.iter().collect(),
        Err(_) => fast.cast::<PyTuple>()?.iter().collect(),
    };
    let added = |r: std::io::Result<()>| r.map_err(|e| os_error(py, &e, None));
    for item in items {
        let tuple = match item.cast::<PyTuple>() {
            Ok(t) if !t.is_empty() => t,
            _ => {
                return Err(PyTypeError::new_err(
                    "Each file_actions element must be a non-empty tuple",
                ))
            }
        };
        match as_long(&tuple.get_item(0)?)? {
            OPEN => {
                let t = tuple_of(tuple, 5, "A open file_action tuple must have 5 elements")?;
                let fd = c_int_arg(&t[1])?;
                let path = CString::new(fs_convert(&t[2])?).expect("checked for NUL");
                let flags = c_int_arg(&t[3])?;
                // The `k` format: an int, its bits taken modulo the width of a C long.
                if !t[4].is_instance_of::<pyo3::types::PyInt>() {
                    return Err(PyTypeError::new_err(
                        "A open file_action tuple must have 5 elements",
                    ));
                }
                // SAFETY: `t[4]` is an int; this conversion cannot fail.
                let mode = unsafe { ffi::PyLong_AsUnsignedLongMask(t[4].as_ptr()) };
                added(actions.open(fd, &path, flags, mode as libc::mode_t))?;
            }
            CLOSE => {
                let t = tuple_of(tuple, 2, "A close file_action tuple must have 2 elements")?;
                added(actions.close(c_int_arg(&t[1])?))?;
            }
            DUP2 => {
                let t = tuple_of(tuple, 3, "A dup2 file_action tuple must have 3 elements")?;
                let (from, to) = (c_int_arg(&t[1])?, c_int_arg(&t[2])?);
                added(actions.dup2(from, to))?;
            }
            _ => return Err(PyTypeError::new_err("Unknown file_actions identifier")),
        }
    }
    Ok(())
}

/// The attribute arguments; `None` where not given.
struct Flags<'py> {
    setpgroup: Option<Bound<'py, PyAny>>,
    resetids: bool,
    setsid: bool,
    setsigmask: Option<Bound<'py, PyAny>>,
    setsigdef: Option<Bound<'py, PyAny>>,
    scheduler: Option<Bound<'py, PyAny>>,
}

/// `parse_posix_spawn_flags`: the attributes, in CPython's order.
fn parse_flags(py: Python<'_>, name: &str, flags: Flags<'_>) -> PyResult<SpawnAttr> {
    let py_err = |e: std::io::Error| os_error(py, &e, None);
    let mut attr = SpawnAttr::new().map_err(py_err)?;
    if let Some(pgroup) = flags.setpgroup {
        // CPython 3.11's `PyLong_AsPid` is `PyLong_AsLong`, then cast to `pid_t`.
        attr.setpgroup(as_long(&pgroup)? as libc::pid_t)
            .map_err(py_err)?;
    }
    if flags.resetids {
        attr.resetids().map_err(py_err)?;
    }
    if flags.setsid {
        attr.setsid().map_err(|_| {
            PyNotImplementedError::new_err(format!("{name}: setsid unavailable on this platform"))
        })?;
    }
    if let Some(mask) = flags.setsigmask {
        attr.setsigmask(&sigset(&mask)?).map_err(py_err)?;
    }
    if let Some(signals) = flags.setsigdef {
        attr.setsigdef(&sigset(&signals)?).map_err(py_err)?;
    }
    if let Some(scheduler) = flags.scheduler {
        // PyArg_ParseTuple(scheduler, "OO;A scheduler tuple must have two elements").
        let Ok(tuple) = scheduler.cast::<PyTuple>() else {
            return Err(PySystemError::new_err(
                "new style getargs format but argument is not a tuple",
            ));
        };
        let t = tuple_of(tuple, 2, "A scheduler tuple must have two elements")?;
        let priority = sched_priority(&t[1])?;
        if t[0].is_none() {
            attr.schedparam(priority).map_err(py_err)?;
        } else {
            attr.scheduler(as_int(&t[0])?, priority).map_err(py_err)?;
        }
    }
    Ok(attr)
}

/// `convert_sched_param`: an `os.sched_param` (that exact type) whose priority fits a C int.
fn sched_priority(param: &Bound<'_, PyAny>) -> PyResult<c_int> {
    let py = param.py();
    let sched_param = py.import("os")?.getattr("sched_param")?;
    if !param.get_type().is(&sched_param) {
        return Err(PyTypeError::new_err("must have a sched_param object"));
    }
    let priority = as_long(&param.get_item(0)?)?;
    c_int::try_from(priority).map_err(|_| PyOverflowError::new_err("sched_priority out of range"))
}

/// `_Py_Sigset_Converter`: an iterable of signal numbers in `[1; NSIG)`; numbers the C
/// library refuses (its own reserved ones) are skipped with a `RuntimeWarning`.
fn sigset(obj: &Bound<'_, PyAny>) -> PyResult<SigSet> {
    let py = obj.py();
    let nsig = c_long::from(libc::SIGRTMAX()) + 1;
    let mut set = SigSet::empty();
    for item in obj.try_iter()? {
        let item = item?;
        let mut overflow: c_int = 0;
        // SAFETY: `item` is a valid object; we are attached.
        let signum = unsafe { ffi::PyLong_AsLongAndOverflow(item.as_ptr(), &mut overflow) };
        if signum == -1 && overflow == 0 {
            if let Some(err) = PyErr::take(py) {
                return Err(err);
            }
        }
        if signum <= 0 || signum >= nsig {
            return Err(PyValueError::new_err(format!(
                "signal number {signum} out of range [1; {}]",
                nsig - 1
            )));
        }
        if set.add(signum as c_int).is_err() {
            let msg = CString::new(format!(
                "invalid signal number {signum}, please use valid_signals()"
            ))
            .expect("no NUL");
            PyErr::warn(py, &py.get_type::<PyRuntimeWarning>(), &msg, 1)?;
        }
    }
    Ok(set)
}

/// The items of `tuple` if it has exactly `n`, else `TypeError(message)` (a `;message` format
/// of `PyArg_ParseTuple`).
fn tuple_of<'py>(
    tuple: &Bound<'py, PyTuple>,
    n: usize,
    message: &str,
) -> PyResult<Vec<Bound<'py, PyAny>>> {
    if tuple.len() != n {
        return Err(PyTypeError::new_err(message.to_owned()));
    }
    Ok(tuple.iter().collect())
}

/// `OSError` from an errno, as `PyErr_SetFromErrnoWithFilenameObject` makes it (the subclass
/// for the errno, `strerror`, and the filename when given).
fn os_error(py: Python<'_>, e: &std::io::Error, filename: Option<&Bound<'_, PyAny>>) -> PyErr {
    let Some(errno) = e.raw_os_error() else {
        return PyOSError::new_err(e.to_string());
    };
    // SAFETY: setting this thread's errno, then asking CPython to build the exception from it
    // (with a new reference to the filename, or none); we are attached.
    unsafe {
        *libc::__errno_location() = errno;
        match filename {
            Some(f) => {
                ffi::PyErr_SetFromErrnoWithFilenameObject(ffi::PyExc_OSError, f.as_ptr());
            }
            None => {
                ffi::PyErr_SetFromErrno(ffi::PyExc_OSError);
            }
        }
    }
    PyErr::fetch(py)
}

/// `PyLong_AsLong`, its exception propagated.
fn as_long(obj: &Bound<'_, PyAny>) -> PyResult<c_long> {
    // SAFETY: `obj` is a valid object; we are attached.
    let v = unsafe { ffi::PyLong_AsLong(obj.as_ptr()) };
    if v == -1 {
        if let Some(err) = PyErr::take(obj.py()) {
            return Err(err);
        }
    }
    Ok(v)
}

/// `_PyLong_AsInt`.
fn as_int(obj: &Bound<'_, PyAny>) -> PyResult<c_int> {
    let mut overflow: c_int = 0;
    // SAFETY: `obj` is a valid object; we are attached.
    let v = unsafe { ffi::PyLong_AsLongAndOverflow(obj.as_ptr(), &mut overflow) };
    if v == -1 && overflow == 0 {
        if let Some(err) = PyErr::take(obj.py()) {
            return Err(err);
        }
    }
    if overflow != 0 {
        return Err(PyOverflowError::new_err(
            "Python int too large to convert to C int",
        ));
    }
    c_int::try_from(v)
        .map_err(|_| PyOverflowError::new_err("Python int too large to convert to C int"))
}

/// The short type name CPython puts in messages (`_PyType_Name`).
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}
