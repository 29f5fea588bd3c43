//! Reading container logs back from the CRI files [`crate::cri_log`] writes, as the
//! kubelet's `kuberuntime/logs` reader does: the CRI prefix is stripped, partial (`P`)
//! records are joined into their line, and `tailLines`, `sinceSeconds`/`sinceTime`,
//! `timestamps`, `limitBytes` and `follow` apply as they do there.
//!
//! Owns the query parameters of `/containerLogs` ([`LogOptions`]) and the file reading;
//! which file a request reads (current or previous run) is decided by the caller
//! ([`super`]). Never writes or removes log files.

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::Duration;

use jiff::Timestamp;

/// How often a follow looks for new records.
pub const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// The largest chunk handed to the writer at once.
const CHUNK: usize = 32 * 1024;

/// A bad `/containerLogs` query.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OptionsError {
    /// A parameter that does not decode (the kubelet's 400 "Unable to decode query.").
    #[error("Unable to decode query: {param}={value:?} is not {expected}")]
    Decode {
        /// The parameter.
        param: &'static str,
        /// Its value.
        value: String,
        /// What it should be.
        expected: &'static str,
    },
    /// Options that decode but are invalid (`ValidatePodLogOptions`; the kubelet's 422).
    #[error("Invalid request: {0}")]
    Invalid(String),
}

/// What a log request asks for (`v1.PodLogOptions` as the kubelet reads its query).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep streaming new records.
    pub follow: bool,
    /// Only the last N lines.
    pub tail_lines: Option<i64>,
    /// Only records at or after this time (from `sinceSeconds` or `sinceTime`).
    pub since: Option<Timestamp>,
    /// Prefix each line with its RFC 3339 nanosecond time.
    pub timestamps: bool,
    /// The previous run of the container.
    pub previous: bool,
    /// Stop after this many bytes.
    pub limit_bytes: Option<i64>,
}

/// Go's `Convert_Slice_string_To_bool`: anything but `0`, `f` and `false` is true.
fn go_bool(v: &str) -> bool {
    !(v == "0" || v.eq_ignore_ascii_case("f") || v.eq_ignore_ascii_case("false"))
}

fn int(param: &'static str, v: &str) -> Result<i64, OptionsError> {
    v.parse().map_err(|_| OptionsError::Decode {
        param,
        value: v.to_string(),
        expected: "an integer",
    })
}

impl LogOptions {
    /// Reads the query of a `/containerLogs` request at time `now`: decoding errors first,
    /// then `ValidatePodLogOptions`. `tail` is the old name of `tailLines` (`all` = none).
    pub fn parse(query: Option<&str>, now: Timestamp) -> Result<LogOptions, OptionsError> {
        let mut o = LogOptions::default();
        let mut since_seconds = None;
        let mut since_time = None;
        let pairs: Vec<(String, String)> = form_urlencoded::parse(query.unwrap_or("").as_bytes())
            .map(|(k, v)| (k.into_owned(), v.into_owned()))
            .collect();
        let mut tail = pairs
            .iter()
            .find(|(k, _)| k == "tailLines")
            .map(|(_, v)| v.clone());
        if let Some((_, t)) = pairs.iter().find(|(k, _)| k == "tail") {
            tail = (t != "all").then(|| t.clone());
        }
        for (k, v) in &pairs {
            match k.as_str() {
                "follow" => o.follow = go_bool(v),
                "timestamps" => o.timestamps = go_bool(v),
                "previous" => o.previous = go_bool(v),
                "limitBytes" => o.limit_bytes = Some(int("limitBytes", v)?),
                "sinceSeconds" => since_seconds = Some(int("sinceSeconds", v)?),
                "sinceTime" => {
                    since_time = Some(v.parse::<Timestamp>().map_err(|_| OptionsError::Decode {
                        param: "sinceTime",
                        value: v.clone(),
                        expected: "an RFC 3339 time",
                    })?)
                }
                _ => {}
            }
        }
        if let Some(t) = tail {
            o.tail_lines = Some(int("tailLines", &t)?);
        }
        if let Some(n) = o.tail_lines.filter(|n| *n < 0) {
            return Err(OptionsError::Invalid(format!(
                "tailLines: Invalid value: {n}: must be greater than or equal to 0"
            )));
        }
        if let Some(n) = o.limit_bytes.filter(|n| *n < 1) {
            return Err(OptionsError::Invalid(format!(
                "limitBytes: Invalid value: {n}: must be greater than 0"
            )));
        }
        match (since_seconds, since_time) {
            (Some(_), Some(_)) => {
                return Err(OptionsError::Invalid(
                    "at most one of `sinceTime` or `sinceSeconds` may be specified".into(),
                ))
            }
            (Some(s), None) if s < 1 => {
                return Err(OptionsError::Invalid(format!(
                    "sinceSeconds: Invalid value: {s}: must be greater than 0"
                )))
            }
            (Some(s), None) => {
                o.since = Some(
                    now.checked_sub(jiff::SignedDuration::from_secs(s))
                        .unwrap_or(Timestamp::MIN),
                )
            }
            (None, t) => o.since = t,
        }
        Ok(o)
    }
}

