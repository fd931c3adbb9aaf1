//! Audit hooks: called before every spawn, like CPython's `sys.audit("subprocess.Popen", …)`.

use std::ffi::{OsStr, OsString};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};

use crate::error::{SpawnError, Step};
use crate::exec::env::EnvBlock;

type Hook = Arc<dyn Fn(&AuditEvent<'_>) -> io::Result<()> + Send + Sync>;

static HOOKS: RwLock<Vec<Hook>> = RwLock::new(Vec::new());
static ANY: AtomicBool = AtomicBool::new(false);

/// What a spawn is about to do, as an audit hook sees it.
#[derive(Debug)]
pub struct AuditEvent<'a> {
    executable: &'a OsStr,
    args: &'a [OsString],
    cwd: Option<&'a OsStr>,
    env: Option<&'a EnvBlock>,
}

impl<'a> AuditEvent<'a> {
    /// The program to run (`executable` or `argv[0]`).
    pub fn executable(&self) -> &'a OsStr {
        self.executable
    }

    /// The arguments, `argv[0]` first.
    pub fn args(&self) -> &'a [OsString] {
        self.args
    }

    /// The working directory, if one is set.
    pub fn cwd(&self) -> Option<&'a OsStr> {
        self.cwd
    }

    /// The child's environment as `(name, value)` pairs, or `None` when it inherits the
    /// parent's unchanged.
    pub fn env(&self) -> Option<impl Iterator<Item = (&'a OsStr, &'a OsStr)>> {
        self.env.map(|vars| {
            vars.entries().map(|b| {
                let eq = b
                    .iter()
                    .skip(1)
                    .position(|&c| c == b'=')
                    .map_or(b.len(), |i| i + 1);
                (
                    OsStr::from_bytes(&b[..eq]),
                    OsStr::from_bytes(b.get(eq + 1..).unwrap_or(&[])),
                )
            })
        })
    }
}

/// Adds a process-wide hook, called before every spawn from now on. A hook that returns an
/// error refuses the spawn: [`Command::spawn`](crate::Command::spawn) fails with [`Step::Audit`] and that error, and
/// nothing is created. Hooks cannot be removed (as in CPython).
///
/// # Examples
///
/// ```
/// use popen::Command;
///
/// popen::add_audit_hook(|event| {
///     if event.executable() == "forbidden" {
///         return Err(std::io::Error::new(std::io::ErrorKind::PermissionDenied, "not allowed"));
///     }
///     Ok(())
/// });
/// let err = Command::new("forbidden").spawn().unwrap_err();
/// assert_eq!(err.step(), popen::Step::Audit);
/// ```
pub fn add_audit_hook<F>(hook: F)
where
    F: Fn(&AuditEvent<'_>) -> io::Result<()> + Send + Sync + 'static,
{
    HOOKS
        .write()
        .unwrap_or_else(|p| p.into_inner())
        .push(Arc::new(hook));
    ANY.store(true, Ordering::Release);
}

/// Whether any hook is installed (so an event is worth building).
pub(crate) fn enabled() -> bool {
    ANY.load(Ordering::Acquire)
}

/// Calls every hook with the event for a spawn of `executable` with `args` (`argv[0]` first),
/// in `cwd`, with `env` (`None`: this process's, unchanged).
pub(crate) fn check(
    executable: &OsStr,
    args: &[OsString],
    cwd: Option<&OsStr>,
    env: Option<&EnvBlock>,
) -> Result<(), SpawnError> {
    check_event(&AuditEvent {
        executable,
        args,
        cwd,
        env,
    })
}

fn check_event(event: &AuditEvent<'_>) -> Result<(), SpawnError> {
    let hooks: Vec<Hook> = HOOKS.read().unwrap_or_else(|p| p.into_inner()).clone();
    for hook in hooks {
        hook(event).map_err(|e| SpawnError::new(Step::Audit, e))?;
    }
    Ok(())
}
