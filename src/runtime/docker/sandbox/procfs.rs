//! A container's processes seen from the host's `/proc`.
//!
//! Docker reports host PIDs (`State.Pid`, exec inspect, `top`). When orcaops runs
//! beside a local daemon, in its PID namespace, `/proc/<pid>` of those PIDs is the
//! container's processes: their environment (the exec markers) and their network
//! namespace's socket tables. [`is_containers_process`] checks that this holds
//! before anything is read or killed, because with a remote daemon the same PIDs
//! name unrelated local processes.

use std::io;

/// An environment entry that tags the processes of one exec: `NAME=<random id>`.
/// Children inherit it, so it finds everything the exec started.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Marker {
    pub name: &'static str,
    pub value: String,
}

impl Marker {
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            value: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// `NAME=value`, as it appears in an environment.
    pub fn entry(&self) -> String {
        format!("{}={}", self.name, self.value)
    }
}

/// Whether a NUL-separated environment block has the entry `NAME=value`
/// (`value: None`: `NAME=` with any value).
pub(super) fn environ_has(environ: &[u8], name: &str, value: Option<&str>) -> bool {
    environ.split(|byte| *byte == 0).any(|entry| {
        let Some(rest) = entry
            .strip_prefix(name.as_bytes())
            .and_then(|rest| rest.strip_prefix(b"="))
        else {
            return false;
        };
        value.is_none_or(|value| rest == value.as_bytes())
    })
}

/// The environment of a host process. A process that is gone (or a zombie, whose
/// environment reads empty) has none.
pub(super) async fn environ(pid: i64) -> io::Result<Vec<u8>> {
    match tokio::fs::read(format!("/proc/{pid}/environ")).await {
        Ok(environ) => Ok(environ),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
        // ESRCH: the process exited while being read.
        Err(e) if e.raw_os_error() == Some(libc::ESRCH) => Ok(Vec::new()),
        Err(e) => Err(e),
    }
}

/// Whether host process `pid` is in the cgroup of `container_id`; false (with the
/// reason) when it is not, or when this host has no such process.
pub(super) async fn is_containers_process(
    pid: i64,
    container_id: &str,
) -> std::result::Result<(), String> {
    if pid <= 1 || container_id.is_empty() {
        return Err(format!("Docker reported no process (pid {pid})"));
    }
    match tokio::fs::read_to_string(format!("/proc/{pid}/cgroup")).await {
        Ok(cgroup) if cgroup.contains(container_id) => Ok(()),
        Ok(_) => Err(format!(
            "host process {pid} is not in the container's cgroup: the Docker daemon is remote or in another PID namespace"
        )),
        Err(e) => Err(format!(
            "/proc/{pid}/cgroup: {e}: the Docker daemon is remote or in another PID namespace"
        )),
    }
}

/// SIGKILL to a process and to the process group it leads (an exec's process is a
/// session leader, and the processes it started without job control stay in its group).
/// Errors are ignored: the process may have exited meanwhile.
pub(super) fn kill_process_and_group(pid: i64) {
    let Ok(pid) = libc::pid_t::try_from(pid) else {
        return;
    };
    // pid 0 and 1 (and negatives) address whole groups or everything: never.
    if pid <= 1 {
        return;
    }
    // SAFETY: kill(2) has no memory-safety preconditions.
    unsafe {
        libc::kill(-pid, libc::SIGKILL);
        libc::kill(pid, libc::SIGKILL);
    }
}

/// The TCP ports in LISTEN state in a `/proc/net/tcp` or `/proc/net/tcp6` table.
pub(super) fn listening_ports(table: &str) -> impl Iterator<Item = u16> + '_ {
    // Columns: sl local_address rem_address st ...; local_address is ADDR:PORT in hex,
    // st 0A is LISTEN.
    table.lines().skip(1).filter_map(|line| {
        let mut columns = line.split_whitespace();
        let local = columns.nth(1)?;
        let state = columns.nth(1)?;
        if state != "0A" {
            return None;
        }
        let (_, port) = local.rsplit_once(':')?;
        u16::from_str_radix(port, 16).ok()
    })
}

/// The PID column of `docker top` (default `ps -ef` columns).
pub(super) fn top_pids(titles: &[String], processes: &[Vec<String>]) -> Vec<i64> {
    let Some(column) = titles.iter().position(|title| title == "PID") else {
        return Vec::new();
    };
    processes
        .iter()
        .filter_map(|process| process.get(column)?.parse().ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_entries_match_by_name_and_value() {
        let environ = b"PATH=/bin\0ORCAOPS_EXEC=abc\0ORCAOPS_EXEC_X=1\0";
        assert!(environ_has(environ, "ORCAOPS_EXEC", None));
        assert!(environ_has(environ, "ORCAOPS_EXEC", Some("abc")));
        assert!(!environ_has(environ, "ORCAOPS_EXEC", Some("ab")));
        assert!(!environ_has(environ, "ORCAOPS_EXE", None));
        assert!(!environ_has(b"XORCAOPS_EXEC=abc\0", "ORCAOPS_EXEC", None));
        assert!(!environ_has(b"", "ORCAOPS_EXEC", None));
        // The last entry need not end with a NUL.
        assert!(environ_has(b"A=1\0ORCAOPS_EXEC=", "ORCAOPS_EXEC", Some("")));
    }

    #[test]
    fn listening_ports_are_read_from_tcp_and_tcp6_tables() {
        let tcp = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B00007F:8597 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1794850 1 0 100 0 0 10 0
   1: 020012AC:1F90 010012AC:B970 01 00000000:00000000 00:00000000 00000000     0        0 0 1 0 100 0 0 10 0
";
        assert_eq!(listening_ports(tcp).collect::<Vec<_>>(), [0x8597]);
        let tcp6 = "  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1795620 1 0 100 0 0 10 0
   1: 0000000000000000FFFF0000020012AC:1F90 0000000000000000FFFF0000010012AC:B970 06 00000000:00000000 03:00001604 00000000     0        0 0 3 0
";
        assert_eq!(listening_ports(tcp6).collect::<Vec<_>>(), [8080]);
        assert_eq!(listening_ports("").count(), 0);
    }

    #[test]
    fn top_pids_come_from_the_pid_column() {
        let titles: Vec<String> = ["UID", "PID", "PPID", "CMD"].map(String::from).to_vec();
        let processes = vec![
            vec![
                "root".into(),
                "21414".into(),
                "21392".into(),
                "httpd".into(),
            ],
            vec![
                "root".into(),
                "21607".into(),
                "21414".into(),
                "sleep 30".into(),
            ],
        ];
        assert_eq!(top_pids(&titles, &processes), [21414, 21607]);
        assert!(top_pids(&["CMD".to_string()], &processes).is_empty());
    }

    #[test]
    fn markers_are_unique_entries() {
        let (a, b) = (Marker::new("ORCAOPS_EXEC"), Marker::new("ORCAOPS_EXEC"));
        assert_ne!(a.value, b.value);
        assert_eq!(a.entry(), format!("ORCAOPS_EXEC={}", a.value));
    }
}
