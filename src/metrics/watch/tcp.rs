//! The harness's TCP sockets by state, and the ports a watched process
//! listens on (which tell apart processes of one name).
//!
//! `/proc/self/net/tcp{,6}` list every socket of the network namespace, not
//! only ours, so each line is joined with the socket inodes found behind
//! `/proc/self/fd` (`socket:[inode]`). A socket in TIME_WAIT no longer has an
//! fd (its inode is 0), so it cannot be attributed to a process: TIME_WAIT is
//! counted for the whole namespace, limited to the target's ports when known.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

/// TCP states as `/proc/net/tcp` numbers them (include/net/tcp_states.h).
pub const STATES: [(u8, &str); 12] = [
    (0x01, "established"),
    (0x02, "syn_sent"),
    (0x03, "syn_recv"),
    (0x04, "fin_wait1"),
    (0x05, "fin_wait2"),
    (0x06, "time_wait"),
    (0x07, "close"),
    (0x08, "close_wait"),
    (0x09, "last_ack"),
    (0x0A, "listen"),
    (0x0B, "closing"),
    (0x0C, "new_syn_recv"),
];

/// States always reported (zero included), so their chart lines do not come and go.
pub const ALWAYS: [&str; 4] = ["established", "time_wait", "close_wait", "syn_sent"];

pub fn state_name(code: u8) -> &'static str {
    STATES
        .iter()
        .find(|(c, _)| *c == code)
        .map(|(_, n)| *n)
        .unwrap_or("unknown")
}

/// One line of `/proc/net/tcp` or `tcp6`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    pub local_port: u16,
    pub remote_port: u16,
    pub state: u8,
    pub inode: u64,
}

/// Parses one table line; `None` for the header or anything malformed.
/// `  0: 0100007F:1F90 0100007F:C350 01 00000000:00000000 00:00000000 00000000 0 0 12345 1 ...`
pub fn parse_line(line: &str) -> Option<Entry> {
    let f: Vec<&str> = line.split_whitespace().collect();
    if f.len() < 10 || !f[0].ends_with(':') {
        return None;
    }
    let port = |addr: &str| u16::from_str_radix(addr.rsplit_once(':')?.1, 16).ok();
    Some(Entry {
        local_port: port(f[1])?,
        remote_port: port(f[2])?,
        state: u8::from_str_radix(f[3], 16).ok()?,
        inode: f[9].parse().ok()?,
    })
}

/// Socket inodes of this process's open fds.
pub fn own_socket_inodes() -> HashSet<u64> {
    socket_inodes("/proc/self/fd")
}

/// Socket inodes behind the fds in `fd_dir` (`/proc/PID/fd`).
pub fn socket_inodes(fd_dir: &str) -> HashSet<u64> {
    let Ok(dir) = std::fs::read_dir(fd_dir) else {
        return HashSet::new();
    };
    dir.filter_map(|e| {
        let link = std::fs::read_link(e.ok()?.path()).ok()?;
        let s = link.to_str()?;
        s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
    })
    .collect()
}

/// Counts `tables` (the text of tcp and tcp6) by state: sockets whose inode is
/// ours, plus TIME_WAIT entries whose local or remote port is in `ports`
/// (any port when `ports` is empty).
pub fn count(tables: &[String], ours: &HashSet<u64>, ports: &[u16]) -> BTreeMap<String, u64> {
    let mut by_state: BTreeMap<String, u64> = ALWAYS.iter().map(|s| (s.to_string(), 0)).collect();
    for entry in tables.iter().flat_map(|t| t.lines()).filter_map(parse_line) {
        let counted = if entry.state == 0x06 && entry.inode == 0 {
            ports.is_empty()
                || ports.contains(&entry.local_port)
                || ports.contains(&entry.remote_port)
        } else {
            entry.inode != 0 && ours.contains(&entry.inode)
        };
        if counted {
            *by_state
                .entry(state_name(entry.state).to_string())
                .or_default() += 1;
        }
    }
    by_state
}

