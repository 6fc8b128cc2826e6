//! Figures about this process and this machine for `/stats`, read from Linux's `/proc`.
//! Elsewhere, or when a file cannot be read (some containers hide `/proc/self/io`), a figure
//! is absent rather than invented.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// `/proc` counts CPU time in USER_HZ ticks, which the kernel fixes at 100 for user space on
/// every architecture Stele builds for.
const USER_HZ: u64 = 100;

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct ProcessFigures {
    pub start_time: Option<SystemTime>,
    pub resident_bytes: Option<u64>,
    pub virtual_bytes: Option<u64>,
    /// User plus system CPU time since the process started.
    pub cpu_time: Option<Duration>,
    pub threads: Option<u64>,
    pub disk_io: Option<DiskIo>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct DiskIo {
    /// Bytes fetched from storage.
    pub read_bytes: u64,
    /// Bytes sent to storage.
    pub written_bytes: u64,
    /// Read system calls.
    pub read_ops: u64,
    /// Write system calls.
    pub write_ops: u64,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub(crate) struct SystemFigures {
    pub cpu_count: Option<usize>,
    pub total_memory_bytes: Option<u64>,
    /// Memory available to new work without swapping (`MemAvailable`).
    pub available_memory_bytes: Option<u64>,
    /// Over 1, 5 and 15 minutes.
    pub load_average: Option<[f64; 3]>,
}

pub(crate) fn process() -> ProcessFigures {
    let stat = read("/proc/self/stat").and_then(|text| parse_stat(&text));
    let boot_time = read("/proc/stat").and_then(|text| parse_boot_time(&text));
    let status = read("/proc/self/status");
    ProcessFigures {
        start_time: stat
            .zip(boot_time)
            .map(|(stat, boot)| boot + Duration::from_millis(stat.start_ticks * 1000 / USER_HZ)),
        resident_bytes: status.as_deref().and_then(|s| kib_field(s, "VmRSS")),
        virtual_bytes: status.as_deref().and_then(|s| kib_field(s, "VmSize")),
        cpu_time: stat.map(|stat| {
            Duration::from_millis((stat.user_ticks + stat.system_ticks) * 1000 / USER_HZ)
        }),
        threads: stat.map(|stat| stat.threads),
        disk_io: read("/proc/self/io").and_then(|text| parse_io(&text)),
    }
}

pub(crate) fn system() -> SystemFigures {
    let meminfo = read("/proc/meminfo");
    SystemFigures {
        cpu_count: std::thread::available_parallelism().ok().map(usize::from),
        total_memory_bytes: meminfo.as_deref().and_then(|m| kib_field(m, "MemTotal")),
        available_memory_bytes: meminfo
            .as_deref()
            .and_then(|m| kib_field(m, "MemAvailable")),
        load_average: read("/proc/loadavg").and_then(|text| parse_load_average(&text)),
    }
}

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path).ok()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stat {
    user_ticks: u64,
    system_ticks: u64,
    threads: u64,
    /// Since boot.
    start_ticks: u64,
}

/// `/proc/self/stat`. The command name (field 2) is in parentheses and may itself contain
/// spaces and parentheses, so fields are counted from the last `)`.
fn parse_stat(text: &str) -> Option<Stat> {
    let after_name = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    // `fields[0]` is field 3 (state).
    let field = |number: usize| fields.get(number - 3)?.parse::<u64>().ok();
    Some(Stat {
        user_ticks: field(14)?,
        system_ticks: field(15)?,
        threads: field(20)?,
        start_ticks: field(22)?,
    })
}

/// `btime` in `/proc/stat`: when the machine booted.
fn parse_boot_time(text: &str) -> Option<SystemTime> {
    let seconds = text
        .lines()
        .find_map(|line| line.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    Some(UNIX_EPOCH + Duration::from_secs(seconds))
}

/// A `Name:   1234 kB` line of `/proc/self/status` or `/proc/meminfo`, in bytes.
fn kib_field(text: &str, name: &str) -> Option<u64> {
    let value = text.lines().find_map(|line| {
        let (key, value) = line.split_once(':')?;
        (key == name).then_some(value)
    })?;
    let kib: u64 = value.trim().strip_suffix("kB")?.trim().parse().ok()?;
    Some(kib * 1024)
}

fn parse_io(text: &str) -> Option<DiskIo> {
    let field = |name: &str| {
        text.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            (key == name).then(|| value.trim().parse::<u64>().ok())?
        })
    };
    Some(DiskIo {
        read_bytes: field("read_bytes")?,
        written_bytes: field("write_bytes")?,
        read_ops: field("syscr")?,
        write_ops: field("syscw")?,
    })
}

fn parse_load_average(text: &str) -> Option<[f64; 3]> {
    let mut fields = text.split_whitespace().map(|f| f.parse::<f64>().ok());
    Some([fields.next()??, fields.next()??, fields.next()??])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_after_the_command_name() {
        let text = "4242 (stele (a) b) S 1 4242 4242 0 -1 4194560 1000 0 0 0 \
                    250 50 0 0 20 0 7 0 123456 104857600 2560 18446744073709551615";
        assert_eq!(
            parse_stat(text),
            Some(Stat {
                user_ticks: 250,
                system_ticks: 50,
                threads: 7,
                start_ticks: 123_456,
            })
        );
        assert_eq!(parse_stat("4242 (stele) S 1"), None);
    }

    #[test]
    fn status_meminfo_io_and_loadavg_parse() {
        let status = "Name:\tstele\nVmSize:\t  204800 kB\nVmRSS:\t   10240 kB\nThreads:\t7\n";
        assert_eq!(kib_field(status, "VmRSS"), Some(10_485_760));
        assert_eq!(kib_field(status, "VmSize"), Some(209_715_200));
        assert_eq!(kib_field(status, "VmSwap"), None);
        let io = "rchar: 1\nwchar: 2\nsyscr: 3\nsyscw: 4\nread_bytes: 5\nwrite_bytes: 6\n\
                  cancelled_write_bytes: 0\n";
        assert_eq!(
            parse_io(io),
            Some(DiskIo {
                read_bytes: 5,
                written_bytes: 6,
                read_ops: 3,
                write_ops: 4,
            })
        );
        assert_eq!(
            parse_load_average("0.50 0.25 0.10 1/123 4567\n"),
            Some([0.5, 0.25, 0.1])
        );
        assert_eq!(
            parse_boot_time("cpu  1 2 3\nbtime 1700000000\nprocesses 9\n"),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn this_process_has_figures_on_linux() {
        let figures = process();
        assert!(figures.resident_bytes.is_some_and(|bytes| bytes > 0));
        assert!(figures.threads.is_some_and(|threads| threads >= 1));
        let started = figures.start_time.expect("start time");
        assert!(started <= SystemTime::now() + Duration::from_secs(1));
        assert!(system().total_memory_bytes.is_some_and(|bytes| bytes > 0));
    }
}