/// One parsed CRI record.
#[derive(Debug, PartialEq, Eq)]
pub struct Record<'a> {
    /// When it was written.
    pub time: Timestamp,
    /// `stdout` or `stderr`.
    pub stream: &'a str,
    /// A piece of a longer line (`P`), not its end.
    pub partial: bool,
    /// The text, without the newline.
    pub text: &'a [u8],
}

/// Parses one CRI line (without its newline); `None` when malformed.
pub fn parse_record(line: &[u8]) -> Option<Record<'_>> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let time = std::str::from_utf8(parts.next()?).ok()?.parse().ok()?;
    let stream = std::str::from_utf8(parts.next()?).ok()?;
    if stream != "stdout" && stream != "stderr" {
        return None;
    }
    let tags = parts.next()?;
    let partial = tags.split(|b| *b == b':').next() == Some(b"P");
    Some(Record {
        time,
        stream,
        partial,
        text: parts.next().unwrap_or(b""),
    })
}

/// `time.RFC3339Nano` as Go formats it: UTC, trailing zeros of the fraction dropped.
pub fn rfc3339_nano(t: &Timestamp) -> String {
    let base = t.strftime("%Y-%m-%dT%H:%M:%S").to_string();
    let nanos = t.subsec_nanosecond();
    if nanos == 0 {
        format!("{base}Z")
    } else {
        let frac = format!("{nanos:09}");
        format!("{base}.{}Z", frac.trim_end_matches('0'))
    }
}

/// The byte offset where the last `n` lines of the file start (the kubelet's
/// `findTailLineStartIndex`: lines are CRI records).
pub fn tail_start(file: &mut File, n: i64) -> std::io::Result<u64> {
    let len = file.seek(SeekFrom::End(0))?;
    if n <= 0 {
        return Ok(len);
    }
    let mut pos = len;
    let mut found = 0i64;
    let mut buf = vec![0u8; 4096];
    // The first newline from the end closes the last complete record (what follows it
    // is a record still being written, not a line yet).
    let mut seen_last = false;
    while pos > 0 {
        let step = (pos as usize).min(buf.len());
        pos -= step as u64;
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(&mut buf[..step])?;
        for i in (0..step).rev() {
            if buf[i] != b'\n' {
                continue;
            }
            if !seen_last {
                seen_last = true;
                continue;
            }
            found += 1;
            if found == n {
                return Ok(pos + i as u64 + 1);
            }
        }
    }
    Ok(0)
}

/// Why a read stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Stop {
    /// The end of the file (not following).
    End,
    /// `limitBytes` reached.
    Limit,
    /// The writer refused more (the client went away).
    Closed,
    /// The follow was told to stop (the pod is gone or the container ran again).
    Stopped,
}

/// Reads records from a file, keeping the state a follow needs between reads.
pub struct Reader {
    file: File,
    pos: u64,
    opts: LogOptions,
    remaining: Option<i64>,
    /// The last record written ended its line (so the next one gets a time prefix).
    at_line_start: bool,
}

impl Reader {
    /// Opens `path` and positions it per `tailLines`.
    pub fn open(path: &Path, opts: LogOptions) -> std::io::Result<Reader> {
        let mut file = File::open(path)?;
        let pos = match opts.tail_lines {
            Some(n) => tail_start(&mut file, n)?,
            None => 0,
        };
        Ok(Reader {
            file,
            pos,
            remaining: opts.limit_bytes,
            opts,
            at_line_start: true,
        })
    }

