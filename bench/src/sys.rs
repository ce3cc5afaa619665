//! Process figures from /proc and the open-file limit.

/// Raises the open-file soft limit to the hard limit.
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain libc calls with a valid pointer to a local.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// Clock ticks per second (the unit of utime/stime).
pub fn clk_tck() -> f64 {
    // SAFETY: sysconf has no preconditions.
    let t = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if t > 0 {
        t as f64
    } else {
        100.0
    }
}

/// utime + stime of a process (all its threads), in seconds; `None` when gone.
pub fn cpu_secs(pid: &str) -> Option<f64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state); utime is field 14, stime field 15.
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// Resident set size in KiB; `None` when gone.
pub fn rss_kib(pid: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Lets `connect` choose the source port of a socket bound to an address
/// (`IP_BIND_ADDRESS_NO_PORT`): a port per destination rather than one that
/// is unique on the address, so bound clients do not run out of ports early.
/// Best effort: without it, binding still works, with fewer ports.
pub fn bind_address_no_port(fd: std::os::fd::RawFd) {
    let one: libc::c_int = 1;
    // SAFETY: a valid fd and a pointer to a local of the size given.
    unsafe {
        libc::setsockopt(
            fd,
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&one as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
}

/// Makes a child die with the generator (`PR_SET_PDEATHSIG`), so a server
/// under test never outlives a generator killed by `timeout` or Ctrl-C, where
/// no destructor runs; it survives the child's `exec` of `env`/`taskset`.
pub fn die_with_parent(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe, as pre_exec requires.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Seconds the threads of a process spent runnable but waiting for a CPU
/// (second field of `/proc/<pid>/task/*/schedstat`, in ns): on a shared
/// machine, how much of a window the process was held off its core by
/// others, i.e. how far its figures are the machine's rather than its own.
/// `None` when gone.
pub fn wait_secs(pid: &str) -> Option<f64> {
    let mut ns: u64 = 0;
    for task in std::fs::read_dir(format!("/proc/{pid}/task"))
        .ok()?
        .flatten()
    {
        let Ok(s) = std::fs::read_to_string(task.path().join("schedstat")) else {
            continue; // a thread that just exited
        };
        ns += (s.split_whitespace().nth(1))
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0);
    }
    Some(ns as f64 / 1e9)
}
