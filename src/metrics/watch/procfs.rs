//! Reading one process from `/proc`: state, threads, CPU ticks, RSS and the
//! nofile limit (its open fds are counted by [`crate::metrics::fds::count_open`]).
//! Parsers are pure functions over the file text so they are tested without a
//! live process.

use std::io;
use std::path::PathBuf;

/// What `/proc/PID/stat` says about a process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stat {
    /// `R`, `S`, `D`, `Z`, `T`, `t`, `X`, `I`...
    pub state: char,
    pub threads: u64,
    /// utime + stime, in clock ticks.
    pub cpu_ticks: u64,
    /// Clock ticks after boot when the process started: tells a reused pid apart.
    pub start_ticks: u64,
    /// Resident set size, in pages.
    pub rss_pages: u64,
}

/// Parses `/proc/PID/stat`. The command name (field 2) may hold spaces and
/// parentheses, so fields are counted from the last `)`.
pub fn parse_stat(text: &str) -> Option<Stat> {
    let rest = &text[text.rfind(')')? + 1..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // f[0] is field 3 (state); field N is f[N - 3].
    let num = |field: usize| f.get(field - 3)?.parse::<u64>().ok();
    Some(Stat {
        state: f.first()?.chars().next()?,
        cpu_ticks: num(14)? + num(15)?,
        threads: num(20)?,
        start_ticks: num(22)?,
        rss_pages: num(24)?,
    })
}

/// The soft "Max open files" limit from `/proc/PID/limits`; `None` when
/// unlimited or absent.
pub fn parse_nofile_limit(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("Max open files"))?;
    line["Max open files".len()..]
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// The arguments of `/proc/PID/cmdline` (NUL-separated, the last one
/// NUL-terminated); empty for a kernel thread or a zombie.
pub fn parse_cmdline(bytes: &[u8]) -> Vec<String> {
    let bytes = bytes.strip_suffix(b"\0").unwrap_or(bytes);
    if bytes.is_empty() {
        return Vec::new();
    }
    bytes
        .split(|b| *b == 0)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect()
}

pub fn cmdline(pid: u32) -> io::Result<Vec<String>> {
    Ok(parse_cmdline(&std::fs::read(proc_path(pid, "cmdline"))?))
}

/// The command name (`/proc/PID/comm`) without its newline.
pub fn comm(pid: u32) -> io::Result<String> {
    let s = std::fs::read_to_string(proc_path(pid, "comm"))?;
    Ok(s.trim_end_matches('\n').to_string())
}

pub fn stat(pid: u32) -> io::Result<Stat> {
    let text = std::fs::read_to_string(proc_path(pid, "stat"))?;
    parse_stat(&text).ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "bad stat line"))
}

pub fn nofile_limit(pid: u32) -> io::Result<Option<u64>> {
    Ok(parse_nofile_limit(&std::fs::read_to_string(proc_path(
        pid, "limits",
    ))?))
}

/// Every pid whose command name is `name`. `comm` is cut to 15 bytes by the
/// kernel, so a longer name matches on its first 15 bytes.
pub fn pids_named(name: &str) -> Vec<u32> {
    let want = truncate_comm(name);
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| comm(*pid).is_ok_and(|c| c == want))
        .collect();
    pids.sort_unstable();
    pids
}

/// The kernel keeps `TASK_COMM_LEN - 1` = 15 bytes of a command name.
fn truncate_comm(name: &str) -> &str {
    let mut end = name.len().min(15);
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    &name[..end]
}

fn proc_path(pid: u32, file: &str) -> PathBuf {
    PathBuf::from(format!("/proc/{pid}/{file}"))
}

/// Clock ticks per second (`sysconf(_SC_CLK_TCK)`), the unit of CPU times in `/proc`.
pub fn ticks_per_second() -> u64 {
    rustix::param::clock_ticks_per_second().max(1)
}

pub fn page_size() -> u64 {
    rustix::param::page_size() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_with_spaces_and_parens_in_the_name() {
        let line = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 120 0 0 0 7 3 0 0 20 0 5 0 98765 12345678 321 18446744073709551615 1 1 0 0 0 0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
        let s = parse_stat(line).unwrap();
        assert_eq!(s.state, 'S');
        assert_eq!(s.cpu_ticks, 10);
        assert_eq!(s.threads, 5);
        assert_eq!(s.start_ticks, 98765);
        assert_eq!(s.rss_pages, 321);
        assert_eq!(parse_stat("garbage"), None);
        assert_eq!(parse_stat("1 (x) Z"), None);
    }

    #[test]
    fn nofile_limit_line() {
        let text =
            "Limit                     Soft Limit           Hard Limit           Units     \n\
Max cpu time              unlimited            unlimited            seconds   \n\
Max open files            1024                 524288               files     \n";
        assert_eq!(parse_nofile_limit(text), Some(1024));
        let unlimited =
            "Max open files            unlimited            unlimited            files\n";
        assert_eq!(parse_nofile_limit(unlimited), None);
        assert_eq!(parse_nofile_limit(""), None);
    }

    #[test]
    fn command_lines_split_on_nul() {
        assert_eq!(
            parse_cmdline(b"/usr/bin/registry\0serve\0/etc/a b.yml\0"),
            ["/usr/bin/registry", "serve", "/etc/a b.yml"]
        );
        assert_eq!(
            parse_cmdline(b"nginx: worker process\0"),
            ["nginx: worker process"]
        );
        assert!(parse_cmdline(b"").is_empty());
    }

    #[test]
    fn comm_names_are_cut_to_15_bytes() {
        assert_eq!(truncate_comm("docker-registry"), "docker-registry");
        assert_eq!(truncate_comm("containerd-shim-runc-v2"), "containerd-shim");
        assert_eq!(truncate_comm("nginx"), "nginx");
    }

    #[test]
    fn this_process_reads() {
        let me = std::process::id();
        let s = stat(me).unwrap();
        assert!(s.threads >= 1 && s.rss_pages > 0);
        assert!(crate::metrics::fds::count_open(me).unwrap() >= 3);
        assert!(ticks_per_second() >= 1);
    }
}