    /// Writes every complete record from the current position on through `out`,
    /// returning `None` at the end of what is written so far, or why it must stop.
    /// `out` returns false when it takes no more.
    pub fn read_available(
        &mut self,
        out: &mut dyn FnMut(Vec<u8>) -> bool,
    ) -> std::io::Result<Option<Stop>> {
        self.file.seek(SeekFrom::Start(self.pos))?;
        let mut data = Vec::new();
        (&mut self.file).take(1 << 20).read_to_end(&mut data)?;
        // Only whole records: a record the sandbox is still writing waits for its newline.
        let Some(last_nl) = data.iter().rposition(|b| *b == b'\n') else {
            return Ok(None);
        };
        let mut chunk = Vec::new();
        for line in data[..last_nl].split(|b| *b == b'\n') {
            let Some(rec) = parse_record(line) else {
                continue;
            };
            let starts_line = self.at_line_start;
            self.at_line_start = !rec.partial;
            if self.opts.since.is_some_and(|s| rec.time < s) {
                continue;
            }
            let mut piece = Vec::with_capacity(rec.text.len() + 40);
            if self.opts.timestamps && starts_line {
                piece.extend_from_slice(rfc3339_nano(&rec.time).as_bytes());
                piece.push(b' ');
            }
            piece.extend_from_slice(rec.text);
            if !rec.partial {
                piece.push(b'\n');
            }
            let mut limited = false;
            if let Some(rem) = self.remaining.as_mut() {
                if piece.len() as i64 >= *rem {
                    piece.truncate((*rem).max(0) as usize);
                    limited = true;
                }
                *rem -= piece.len() as i64;
            }
            chunk.extend_from_slice(&piece);
            if limited {
                let _ = out(std::mem::take(&mut chunk));
                return Ok(Some(Stop::Limit));
            }
            if chunk.len() >= CHUNK && !out(std::mem::take(&mut chunk)) {
                return Ok(Some(Stop::Closed));
            }
        }
        self.pos += last_nl as u64 + 1;
        if !chunk.is_empty() && !out(chunk) {
            return Ok(Some(Stop::Closed));
        }
        Ok(None)
    }

    /// Reads to the end; when following, keeps reading new records every
    /// [`FOLLOW_POLL`] until `out` refuses, the limit is reached or `stop()` says so (a
    /// last read then picks up what was written before the stop).
    pub fn run(
        &mut self,
        out: &mut dyn FnMut(Vec<u8>) -> bool,
        stop: &mut dyn FnMut() -> bool,
    ) -> std::io::Result<Stop> {
        loop {
            if let Some(s) = self.read_available(out)? {
                return Ok(s);
            }
            if !self.opts.follow {
                return Ok(Stop::End);
            }
            if stop() {
                return Ok(self.read_available(out)?.unwrap_or(Stop::Stopped));
            }
            std::thread::sleep(FOLLOW_POLL);
        }
    }
}

