//! Memory and CPU time of a controller process, from `/proc/<pid>/status` and `/proc/<pid>/stat`.

use crate::error::BenchError;

/// Clock ticks per second of `utime`/`stime` (`USER_HZ`): 100 on every Linux architecture the
/// controllers ship for (it is part of the kernel ABI, independent of `CONFIG_HZ`).
pub const USER_HZ: f64 = 100.0;

/// Resident memory of a process, in KiB.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct Memory {
    /// `VmRSS`: resident now.
    pub rss_kib: u64,
    /// `VmHWM`: the peak resident size since the process started.
    pub hwm_kib: u64,
}

/// Parses the `VmRSS` and `VmHWM` lines of a `/proc/<pid>/status` text.
pub fn parse_status(text: &str) -> Result<Memory, BenchError> {
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| BenchError::Proc(format!("{name} in /proc/<pid>/status")))
    };
    Ok(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// CPU seconds (`utime + stime`) from a `/proc/<pid>/stat` line. The command name (field 2) is in
/// parentheses and may itself hold spaces and parentheses, so fields are counted after the last `)`.
pub fn parse_stat_cpu_seconds(text: &str) -> Result<f64, BenchError> {
    let after = text
        .rfind(')')
        .map(|i| &text[i + 1..])
        .ok_or_else(|| BenchError::Proc("/proc/<pid>/stat without a command name".into()))?;
    // After the name: state(3) ppid(4) ... utime(14) stime(15); index 0 here is field 3.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|v| v.parse::<u64>().ok())
            .ok_or_else(|| BenchError::Proc(format!("field {} of /proc/<pid>/stat", i + 3)))
    };
    Ok((tick(11)? + tick(12)?) as f64 / USER_HZ)
}

/// Memory of process `pid`.
pub fn memory(pid: u32) -> Result<Memory, BenchError> {
    let path = format!("/proc/{pid}/status");
    parse_status(&std::fs::read_to_string(&path).map_err(BenchError::io(path))?)
}

/// CPU seconds used so far by process `pid`.
pub fn cpu_seconds(pid: u32) -> Result<f64, BenchError> {
    let path = format!("/proc/{pid}/stat");
    parse_stat_cpu_seconds(&std::fs::read_to_string(&path).map_err(BenchError::io(path))?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_gives_current_and_peak_resident_memory() {
        let text = "Name:\tscheduled-contr\nVmPeak:\t  900000 kB\nVmHWM:\t   41234 kB\nVmRSS:\t   39000 kB\nThreads:\t4\n";
        assert_eq!(
            parse_status(text).unwrap(),
            Memory {
                rss_kib: 39000,
                hwm_kib: 41234
            }
        );
    }

    #[test]
    fn status_without_memory_lines_is_an_error_not_zero() {
        // A kernel thread or a zombie has no VmRSS; reporting 0 KiB would look like a great result.
        assert!(parse_status("Name:\tzombie\nState:\tZ (zombie)\n").is_err());
    }

    #[test]
    fn stat_cpu_is_utime_plus_stime_counted_after_a_name_with_spaces_and_parentheses() {
        let line = "4242 (odd) name (x)) S 1 4242 4242 0 -1 4194560 100 0 0 0 250 130 0 0 20 0 4 0 1234 5000 300";
        assert_eq!(parse_stat_cpu_seconds(line).unwrap(), 3.8);
    }

    #[test]
    fn this_process_has_memory_and_cpu_time() {
        let pid = std::process::id();
        let m = memory(pid).unwrap();
        assert!(m.rss_kib > 0 && m.hwm_kib >= m.rss_kib);
        // Burn a little CPU so the counter is not trivially zero on a fast machine.
        let mut x = 0u64;
        for i in 0..20_000_000u64 {
            x = x.wrapping_mul(31).wrapping_add(i);
        }
        std::hint::black_box(x);
        assert!(cpu_seconds(pid).unwrap() > 0.0);
    }
}
