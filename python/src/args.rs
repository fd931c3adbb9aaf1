//! The 23 positional arguments of `fork_exec`, checked and converted in the parent, in the
//! order and with the exceptions of CPython 3.11's `_posixsubprocess.fork_exec`.
//!
//! Two phases, as in CPython: first each argument's own type conversion, in argument order
//! (`TypeError`/`OverflowError`, or whatever `__bool__`/`__index__` raises); then the checks
//! that look at several arguments and the conversions of the sequences (`ValueError`,
//! `TypeError`). Every check runs before any descriptor or process is created.
//!
//! The exact C-API conversions (`PyLong_AsLong`, `PyUnicode_FSConverter`,
//! `PyBytes_AsStringAndSize`, `PySequence_Fast`) are called through `pyo3::ffi`, so the
//! exception types and messages are CPython's own.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int, c_long, CStr, OsString};
use std::os::fd::RawFd;
use std::os::unix::ffi::OsStringExt;

use pyo3::exceptions::{PyMemoryError, PyOverflowError, PyRuntimeError, PyTypeError, PyValueError};
use pyo3::ffi;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyTuple};

/// The number of positional arguments `fork_exec` takes.
pub(crate) const NARGS: usize = 23;

/// CPython's `MAX_GROUPS` on Linux (`NGROUPS_MAX` from `<limits.h>`).
const MAX_GROUPS: usize = 65536;

/// Everything `fork_exec` was asked to do, as plain data. The descriptors are numbers owned by
/// the caller; `-1` means "not used".
pub(crate) struct Request {
    /// `None`: CPython would call `execv` with a NULL argv.
    pub(crate) argv: Option<Vec<OsString>>,
    pub(crate) executable_list: Vec<OsString>,
    pub(crate) close_fds: bool,
    pub(crate) fds_to_keep: Vec<RawFd>,
    pub(crate) cwd: Option<OsString>,
    /// `None`: the child inherits the environment; else the exact `KEY=VALUE` entries.
    pub(crate) env: Option<Vec<Vec<u8>>>,
    pub(crate) p2cread: RawFd,
    pub(crate) c2pwrite: RawFd,
    pub(crate) errwrite: RawFd,
    pub(crate) errpipe_write: RawFd,
    /// The parent's ends, closed in the child in this order: `p2cwrite`, `c2pread`, `errread`
    /// (each unless `-1`), then `errpipe_read` (always).
    pub(crate) parent_ends: Vec<RawFd>,
    pub(crate) restore_signals: bool,
    pub(crate) call_setsid: bool,
    /// `setpgid(0, pgid)` when ≥ 0.
    pub(crate) pgid: i32,
    pub(crate) gid: Option<u32>,
    pub(crate) extra_groups: Option<Vec<u32>>,
    pub(crate) uid: Option<u32>,
    /// `umask(umask)` when ≥ 0.
    pub(crate) umask: i32,
    pub(crate) preexec_fn: Option<Py<PyAny>>,
    pub(crate) allow_vfork: bool,
}

/// The arguments after the first phase: each converted to its C type, sequences still Python
/// objects.
struct Raw<'py> {
    process_args: Bound<'py, PyAny>,
    executable_list: Bound<'py, PyAny>,
    close_fds: bool,
    fds_to_keep: Bound<'py, PyTuple>,
    cwd: Bound<'py, PyAny>,
    env_list: Bound<'py, PyAny>,
    fds: [c_int; 8],
    restore_signals: bool,
    call_setsid: bool,
    pgid: c_int,
    gid: Bound<'py, PyAny>,
    extra_groups: Bound<'py, PyAny>,
    uid: Bound<'py, PyAny>,
    umask: c_int,
    preexec_fn: Bound<'py, PyAny>,
    allow_vfork: bool,
}

