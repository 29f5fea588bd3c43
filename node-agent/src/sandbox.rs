//! The agent's side of a sandbox: one process per running container, the `spinlet`
//! binary re-executed in sandbox mode with a spec file
//! (`<agent dir>/sandboxes/<pod uid>/spec.json`), in a process group of its own so a
//! signal to the agent's terminal does not reach it.
//!
//! Owns the sandbox directory (spec, ready file, termination log, app state) and the
//! process: spawn, wait for readiness or exit, stop with SIGTERM then SIGKILL after the
//! grace period. What runs inside is [`crate::sandbox_process`].

use std::net::SocketAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::sandbox_process::Options;

/// How often readiness is looked for while a sandbox starts.
const READY_POLL: Duration = Duration::from_millis(5);

/// How a sandbox process ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Exit {
    /// The exit code (128 + signal number when a signal ended it).
    pub code: i32,
    /// The signal that ended it, if one did.
    pub signal: Option<i32>,
    /// What the sandbox wrote to its termination log.
    pub message: Option<String>,
    /// Whether the kernel's OOM killer ended it (its cgroup's count went up).
    pub oom_killed: bool,
    /// When it ended (RFC 3339).
    pub finished_at: String,
}

/// A running sandbox.
pub struct Sandbox {
    child: tokio::process::Child,
    /// The process id.
    pub pid: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    ready_file: PathBuf,
    termination_log: PathBuf,
    exit: Option<Exit>,
}

/// The directory of a pod's sandbox.
pub fn dir(agent_dir: &Path, pod_uid: &str) -> PathBuf {
    agent_dir.join("sandboxes").join(pod_uid)
}

/// A sandbox's paths under its directory, filled into `options`.
pub fn paths(sandbox_dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    (
        sandbox_dir.join("ready"),
        sandbox_dir.join("termination-log"),
        sandbox_dir.join("state"),
    )
}

impl Sandbox {
    /// Writes the spec into `sandbox_dir` and starts `program args... --spec <file>`.
    pub fn spawn(
        program: &Path,
        args: &[String],
        sandbox_dir: &Path,
        options: &Options,
    ) -> std::io::Result<Sandbox> {
        std::fs::create_dir_all(sandbox_dir)?;
        let _ = std::fs::remove_file(&options.ready_file);
        let _ = std::fs::remove_file(&options.termination_log);
        let spec = sandbox_dir.join("spec.json");
        let text = serde_json::to_vec_pretty(options).map_err(std::io::Error::other)?;
        std::fs::write(&spec, text)?;
        let mut command = std::process::Command::new(program);
        command
            .args(args)
            .arg("--spec")
            .arg(&spec)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        let child = tokio::process::Command::from(command).spawn()?;
        let pid = child.id().unwrap_or_default();
        let _ = std::fs::write(sandbox_dir.join("pid"), pid.to_string());
        Ok(Sandbox {
            child,
            pid,
            started_at: crate::node::now(),
            ready_file: options.ready_file.clone(),
            termination_log: options.termination_log.clone(),
            exit: None,
        })
    }

    fn record_exit(&mut self, status: std::process::ExitStatus) -> Exit {
        let signal = status.signal();
        let code = status
            .code()
            .or(signal.map(|s| 128 + s))
            .unwrap_or_default();
        let message = std::fs::read_to_string(&self.termination_log)
            .ok()
            .filter(|m| !m.is_empty());
        let exit = Exit {
            code,
            signal,
            message,
            oom_killed: false,
            finished_at: crate::node::now(),
        };
        self.exit = Some(exit.clone());
        exit
    }

    /// Waits until the sandbox listens (its address) or ends (its exit).
    pub async fn ready(&mut self) -> Result<SocketAddr, Exit> {
        loop {
            if let Some(exit) = &self.exit {
                return Err(exit.clone());
            }
            if let Ok(text) = std::fs::read_to_string(&self.ready_file) {
                if let Ok(addr) = text.trim().parse() {
                    return Ok(addr);
                }
            }
            tokio::select! {
                status = self.child.wait() => {
                    let exit = match status {
                        Ok(s) => self.record_exit(s),
                        Err(_) => self.record_exit(std::process::ExitStatus::from_raw(1 << 8)),
                    };
                    return Err(exit);
                }
                () = tokio::time::sleep(READY_POLL) => {}
            }
        }
    }

    /// Waits for the sandbox to end.
    pub async fn wait(&mut self) -> Exit {
        if let Some(exit) = &self.exit {
            return exit.clone();
        }
        match self.child.wait().await {
            Ok(s) => self.record_exit(s),
            Err(_) => self.record_exit(std::process::ExitStatus::from_raw(1 << 8)),
        }
    }

    /// Sends SIGTERM, waits up to `grace`, then SIGKILL; returns how it ended.
    pub async fn stop(&mut self, grace: Duration) -> Exit {
        if let Some(exit) = &self.exit {
            return exit.clone();
        }
        let pid = Pid::from_raw(self.pid as i32);
        if !grace.is_zero() {
            let _ = kill(pid, Signal::SIGTERM);
            if let Ok(exit) = tokio::time::timeout(grace, self.wait()).await {
                return exit;
            }
        }
        let _ = kill(pid, Signal::SIGKILL);
        self.wait().await
    }
}
