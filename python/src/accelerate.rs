//! Putting `communicate` and `wait` on the engine under CPython's `subprocess.Popen`:
//! `Popen._communicate` and `Popen._wait` are replaced by Python functions (so that they bind
//! as methods) that call [`communicate`](crate::communicate) and [`wait`](crate::wait); the
//! functions they replace are kept, to be put back, and to do the work where the engine does
//! not (see each module).

use std::sync::Mutex;

use pyo3::prelude::*;

/// The methods replaced, as (name in `Popen`, name in `popen.installed()`).
const METHODS: [(&str, &str); 2] = [("_communicate", "communicate"), ("_wait", "wait")];

/// The Python side of the replacements: methods that call the module's functions.
const WRAPPERS: &std::ffi::CStr = cr#"
def _communicate(self, input, endtime, orig_timeout):
    return _engine_communicate(self, input, endtime, orig_timeout)


def _wait(self, timeout):
    """Internal implementation of wait() on POSIX, on a pidfd (popen)."""
    return _engine_wait(self, timeout=timeout)


_communicate.__qualname__ = "Popen._communicate"
_wait.__qualname__ = "Popen._wait"
"#;

/// The replacements (set up once) and the functions they replaced (set by `install`).
static WRAPPED: Mutex<Option<[Py<PyAny>; 2]>> = Mutex::new(None);
static STOCK: Mutex<Option<[Py<PyAny>; 2]>> = Mutex::new(None);

/// The replacements, made on first use from the extension `module`'s functions.
fn wrappers(module: &Bound<'_, PyModule>) -> PyResult<[Py<PyAny>; 2]> {
    let py = module.py();
    let mut wrapped = WRAPPED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(w) = wrapped.as_ref() {
        return Ok([w[0].clone_ref(py), w[1].clone_ref(py)]);
    }
    let m = PyModule::from_code(py, WRAPPERS, c"popen/_accelerate.py", c"popen._accelerate")?;
    m.setattr(
        "_engine_communicate",
        module.getattr("_engine_communicate")?,
    )?;
    m.setattr("_engine_wait", module.getattr("_engine_wait")?)?;
    let w = [
        m.getattr("_communicate")?.unbind(),
        m.getattr("_wait")?.unbind(),
    ];
    *wrapped = Some([w[0].clone_ref(py), w[1].clone_ref(py)]);
    Ok(w)
}

/// CPython's method `name` (`"_communicate"` or `"_wait"`): the one `install` replaced, else
/// the one in place.
pub(crate) fn stock<'py>(py: Python<'py>, name: &str) -> PyResult<Bound<'py, PyAny>> {
    let i = METHODS.iter().position(|(n, _)| *n == name).unwrap_or(0);
    if let Some(s) = STOCK.lock().unwrap_or_else(|p| p.into_inner()).as_ref() {
        return Ok(s[i].bind(py).clone());
    }
    py.import("subprocess")?.getattr("Popen")?.getattr(name)
}

/// Replaces `Popen._communicate` and `Popen._wait`; again does nothing.
pub(crate) fn install(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let py = module.py();
    let class = py.import("subprocess")?.getattr("Popen")?;
    let ours = wrappers(module)?;
    let current = [class.getattr(METHODS[0].0)?, class.getattr(METHODS[1].0)?];
    if current.iter().zip(&ours).any(|(c, o)| c.is(o)) {
        return Ok(());
    }
    *STOCK.lock().unwrap_or_else(|p| p.into_inner()) = Some(current.map(Bound::unbind));
    for ((name, _), f) in METHODS.iter().zip(&ours) {
        class.setattr(*name, f)?;
    }
    Ok(())
}

/// Puts CPython's methods back, if ours are in place.
pub(crate) fn uninstall(module: &Bound<'_, PyModule>) -> PyResult<()> {
    let class = module.py().import("subprocess")?.getattr("Popen")?;
    let ours = wrappers(module)?;
    let stock = STOCK.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(stock) = stock.as_ref() {
        for (((name, _), f), o) in METHODS.iter().zip(stock).zip(&ours) {
            if class.getattr(*name)?.is(o) {
                class.setattr(*name, f)?;
            }
        }
    }
    Ok(())
}

/// The names (`"communicate"`, `"wait"`) of the methods that are ours now.
pub(crate) fn installed(module: &Bound<'_, PyModule>) -> PyResult<Vec<&'static str>> {
    let class = module.py().import("subprocess")?.getattr("Popen")?;
    let ours = wrappers(module)?;
    let mut names = Vec::new();
    for ((name, short), o) in METHODS.iter().zip(&ours) {
        if class.getattr(*name)?.is(o) {
            names.push(*short);
        }
    }
    Ok(names)
}