/// Phase one: the argument count and each argument's own conversion, in order.
fn parse_positional<'py>(args: &Bound<'py, PyTuple>) -> PyResult<Raw<'py>> {
    if args.len() != NARGS {
        return Err(PyTypeError::new_err(format!(
            "fork_exec() takes exactly {NARGS} arguments ({} given)",
            args.len()
        )));
    }
    let a = |i: usize| args.get_item(i);
    let process_args = a(0)?;
    let executable_list = a(1)?;
    let close_fds = truth(&a(2)?)?;
    let fds_to_keep = a(3)?;
    let fds_to_keep = fds_to_keep.cast_into::<PyTuple>().map_err(|e| {
        PyTypeError::new_err(format!(
            "fork_exec() argument 4 must be tuple, not {}",
            arg_type_name(e.into_inner().as_any())
        ))
    })?;
    let cwd = a(4)?;
    let env_list = a(5)?;
    let mut fds = [-1; 8];
    for (i, slot) in fds.iter_mut().enumerate() {
        *slot = c_int_arg(&a(6 + i)?)?;
    }
    Ok(Raw {
        process_args,
        executable_list,
        close_fds,
        fds_to_keep,
        cwd,
        env_list,
        fds,
        // `i`, not `p`: a C int, whose truth is taken afterwards.
        restore_signals: c_int_arg(&a(14)?)? != 0,
        call_setsid: c_int_arg(&a(15)?)? != 0,
        pgid: c_int_arg(&a(16)?)?,
        gid: a(17)?,
        extra_groups: a(18)?,
        uid: a(19)?,
        umask: c_int_arg(&a(20)?)?,
        preexec_fn: a(21)?,
        allow_vfork: truth(&a(22)?)?,
    })
}

/// Converts and checks the arguments of one `fork_exec` call.
///
/// When `preexec_fn` is given, CPython disables the garbage collector before the sequence
/// conversions; `on_gc_disable` is called at that point so the caller can do the same (and
/// re-enable it whatever happens next).
pub(crate) fn parse(
    args: &Bound<'_, PyTuple>,
    on_gc_disable: &mut dyn FnMut(),
) -> PyResult<Request> {
    let raw = parse_positional(args)?;
    let [p2cread, p2cwrite, c2pread, c2pwrite, errread, errwrite, errpipe_read, errpipe_write] =
        raw.fds;
    let mut parent_ends: Vec<RawFd> = [p2cwrite, c2pread, errread]
        .into_iter()
        .filter(|&fd| fd != -1)
        .collect();
    parent_ends.push(errpipe_read);
    let preexec_fn = (!raw.preexec_fn.is_none()).then(|| raw.preexec_fn.clone().unbind());

    if preexec_fn.is_some() && !in_main_interpreter() {
        return Err(PyRuntimeError::new_err(
            "preexec_fn not supported within subinterpreters",
        ));
    }
    if raw.close_fds && errpipe_write < 3 {
        return Err(PyValueError::new_err("errpipe_write must be >= 3"));
    }
    let fds_to_keep = fds_to_keep(&raw.fds_to_keep)
        .ok_or_else(|| PyValueError::new_err("bad value(s) in fds_to_keep"))?;
    if preexec_fn.is_some() {
        on_gc_disable();
    }

    let executable_list = bytes_sequence(&raw.executable_list)?
        .into_iter()
        .map(OsString::from_vec)
        .collect();
    let argv = if raw.process_args.is_none() {
        None
    } else {
        Some(fs_sequence(&raw.process_args)?)
    };
    let env = if raw.env_list.is_none() {
        None
    } else {
        Some(bytes_sequence(&raw.env_list)?)
    };
    let cwd = if raw.cwd.is_none() {
        None
    } else {
        Some(OsString::from_vec(fs_convert(&raw.cwd)?))
    };
    let extra_groups = if raw.extra_groups.is_none() {
        None
    } else {
        Some(groups(&raw.extra_groups)?)
    };
    let gid = if raw.gid.is_none() {
        None
    } else {
        Some(id_arg(&raw.gid, "gid")?)
    };
    let uid = if raw.uid.is_none() {
        None
    } else {
        Some(id_arg(&raw.uid, "uid")?)
    };
    Ok(Request {
        argv,
        executable_list,
        close_fds: raw.close_fds,
        fds_to_keep,
        cwd,
        env,
        p2cread,
        c2pwrite,
        errwrite,
        errpipe_write,
        parent_ends,
        restore_signals: raw.restore_signals,
        call_setsid: raw.call_setsid,
        pgid: raw.pgid,
        gid,
        extra_groups,
        uid,
        umask: raw.umask,
        preexec_fn,
        allow_vfork: raw.allow_vfork,
    })
}

