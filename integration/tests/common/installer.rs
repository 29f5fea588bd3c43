//! What the installer tests (`installer.rs`, and `installer_guest.rs` in Debian guests)
//! share: a release folder as `install.sh` downloads it — assets linked or copied in, and
//! the `sha256sum-<arch>.txt` lines that list them — served over HTTP by `python3 -m
//! http.server` on a loopback, and reading what a run printed. Owns no install and no
//! machine: which assets a release holds, how one is damaged and what an install must
//! leave behind stay with the tests.

use std::io::BufRead;
use std::path::Path;
use std::process::{Command, Output, Stdio};

use super::pods::Killed;

/// What a command printed: stdout, then stderr.
pub fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A file's sha256 in hex, as `sha256sum` prints it.
pub fn sha256(path: &Path) -> String {
    let out = Command::new("sha256sum")
        .arg(path)
        .output()
        .expect("run sha256sum");
    assert!(
        out.status.success(),
        "sha256sum {}: {}",
        path.display(),
        text(&out)
    );
    String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .to_string()
}

/// Puts `file` into the release folder `www` as `name`: a hard link where the filesystem
/// allows it (the debug binary is hundreds of MB), else a copy.
pub fn place(file: &Path, www: &Path, name: &str) {
    let to = www.join(name);
    if std::fs::hard_link(file, &to).is_err() {
        std::fs::copy(file, &to)
            .unwrap_or_else(|e| panic!("copy {} to {}: {e}", file.display(), to.display()));
    }
}

/// The lines of a release's `sha256sum-<arch>.txt` for the assets `names` in `www`, as
/// `sha256sum` prints them there (`<hex>  <name>`).
pub fn checksums(www: &Path, names: &[&str]) -> String {
    let out = Command::new("sha256sum")
        .args(names)
        .current_dir(www)
        .output()
        .expect("run sha256sum");
    assert!(out.status.success(), "sha256sum {names:?}: {}", text(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Serves `www` over HTTP with `python3` (the command to run it: on the host, or in a
/// namespace) bound to 127.0.0.1 on a port the kernel picks, read from the server's first
/// line; the server is killed when the returned guard drops. `Err` when `python3` cannot
/// be started.
pub fn serve(mut python3: Command, www: &Path) -> std::io::Result<(Killed, u16)> {
    let mut child = python3
        .args(["-u", "-m", "http.server", "--bind", "127.0.0.1", "0"])
        .current_dir(www)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()?;
    let stdout = child.stdout.take().expect("stdout");
    let server = Killed(child);
    let mut line = String::new();
    std::io::BufReader::new(stdout)
        .read_line(&mut line)
        .expect("http.server's first line");
    let port = line
        .split_whitespace()
        .skip_while(|w| *w != "port")
        .nth(1)
        .and_then(|p| p.parse::<u16>().ok())
        .unwrap_or_else(|| panic!("no port in {line:?}"));
    Ok((server, port))
}