/// The run numbers of a container's log files (`<n>.log`), ascending.
pub fn runs(dir: &Path) -> Vec<i32> {
    let mut v: Vec<i32> = std::fs::read_dir(dir)
        .map(|it| {
            it.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()?
                        .strip_suffix(".log")?
                        .parse::<i32>()
                        .ok()
                })
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

/// The log file of a container's run `n`.
pub fn run_file(dir: &Path, n: i32) -> PathBuf {
    dir.join(format!("{n}.log"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cri_log::record;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn write_log(dir: &Path, records: &[(&str, &str, bool, &str)]) -> PathBuf {
        let path = dir.join("0.log");
        let mut bytes = Vec::new();
        for (t, stream, partial, text) in records {
            bytes.extend(record(&ts(t), stream, *partial, text.as_bytes()));
        }
        std::fs::write(&path, bytes).unwrap();
        path
    }

    fn read(path: &Path, query: &str) -> String {
        let now = ts("2026-01-01T00:00:10Z");
        let opts = LogOptions::parse(Some(query), now).unwrap();
        let mut r = Reader::open(path, opts).unwrap();
        let mut got = Vec::new();
        r.run(
            &mut |b| {
                got.extend(b);
                true
            },
            &mut || true,
        )
        .unwrap();
        String::from_utf8(got).unwrap()
    }

    fn sample(dir: &Path) -> PathBuf {
        write_log(
            dir,
            &[
                ("2026-01-01T00:00:01Z", "stdout", false, "one"),
                ("2026-01-01T00:00:02.5Z", "stderr", false, "two"),
                ("2026-01-01T00:00:03Z", "stdout", true, "thr"),
                ("2026-01-01T00:00:03.000000001Z", "stdout", false, "ee"),
                ("2026-01-01T00:00:04Z", "stdout", false, "four"),
            ],
        )
    }

    #[test]
    fn whole_log_strips_the_prefix_and_joins_partial_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        assert_eq!(read(&p, ""), "one\ntwo\nthree\nfour\n");
    }

    #[test]
    fn tail_counts_records_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        assert_eq!(read(&p, "tailLines=1"), "four\n");
        assert_eq!(read(&p, "tailLines=4"), "two\nthree\nfour\n");
        assert_eq!(read(&p, "tailLines=0"), "");
        assert_eq!(read(&p, "tailLines=100"), "one\ntwo\nthree\nfour\n");
        assert_eq!(read(&p, "tail=all"), "one\ntwo\nthree\nfour\n");
        assert_eq!(read(&p, "tail=2"), "ee\nfour\n");
    }

    #[test]
    fn since_skips_older_records() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        assert_eq!(
            read(&p, "sinceTime=2026-01-01T00:00:02Z"),
            "two\nthree\nfour\n"
        );
        // now is 00:00:10: the last 7 s.
        assert_eq!(read(&p, "sinceSeconds=7"), "three\nfour\n");
    }

    #[test]
    fn timestamps_prefix_each_line_once() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        assert_eq!(
            read(&p, "timestamps=true&tailLines=4"),
            "2026-01-01T00:00:02.5Z two\n2026-01-01T00:00:03Z three\n2026-01-01T00:00:04Z four\n"
        );
    }

    #[test]
    fn limit_bytes_cuts_the_output() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        assert_eq!(read(&p, "limitBytes=6"), "one\ntw");
        assert_eq!(read(&p, "limitBytes=4"), "one\n");
    }

    #[test]
    fn an_unfinished_record_waits_for_its_newline() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        let mut f = std::fs::OpenOptions::new().append(true).open(&p).unwrap();
        std::io::Write::write_all(&mut f, b"2026-01-01T00:00:05Z stdout F fi").unwrap();
        assert_eq!(read(&p, "tailLines=1"), "four\n");
    }

    #[test]
    fn follow_sees_records_written_later_and_stops_when_told() {
        let dir = tempfile::tempdir().unwrap();
        let p = sample(dir.path());
        let opts = LogOptions::parse(Some("follow=true&tailLines=0"), Timestamp::now()).unwrap();
        let mut r = Reader::open(&p, opts).unwrap();
        let mut got = Vec::new();
        let mut polls = 0;
        let path = p.clone();
        let stop = r
            .run(
                &mut |b| {
                    got.extend(b);
                    true
                },
                &mut || {
                    polls += 1;
                    if polls == 2 {
                        let mut f = std::fs::OpenOptions::new()
                            .append(true)
                            .open(&path)
                            .unwrap();
                        let rec = record(&ts("2026-01-01T00:00:06Z"), "stdout", false, b"later");
                        std::io::Write::write_all(&mut f, &rec).unwrap();
                    }
                    polls > 3
                },
            )
            .unwrap();
        assert_eq!(stop, Stop::Stopped);
        assert_eq!(String::from_utf8(got).unwrap(), "later\n");
    }

    #[test]
    fn bad_parameters_name_the_parameter() {
        let now = Timestamp::now();
        let e = LogOptions::parse(Some("tailLines=abc"), now).unwrap_err();
        assert!(matches!(
            &e,
            OptionsError::Decode {
                param: "tailLines",
                ..
            }
        ));
        assert!(e.to_string().contains("tailLines=\"abc\""), "{e}");
        let e = LogOptions::parse(Some("tailLines=-1"), now).unwrap_err();
        assert!(
            e.to_string().contains("tailLines: Invalid value: -1"),
            "{e}"
        );
        let e = LogOptions::parse(Some("limitBytes=0"), now).unwrap_err();
        assert!(e.to_string().contains("limitBytes"), "{e}");
        let e = LogOptions::parse(Some("sinceSeconds=1&sinceTime=2026-01-01T00:00:00Z"), now)
            .unwrap_err();
        assert!(matches!(e, OptionsError::Invalid(_)));
        let e = LogOptions::parse(Some("sinceTime=yesterday"), now).unwrap_err();
        assert!(e.to_string().contains("sinceTime"), "{e}");
        let o = LogOptions::parse(Some("follow=1&previous=false&timestamps=f"), now).unwrap();
        assert!(o.follow && !o.previous && !o.timestamps);
    }

    #[test]
    fn runs_are_listed_in_order() {
        let dir = tempfile::tempdir().unwrap();
        for n in [10, 2, 0] {
            std::fs::write(run_file(dir.path(), n), b"").unwrap();
        }
        std::fs::write(dir.path().join("x.txt"), b"").unwrap();
        assert_eq!(runs(dir.path()), vec![0, 2, 10]);
    }
}