/// The type name CPython's own C code puts in messages: the type's `tp_name` (a C type's
/// qualified name, `collections.OrderedDict`; a class's own name).
fn type_name(obj: &Bound<'_, PyAny>) -> String {
    // SAFETY: every type has a NUL-terminated `tp_name` that lives as long as the type, which
    // `obj` keeps alive while the name is copied.
    unsafe { CStr::from_ptr((*ffi::Py_TYPE(obj.as_ptr())).tp_name) }
        .to_string_lossy()
        .into_owned()
}

/// The short type name (`_PyType_Name`), which some of CPython's messages use.
fn short_type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "?".into())
}

/// The type as the argument parser names it in "must be X, not Y": `None` for `None`.
fn arg_type_name(obj: &Bound<'_, PyAny>) -> String {
    if obj.is_none() {
        "None".to_owned()
    } else {
        type_name(obj)
    }
}

/// The `p` format: `PyObject_IsTrue`, whose exception propagates.
fn truth(obj: &Bound<'_, PyAny>) -> PyResult<bool> {
    obj.is_truthy()
}

/// CPython reserves `(n + 1)` pointers for a sequence of reported length `n` before it reads
/// any item, and raises `MemoryError` when it cannot. This decides the same without reserving
/// anything sized by `n`, which Python code (`__len__`) chose: the request fails where the C
/// allocator would refuse it, beyond `PY_SSIZE_T_MAX`, the address-space limit, or the memory
/// and swap of the machine (Linux's default overcommit heuristic). Below that the items are
/// read one by one, and a lying length ends with the item's own error, as in CPython.
pub(crate) fn check_pointer_array(n: ffi::Py_ssize_t) -> PyResult<()> {
    let bytes = (n.max(0) as u128 + 1) * std::mem::size_of::<*const c_char>() as u128;
    if bytes > isize::MAX as u128 || bytes > allocatable_bytes() {
        return Err(PyMemoryError::new_err(()));
    }
    Ok(())
}

/// The most one allocation can get: the machine's memory and swap, and the address-space limit.
fn allocatable_bytes() -> u128 {
    // SAFETY: sysinfo only writes the struct it is given.
    let mut info: libc::sysinfo = unsafe { std::mem::zeroed() };
    // SAFETY: as above.
    let mut limit = if unsafe { libc::sysinfo(&mut info) } == 0 {
        (u128::from(info.totalram) + u128::from(info.totalswap)) * u128::from(info.mem_unit.max(1))
    } else {
        u128::MAX
    };
    let mut rlim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit only writes the struct it is given.
    if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut rlim) } == 0
        && rlim.rlim_cur != libc::RLIM_INFINITY
    {
        limit = limit.min(u128::from(rlim.rlim_cur));
    }
    limit
}

/// The `i` format: `PyLong_AsLong` (so `__index__`, and `TypeError` for a float), then the
/// range of a C int.
pub(crate) fn c_int_arg(obj: &Bound<'_, PyAny>) -> PyResult<c_int> {
    // SAFETY: `obj` is a valid object and we are attached to the interpreter.
    let v: c_long = unsafe { ffi::PyLong_AsLong(obj.as_ptr()) };
    if v == -1 {
        if let Some(err) = PyErr::take(obj.py()) {
            return Err(err);
        }
    }
    if v > c_long::from(c_int::MAX) {
        return Err(PyOverflowError::new_err(
            "signed integer is greater than maximum",
        ));
    }
    if v < c_long::from(c_int::MIN) {
        return Err(PyOverflowError::new_err(
            "signed integer is less than minimum",
        ));
    }
    Ok(v as c_int)
}