/// The local ports of the listening sockets in `tables` whose inode is in
/// `inodes`, sorted, each once (a v4 and a v6 socket on one port are one).
pub fn listening_ports(tables: &[String], inodes: &HashSet<u64>) -> Vec<u16> {
    let mut ports: Vec<u16> = tables
        .iter()
        .flat_map(|t| t.lines())
        .filter_map(parse_line)
        .filter(|e| e.state == 0x0A && e.inode != 0 && inodes.contains(&e.inode))
        .map(|e| e.local_port)
        .collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// The ports process `pid` listens on, from its own network namespace's
/// tables; empty when it has no socket (the tables are then not read) or
/// its fds cannot be read.
pub fn listening_ports_of(pid: u32) -> Vec<u16> {
    let inodes = socket_inodes(&format!("/proc/{pid}/fd"));
    if inodes.is_empty() {
        return Vec::new();
    }
    let tables: Vec<String> = ["tcp", "tcp6"]
        .iter()
        .filter_map(|t| std::fs::read_to_string(format!("/proc/{pid}/net/{t}")).ok())
        .collect();
    listening_ports(&tables, &inodes)
}

/// Reads both tables of this process's network namespace and counts them.
pub fn sample(ports: &[u16]) -> BTreeMap<String, u64> {
    let tables: Vec<String> = ["/proc/self/net/tcp", "/proc/self/net/tcp6"]
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .collect();
    count(&tables, &own_socket_inodes(), ports)
}

/// [`sample`], spaced out when it is slow: reading every socket table costs
/// more as sockets grow, so after a long read the next ones are skipped and
/// the last counts repeated.
#[derive(Debug, Default)]
pub struct Paced {
    /// Readings still to skip.
    skip: u32,
    /// The last counts, keyed `tcp_<state>`.
    last: BTreeMap<String, f64>,
}

impl Paced {
    /// Counts by state as `tcp_<state>` values, fresh or repeated.
    pub fn sample(&mut self, ports: &[u16]) -> BTreeMap<String, f64> {
        if self.skip > 0 {
            self.skip -= 1;
            return self.last.clone();
        }
        let began = Instant::now();
        let counts = sample(ports);
        // Keep the socket scan under ~5% of one core.
        let every = (began.elapsed().as_millis() as u32 / 50).clamp(1, 30);
        self.skip = every - 1;
        self.last = counts
            .into_iter()
            .map(|(k, v)| (format!("tcp_{k}"), v as f64))
            .collect();
        self.last.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TCP: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0000000000000000 100 0 0 10 0\n\
   1: 0100007F:C350 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 1002 1 0000000000000000 20 4 30 10 -1\n\
   2: 0100007F:C352 0100007F:1F90 06 00000000:00000000 03:00000F5E 00000000     0        0 0 3 0000000000000000\n\
   3: 0100007F:D000 0100007F:0050 06 00000000:00000000 03:00000F5E 00000000     0        0 0 3 0000000000000000\n\
   4: 0100007F:C354 0100007F:1F90 08 00000000:00000000 00:00000000 00000000     0        0 1003 1 0000000000000000 20 4 30 10 -1\n\
   5: 0100007F:C356 0100007F:1F90 01 00000000:00000000 00:00000000 00000000     0        0 9999 1 0000000000000000 20 4 30 10 -1\n";
    const TCP6: &str = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n\
   0: 00000000000000000000000001000000:C358 00000000000000000000000001000000:1F90 02 00000001:00000000 01:00000064 00000000     0        0 1004 1 0000000000000000 100 0 0 10 0\n";

    #[test]
    fn lines_parse() {
        let e = parse_line(TCP.lines().nth(2).unwrap()).unwrap();
        assert_eq!(
            e,
            Entry {
                local_port: 0xC350,
                remote_port: 8080,
                state: 1,
                inode: 1002
            }
        );
        assert_eq!(parse_line(TCP.lines().next().unwrap()), None);
        assert_eq!(parse_line("garbage"), None);
        let v6 = parse_line(TCP6.lines().nth(1).unwrap()).unwrap();
        assert_eq!((v6.remote_port, v6.state, v6.inode), (8080, 2, 1004));
    }

    #[test]
    fn listening_ports_are_those_of_the_processs_own_listeners() {
        let tables = vec![TCP.to_string(), TCP6.to_string()];
        // 1001 listens on 8080; 1002 is an established socket of the same process.
        let ours: HashSet<u64> = [1001, 1002].into_iter().collect();
        assert_eq!(listening_ports(&tables, &ours), [8080]);
        let theirs: HashSet<u64> = [9999].into_iter().collect();
        assert!(listening_ports(&tables, &theirs).is_empty());
    }

    #[test]
    fn counts_only_our_sockets_and_time_wait_by_port() {
        let tables = vec![TCP.to_string(), TCP6.to_string()];
        let ours: HashSet<u64> = [1001, 1002, 1003, 1004].into_iter().collect();
        let c = count(&tables, &ours, &[8080]);
        assert_eq!(c["listen"], 1);
        assert_eq!(c["established"], 1, "inode 9999 is someone else's");
        assert_eq!(c["close_wait"], 1);
        assert_eq!(c["syn_sent"], 1);
        assert_eq!(c["time_wait"], 1, "only the one to port 8080");
        let all = count(&tables, &ours, &[]);
        assert_eq!(all["time_wait"], 2);
    }
}
