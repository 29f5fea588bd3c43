//! The agent's side of a sandbox: one process per running container, the `spinlet`
//! binary re-executed in sandbox mode with a spec file
//! (`<agent dir>/sandboxes/<pod uid>/spec.json`), in a process group of its own so a
//! signal to the agent's terminal does not reach it.
//!
//! Owns the sandbox directory (spec, pid, ready file, termination log, exit code, load
//! counters, app state) and the process: spawn, wait for readiness or exit, stop with SIGTERM then
//! SIGKILL after the grace period. Sandboxes outlive the agent (as containers outlive a
//! kubelet): a restarted agent [`Sandbox::adopt`]s the ones still running. An adopted
//! sandbox is not the agent's child, so its end is seen by polling `/proc` and its exit
//! status is the code it wrote on the way out, or SIGKILL's 137 when it wrote none (a
//! sandbox only ends without writing one when a signal kills it). What runs inside is
//! [`crate::sandbox_process`].

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
/// How often an adopted sandbox is checked for having ended.
const ADOPTED_POLL: Duration = Duration::from_millis(250);
/// The file a sandbox writes its exit code to when it ends by itself.
pub const EXIT_CODE_FILE: &str = "exit-code";
/// The file a sandbox writes how its app's code was loaded to (JSON: `wasm_files`,
/// `from_cache`, `compiled`), before it listens.
pub const LOAD_STATS_FILE: &str = "load-stats.json";

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
    /// The process, when this agent started it (`None` when adopted).
    child: Option<tokio::process::Child>,
    /// The sandbox directory.
    dir: PathBuf,
    /// The process id.
    pub pid: u32,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// When this agent started or adopted it.
    pub launched: std::time::Instant,
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
        let _ = std::fs::remove_file(sandbox_dir.join(EXIT_CODE_FILE));
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
        if let Some(bundle) = &options.ca_bundle {
            // rustls-native-certs then reads this file instead of the host's store.
            command.env("SSL_CERT_FILE", bundle);
        }
        let child = tokio::process::Command::from(command).spawn()?;
        let pid = child.id().unwrap_or_default();
        let _ = std::fs::write(sandbox_dir.join("pid"), pid.to_string());
        Ok(Sandbox {
            child: Some(child),
            dir: sandbox_dir.to_owned(),
            pid,
            started_at: crate::node::now(),
            launched: std::time::Instant::now(),
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

    /// Takes over the sandbox an earlier run of the agent started in `sandbox_dir`, if it
    /// still runs (its pid alive, not a zombie, and running that directory's spec).
    pub fn adopt(sandbox_dir: &Path, started_at: String) -> Option<Sandbox> {
        let pid: u32 = std::fs::read_to_string(sandbox_dir.join("pid"))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        if !runs_spec(pid, &sandbox_dir.join("spec.json")) {
            return None;
        }
        let (ready_file, termination_log, _) = paths(sandbox_dir);
        Some(Sandbox {
            child: None,
            dir: sandbox_dir.to_owned(),
            pid,
            started_at,
            launched: std::time::Instant::now(),
            ready_file,
            termination_log,
            exit: None,
        })
    }

    /// The exit of a sandbox that was not this agent's child.
    fn adopted_exit(&self) -> std::process::ExitStatus {
        let code = std::fs::read_to_string(self.dir.join(EXIT_CODE_FILE))
            .ok()
            .and_then(|c| c.trim().parse::<i32>().ok());
        match code {
            Some(c) => std::process::ExitStatus::from_raw((c & 0xff) << 8),
            None => std::process::ExitStatus::from_raw(Signal::SIGKILL as i32),
        }
    }

    /// Waits for the process to end, however it was started.
    async fn wait_process(&mut self) -> std::process::ExitStatus {
        match &mut self.child {
            Some(child) => child
                .wait()
                .await
                .unwrap_or_else(|_| std::process::ExitStatus::from_raw(1 << 8)),
            None => {
                let spec = self.dir.join("spec.json");
                while runs_spec(self.pid, &spec) {
                    tokio::time::sleep(ADOPTED_POLL).await;
                }
                self.adopted_exit()
            }
        }
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
                status = self.wait_process() => return Err(self.record_exit(status)),
                () = tokio::time::sleep(READY_POLL) => {}
            }
        }
    }

    /// Waits for the sandbox to end.
    pub async fn wait(&mut self) -> Exit {
        if let Some(exit) = &self.exit {
            return exit.clone();
        }
        let status = self.wait_process().await;
        self.record_exit(status)
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

/// Whether `pid` is a live (not zombie) process whose command line names `spec`.
fn runs_spec(pid: u32, spec: &Path) -> bool {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return false;
    };
    // The state follows the parenthesised command name.
    let zombie = stat
        .rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'));
    if zombie {
        return false;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let spec = spec.to_string_lossy();
    cmdline.split(|b| *b == 0).any(|arg| arg == spec.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_adopted_sandbox_is_watched_until_it_ends_and_its_exit_code_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let spec = dir.path().join("spec.json");
        std::fs::write(&spec, "{}").unwrap();
        // A stand-in process whose command line names the spec, as a sandbox's does; it
        // ends (writing its exit code) only once told to, however slow the machine is.
        let mut child = std::process::Command::new("sh")
            .args([
                "-c",
                "while [ ! -e \"$0/go\" ]; do sleep 0.02; done; echo 3 > \"$0/exit-code\"",
                &dir.path().to_string_lossy(),
            ])
            .arg(&spec)
            .spawn()
            .unwrap();
        std::fs::write(dir.path().join("pid"), child.id().to_string()).unwrap();
        // sh's own command line holds the spec path as an argument — once it has exec'd:
        // until then the child's command line is this test binary's (seen on loaded CI).
        let cmdline = format!("/proc/{}/cmdline", child.id());
        let spec_arg = spec.to_string_lossy().into_owned();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while !std::fs::read(&cmdline)
            .is_ok_and(|c| String::from_utf8_lossy(&c).contains(spec_arg.as_str()))
        {
            assert!(std::time::Instant::now() < deadline, "sh never started");
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut adopted = Sandbox::adopt(dir.path(), "t".into()).expect("adopted");
        let reaper = std::thread::spawn(move || child.wait());
        std::fs::write(dir.path().join("go"), "").unwrap();
        let exit = adopted.wait().await;
        let _ = reaper.join();
        assert_eq!(exit.code, 3);
        assert_eq!(exit.signal, None);
        // Nothing runs that spec any more: nothing to adopt.
        assert!(Sandbox::adopt(dir.path(), "t".into()).is_none());
    }
}