/// fds_to_keep must hold ints, each in 0..=INT_MAX, strictly increasing. `None` if not.
fn fds_to_keep(tuple: &Bound<'_, PyTuple>) -> Option<Vec<RawFd>> {
    let mut prev: c_long = -1;
    let mut fds = Vec::with_capacity(tuple.len());
    for item in tuple.iter() {
        // SAFETY: `item` is a valid object.
        if unsafe { ffi::PyLong_Check(item.as_ptr()) } == 0 {
            return None;
        }
        // SAFETY: as above; an overflow error is cleared just below.
        let fd = unsafe { ffi::PyLong_AsLong(item.as_ptr()) };
        let _ = PyErr::take(item.py());
        if fd < 0 || fd <= prev || fd > c_long::from(c_int::MAX) {
            return None;
        }
        prev = fd;
        fds.push(fd as RawFd);
    }
    Some(fds)
}

/// CPython's `_PySequence_BytesToCharpArray` checks: a sequence (`PySequence_Size`) of bytes
/// without NUL bytes.
fn bytes_sequence(seq: &Bound<'_, PyAny>) -> PyResult<Vec<Vec<u8>>> {
    let py = seq.py();
    // SAFETY: `seq` is a valid object and we are attached.
    let n = unsafe { ffi::PySequence_Size(seq.as_ptr()) };
    if n < 0 {
        return Err(PyErr::fetch(py));
    }
    check_pointer_array(n)?;
    // Not sized by `n`: a length that Python code reports may lie.
    let mut out = Vec::new();
    for i in 0..n {
        // SAFETY: as above; PySequence_GetItem returns a new reference or NULL.
        let item =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PySequence_GetItem(seq.as_ptr(), i)) }?;
        out.push(bytes_no_nul(&item)?);
    }
    Ok(out)
}

/// `PyBytes_AsStringAndSize` without a length: `TypeError` for non-bytes, `ValueError` for an
/// embedded NUL.
fn bytes_no_nul(item: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let mut data: *mut c_char = std::ptr::null_mut();
    // SAFETY: `item` is valid; with a NULL length pointer the call checks for NUL bytes and
    // leaves `data` pointing into the bytes object, which `item` keeps alive.
    let ret =
        unsafe { ffi::PyBytes_AsStringAndSize(item.as_ptr(), &mut data, std::ptr::null_mut()) };
    if ret < 0 {
        return Err(PyErr::fetch(item.py()));
    }
    // SAFETY: a NUL-terminated buffer without inner NUL, alive while `item` is.
    Ok(unsafe { CStr::from_ptr(data) }.to_bytes().to_vec())
}

/// `argv`: `PySequence_Fast` (with CPython's message for a non-sequence), then each item
/// through `PyUnicode_FSConverter`, re-reading the sequence at each step as CPython does (an
/// item's `__fspath__` may change a list that is passed as it is).
fn fs_sequence(obj: &Bound<'_, PyAny>) -> PyResult<Vec<OsString>> {
    let py = obj.py();
    let msg = c"argv must be a tuple";
    // SAFETY: `obj` is valid, `msg` is NUL-terminated; a new reference or NULL comes back.
    let fast = unsafe {
        Bound::from_owned_ptr_or_err(py, ffi::PySequence_Fast(obj.as_ptr(), msg.as_ptr()))
    }?;
    // PySequence_Fast returns a list or a tuple, whose real length this is.
    let len = |fast: &Bound<'_, PyAny>| match fast.cast::<PyList>() {
        Ok(list) => list.len(),
        Err(_) => fast.cast::<PyTuple>().map_or(0, |t| t.len()),
    };
    let n = len(&fast);
    let mut out = Vec::new();
    for i in 0..n {
        if len(&fast) != n {
            return Err(PyRuntimeError::new_err("args changed during iteration"));
        }
        let item = match fast.cast::<PyList>() {
            Ok(list) => list.get_item(i)?,
            Err(_) => fast.cast::<PyTuple>()?.get_item(i)?,
        };
        out.push(OsString::from_vec(fs_convert(&item)?));
    }
    Ok(out)
}

