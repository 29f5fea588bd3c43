//! Letting go of the program's own code pages once start-up is over.
//!
//! A process maps the spinlet binary's code and read-only data from the file, and each
//! page it runs or reads stays in its resident set for as long as it lives. The kernel
//! maps 64 KiB around every page fault on a file (fault-around), and start-up runs code
//! spread over the whole binary: linking a component registers every host function, one
//! monomorphised function each. Measured on the JS hello after 1,000 requests: 17.4 MB
//! of code and 6.4 MB of read-only data resident, of which serving touches 2.6 and 0.5 MB.
//! (The release build now places the code serving runs together, `build.rs` at the
//! workspace root: what serving faults back in is ~6 MB of code rather than 17.)
//!
//! [`release`] advises `MADV_DONTNEED` over the binary's segments that are never written
//! (the program headers' loadable segments without the write flag: code and read-only
//! data, never the relocated `RELRO` data, which is part of a writable segment). For such
//! a private file mapping the advice only removes the process's page-table entries: the
//! pages stay in the page cache (shared with every other spinlet process), nothing is
//! lost, and code that runs again is mapped again by a minor fault. So the resident set
//! shrinks to what the process goes on using. Called once start-up is over (a serving
//! process: at its first answered request, see [`crate::idle`]; the server: once it has
//! settled), each time requests stop for a moment, and after a background compile; never
//! on a request's path.
//!
//! Owns nothing; knows nothing of wasmtime or apps. One of the modules allowed `unsafe`
//! code (with [`crate::heap`] and [`crate::cache`]'s `mapped`): reading the program
//! headers (`dl_iterate_phdr`) and `madvise` are FFI calls no safe crate offers for the
//! running executable itself. Linux only; elsewhere it does nothing.

#![allow(unsafe_code)]

/// Drops the resident pages of the binary's never-written segments from this process
/// (they stay cached; what runs again faults back in); returns the bytes advised.
pub fn release() -> usize {
    #[cfg(target_os = "linux")]
    {
        let mut advised = 0;
        for (start, len) in read_only_segments() {
            // SAFETY: the range is page-aligned and lies inside a loadable segment of
            // the main executable that is mapped without write permission, so the
            // mapping is a private file mapping with no private (written) pages: the
            // advice drops page-table entries only, and the next access maps the same
            // bytes from the file again. Other threads running code there fault it
            // back in. No Rust reference points into code or read-only data as mutable.
            let done =
                unsafe { libc::madvise(start as *mut libc::c_void, len, libc::MADV_DONTNEED) };
            if done == 0 {
                advised += len;
            }
        }
        tracing::debug!(advised, "start-up code pages released");
        advised
    }
    #[cfg(not(target_os = "linux"))]
    {
        0
    }
}

/// The main executable's loadable segments without the write flag, as page-aligned
/// (start, length) ranges of this process's memory.
#[cfg(target_os = "linux")]
fn read_only_segments() -> Vec<(usize, usize)> {
    unsafe extern "C" fn each(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: `dl_iterate_phdr` passes a valid `dl_phdr_info` for the duration of the
        // call, whose `dlpi_phdr` points at `dlpi_phnum` program headers; `data` is the
        // `Vec` handed to `dl_iterate_phdr` below, borrowed by nothing else meanwhile.
        let (info, ranges) = unsafe { (&*info, &mut *data.cast::<Vec<(usize, usize)>>()) };
        if info.dlpi_phdr.is_null() {
            return 1;
        }
        // SAFETY: as above.
        let headers =
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) };
        let page = page_size();
        for h in headers {
            if h.p_type != libc::PT_LOAD || h.p_flags & libc::PF_W != 0 {
                continue;
            }
            let (Ok(vaddr), Ok(memsz)) = (usize::try_from(h.p_vaddr), usize::try_from(h.p_memsz))
            else {
                continue;
            };
            let start = (info.dlpi_addr as usize).saturating_add(vaddr);
            // Whole pages of the segment only.
            let first = start.div_ceil(page) * page;
            let end = start.saturating_add(memsz) / page * page;
            if end > first {
                ranges.push((first, end - first));
            }
        }
        // The first object is the main program: stop there.
        1
    }
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    // SAFETY: `each` only reads the headers it is given and writes to `ranges`, which
    // outlives the call.
    unsafe {
        libc::dl_iterate_phdr(Some(each), (&mut ranges as *mut Vec<(usize, usize)>).cast());
    }
    ranges
}

#[cfg(target_os = "linux")]
fn page_size() -> usize {
    // SAFETY: `sysconf` reads a constant of the system.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    usize::try_from(size)
        .ok()
        .filter(|s| *s > 0)
        .unwrap_or(4096)
}

#[cfg(test)]
mod tests {
    /// Reads the `Rss:` of the mapping that holds `addr`, in kB, from /proc/self/smaps.
    fn rss_of_mapping(addr: usize) -> Option<u64> {
        let smaps = std::fs::read_to_string("/proc/self/smaps").ok()?;
        let mut inside = false;
        for line in smaps.lines() {
            if let Some((range, _)) = line.split_once(' ') {
                if let Some((a, b)) = range.split_once('-') {
                    if let (Ok(a), Ok(b)) =
                        (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16))
                    {
                        inside = (a..b).contains(&addr);
                        continue;
                    }
                }
            }
            if inside {
                if let Some(v) = line.strip_prefix("Rss:") {
                    return v.trim().trim_end_matches("kB").trim().parse().ok();
                }
            }
        }
        None
    }

    #[test]
    fn code_keeps_running_after_its_pages_are_released() {
        let code = code_keeps_running_after_its_pages_are_released as *const () as usize;
        // The code and data this test runs are mapped again as it runs; the rest goes:
        // the start-up's (the loader's relocation tables in the first segment, the test
        // harness's code). A few tries: a process that has run little may re-fault about
        // what it had.
        let segments = super::read_only_segments();
        assert!(
            !segments.is_empty(),
            "the executable has read-only segments"
        );
        let resident = || -> u64 {
            segments
                .iter()
                .map(|(start, _)| rss_of_mapping(*start).expect("the segment's mapping"))
                .sum::<u64>()
                .max(rss_of_mapping(code).expect("the test's code mapping"))
        };
        let shrank = (0..3).any(|_| {
            let before = resident();
            assert!(super::release() > 0);
            let after = resident();
            eprintln!("read-only segments resident: {before} kB before, {after} kB after");
            after < before
        });
        assert!(
            shrank,
            "releasing never shrank the resident read-only segments"
        );
        // Everything still works: formatting, allocation, a panic caught and unwound
        // (its tables are read-only data).
        let caught = std::panic::catch_unwind(|| panic!("unwinds through released pages"));
        assert!(caught.is_err());
        assert_eq!(format!("{:?}", vec![1, 2, 3]), "[1, 2, 3]");
    }
}
