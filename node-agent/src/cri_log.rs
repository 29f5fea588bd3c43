//! Container logs in the CRI file format the kubelet reads and `kubectl logs` shows:
//! one line per record, `<RFC 3339 nanosecond time> <stdout|stderr> <F|P> <text>`, under
//! `<pod log dir>/<namespace>_<pod>_<uid>/<container>/<restart count>.log`.
//!
//! Owns the format, the copy from a stream to the file and the file's size-based
//! rotation; the sandbox process runs the copy itself ([`crate::sandbox_process`]), so
//! logs keep flowing whatever happens to the agent. Lines longer than [`MAX_LINE`] are
//! split into partial (`P`) records, as containerd does.
//!
//! Rotation follows the kubelet's `containerLogMaxSize` / `containerLogMaxFiles`: once
//! the file reaches the size it is renamed `<n>.log.<YYYYMMDD-HHMMSS>` and a new one
//! started; rotated files beyond `max_files - 1` are removed, oldest first. The kubelet
//! checks every 10 s; here the writer checks after each record, so a file never grows
//! past the size by more than one record. `kubectl logs` reads the current file, as with
//! the kubelet.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// When a container's log file is rotated and how many files are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Rotation {
    /// Size in bytes at which the file is rotated (kubelet default 10 Mi).
    pub max_size: u64,
    /// Files kept, the current one included (kubelet default 5, at least 2).
    pub max_files: u32,
}

impl Default for Rotation {
    fn default() -> Self {
        Rotation {
            max_size: 10 * 1024 * 1024,
            max_files: 5,
        }
    }
}

/// A container's current log file, rotated by size.
pub struct LogFile {
    path: PathBuf,
    file: File,
    written: u64,
    rotation: Rotation,
}

fn open_append(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
}

impl LogFile {
    /// Opens (appending to) `path`.
    pub fn open(path: &Path, rotation: Rotation) -> std::io::Result<LogFile> {
        let file = open_append(path)?;
        let written = file.metadata()?.len();
        Ok(LogFile {
            path: path.to_owned(),
            file,
            written,
            rotation,
        })
    }

    /// Appends one record, rotating first when the file is full.
    pub fn write_record(&mut self, record: &[u8]) -> std::io::Result<()> {
        if self.written > 0 && self.written + record.len() as u64 > self.rotation.max_size {
            if let Err(e) = self.rotate() {
                // Keep logging into the full file rather than lose records.
                tracing::debug!(error = %e, path = %self.path.display(), "log rotation failed");
            }
        }
        self.file.write_all(record)?;
        self.written += record.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let stamp = jiff::Zoned::now().strftime("%Y%m%d-%H%M%S").to_string();
        let mut rotated = PathBuf::from(format!("{}.{stamp}", self.path.display()));
        let mut n = 1;
        while rotated.exists() {
            rotated = PathBuf::from(format!("{}.{stamp}.{n}", self.path.display()));
            n += 1;
        }
        std::fs::rename(&self.path, &rotated)?;
        self.file = open_append(&self.path)?;
        self.written = 0;
        self.remove_old()
    }

    /// Removes rotated files beyond `max_files - 1`, oldest first.
    fn remove_old(&self) -> std::io::Result<()> {
        let (Some(dir), Some(name)) = (self.path.parent(), self.path.file_name()) else {
            return Ok(());
        };
        let prefix = format!("{}.", name.to_string_lossy());
        let mut rotated: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(dir)?
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
            .filter_map(|e| Some((e.metadata().ok()?.modified().ok()?, e.path())))
            .collect();
        rotated.sort();
        let keep = self.rotation.max_files.max(2) as usize - 1;
        let excess = rotated.len().saturating_sub(keep);
        for (_, old) in rotated.into_iter().take(excess) {
            std::fs::remove_file(old)?;
        }
        Ok(())
    }
}

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
pub fn copy(input: impl Read, stream: &str, out: &Arc<Mutex<LogFile>>) {
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
        if file.write_record(&rec).is_err() {
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
        let out = Arc::new(Mutex::new(
            LogFile::open(&file, Rotation::default()).unwrap(),
        ));
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

    #[test]
    fn full_files_are_rotated_and_the_oldest_removed() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("0.log");
        let rotation = Rotation {
            max_size: 100,
            max_files: 3,
        };
        let mut log = LogFile::open(&file, rotation).unwrap();
        let record = |i: usize| format!("{i:039}\n").into_bytes(); // 40 bytes
        for i in 0..20 {
            log.write_record(&record(i)).unwrap();
        }
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(
            names.len(),
            3,
            "the current file and two rotated: {names:?}"
        );
        assert!(names.iter().all(|n| n.starts_with("0.log")), "{names:?}");
        for name in &names {
            let len = std::fs::metadata(dir.path().join(name)).unwrap().len();
            assert!(len <= 100, "{name} has {len} bytes");
        }
        // The current file holds the newest records; nothing was lost within the kept files.
        let current = std::fs::read_to_string(&file).unwrap();
        assert!(
            current.ends_with(&String::from_utf8(record(19)).unwrap()),
            "{current}"
        );
    }
}