/// `PyUnicode_FSConverter`: str (encoded with the filesystem encoding), bytes or
/// `os.PathLike`; no NUL byte.
pub(crate) fn fs_convert(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u8>> {
    let py = obj.py();
    let mut out: *mut ffi::PyObject = std::ptr::null_mut();
    // SAFETY: on success the converter stores a new reference to a bytes object in `out`.
    let ok = unsafe {
        ffi::PyUnicode_FSConverter(obj.as_ptr(), (&mut out as *mut *mut ffi::PyObject).cast())
    };
    if ok == 0 {
        return Err(PyErr::fetch(py));
    }
    // SAFETY: `out` holds the new reference the converter made.
    let bytes = unsafe { Bound::from_owned_ptr(py, out) };
    Ok(bytes.cast::<PyBytes>()?.as_bytes().to_vec())
}

/// extra_groups: a list (or a list subclass), read through the sequence protocol, of ints
/// that are each a valid group id.
fn groups(obj: &Bound<'_, PyAny>) -> PyResult<Vec<u32>> {
    let py = obj.py();
    if !obj.is_instance_of::<PyList>() {
        return Err(PyTypeError::new_err("setgroups argument must be a list"));
    }
    // SAFETY: `obj` is valid and we are attached.
    let n = unsafe { ffi::PySequence_Size(obj.as_ptr()) };
    if n < 0 {
        return Err(PyErr::fetch(py));
    }
    if n as usize > MAX_GROUPS {
        return Err(PyValueError::new_err("too many groups"));
    }
    let mut out = Vec::new();
    for i in 0..n {
        // SAFETY: as above; a new reference or NULL comes back.
        let elem =
            unsafe { Bound::from_owned_ptr_or_err(py, ffi::PySequence_GetItem(obj.as_ptr(), i)) }?;
        // SAFETY: `elem` is a valid object.
        if unsafe { ffi::PyLong_Check(elem.as_ptr()) } == 0 {
            return Err(PyTypeError::new_err("groups must be integers"));
        }
        out.push(id_arg(&elem, "gid").map_err(|_| PyValueError::new_err("invalid group id"))?);
    }
    Ok(out)
}

/// CPython's uid/gid converter: any integer (`__index__`); `-1` is allowed and means "no
/// change" (`(uid_t)-1`); other values must fit in 32 bits.
fn id_arg(obj: &Bound<'_, PyAny>, what: &str) -> PyResult<u32> {
    let py = obj.py();
    // SAFETY: `obj` is valid; a new reference or NULL comes back.
    let index = unsafe { Bound::from_owned_ptr_or_err(py, ffi::PyNumber_Index(obj.as_ptr())) }
        .map_err(|_| {
            PyTypeError::new_err(format!(
                "{what} should be integer, not {}",
                short_type_name(obj)
            ))
        })?;
    let underflow = || PyOverflowError::new_err(format!("{what} is less than minimum"));
    let overflow = || PyOverflowError::new_err(format!("{what} is greater than maximum"));
    match index.extract::<i64>() {
        Ok(-1) => Ok(u32::MAX),
        // A value that does not survive the round trip through a 32-bit id is refused, with
        // CPython's message (which calls it "less than minimum" even above the maximum).
        Ok(v) if v < 0 || v > i64::from(u32::MAX) => Err(underflow()),
        Ok(v) => Ok(v as u32),
        Err(_) => {
            if index.lt(0)? {
                Err(underflow())
            } else {
                Err(overflow())
            }
        }
    }
}

fn in_main_interpreter() -> bool {
    // SAFETY: both calls only read interpreter pointers; we are attached.
    unsafe { ffi::PyInterpreterState_Get() == ffi::PyInterpreterState_Main() }
}
