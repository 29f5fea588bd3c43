//! Container logs in the CRI file format the kubelet reads and `kubectl logs` shows:
//! one line per record, `<RFC 3339 nanosecond time> <stdout|stderr> <F|P> <text>`, under
//! `<pod log dir>/<namespace>_<pod>_<uid>/<container>/<restart count>.log`.
//!
//! Owns the format and the copy from a stream to the file; the sandbox process runs the
//! copy itself ([`crate::sandbox_process`]), so logs keep flowing whatever happens to the
//! agent. Lines longer than [`MAX_LINE`] are split into partial (`P`) records, as
//! containerd does.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Longest record; longer lines are split into `P` records and a final `F`.
pub const MAX_LINE: usize = 16 * 1024;

/// The log file of `container`'s run number `restart` in the pod `ns/name` (`uid`).
pub fn path(dir: &Path, ns: &str, name: &str, uid: &str, container: &str, restart: i32) -> PathBuf {
    dir.join(format!("{ns}_{name}_{uid}"))
        .join(container)
        .join(format!("{restart}.log"))
}

/// The pod's log directory.
pub fn pod_dir(dir: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    dir.join(format!("{ns}_{name}_{uid}"))
}

/// One record: time, stream, tag and text, newline-terminated.
pub fn record(time: &jiff::Timestamp, stream: &str, partial: bool, text: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(text.len() + 48);
    out.extend_from_slice(
        time.strftime("%Y-%m-%dT%H:%M:%S.%9fZ")
            .to_string()
            .as_bytes(),
    );
    out.push(b' ');
    out.extend_from_slice(stream.as_bytes());
    out.extend_from_slice(if partial { b" P " } else { b" F " });
    out.extend_from_slice(text);
    out.push(b'\n');
    out
}

/// Copies `input` line by line into `out` as records of `stream`, until end of input.
pub fn copy(input: impl Read, stream: &str, out: &Arc<Mutex<File>>) {
    let mut reader = BufReader::new(input);
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = match (&mut reader)
            .take(MAX_LINE as u64)
            .read_until(b'\n', &mut line)
        {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        let complete = line.last() == Some(&b'\n');
        if complete {
            line.pop();
        }
        // A full buffer without a newline is a piece of a longer line.
        let partial = !complete && n == MAX_LINE;
        let rec = record(&jiff::Timestamp::now(), stream, partial, &line);
        let mut file = out.lock().unwrap_or_else(|e| e.into_inner());
        if file.write_all(&rec).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_cri_lines_and_long_lines_are_split() {
        let t: jiff::Timestamp = "2016-10-06T00:17:09.669794202Z".parse().unwrap();
        assert_eq!(
            record(&t, "stdout", false, b"hello"),
            b"2016-10-06T00:17:09.669794202Z stdout F hello\n"
        );
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("0.log");
        let out = Arc::new(Mutex::new(File::create(&file).unwrap()));
        let long = "x".repeat(MAX_LINE + 10);
        let input = format!("one\n{long}\nlast-without-newline");
        copy(input.as_bytes(), "stderr", &out);
        let text = std::fs::read_to_string(&file).unwrap();
        let tags: Vec<(&str, &str, usize)> = text
            .lines()
            .map(|l| {
                let mut parts = l.splitn(4, ' ');
                let _time = parts.next();
                (
                    parts.next().unwrap(),
                    parts.next().unwrap(),
                    parts.next().unwrap_or("").len(),
                )
            })
            .collect();
        assert_eq!(
            tags,
            vec![
                ("stderr", "F", 3),
                ("stderr", "P", MAX_LINE),
                ("stderr", "F", 10),
                ("stderr", "F", "last-without-newline".len()),
            ]
        );
        assert_eq!(
            path(Path::new("/l"), "ns", "p", "u", "c", 2),
            Path::new("/l/ns_p_u/c/2.log")
        );
    }
}
