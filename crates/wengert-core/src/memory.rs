//! How much memory this process may still use, and byte counts in words:
//! what the data loader and the trainer check an estimate against before
//! they spend memory sized by their input.
//!
//! Linux says it in `/proc/meminfo` (`MemAvailable`: free memory plus
//! what the kernel can reclaim without swapping) and, inside a container,
//! in the cgroup's `memory.max` less its `memory.current`; the smaller
//! counts. Elsewhere nothing is known and the checks are skipped. (The
//! `sysinfo` crate reads the same files and much besides; these two reads
//! are all Wengert needs.)

use std::path::Path;

/// Bytes of memory this process can still use without the system
/// swapping or the container's limit killing it, when the system says.
pub fn available() -> Option<u64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").ok()?;
    let system = meminfo_kib(&meminfo, "MemAvailable:")?.saturating_mul(1024);
    Some(cgroup_room(Path::new("/sys/fs/cgroup")).map_or(system, |room| room.min(system)))
}

/// A `/proc/meminfo` field in KiB.
fn meminfo_kib(meminfo: &str, field: &str) -> Option<u64> {
    meminfo.lines().find_map(|l| l.strip_prefix(field)?.split_whitespace().next()?.parse().ok())
}

/// The room left under a cgroup v2 memory limit: `memory.max` less
/// `memory.current`; `None` without a limit (`max`) or a cgroup.
fn cgroup_room(dir: &Path) -> Option<u64> {
    let read = |f: &str| std::fs::read_to_string(dir.join(f)).ok()?.trim().parse::<u64>().ok();
    Some(read("memory.max")?.saturating_sub(read("memory.current").unwrap_or(0)))
}

/// `bytes` in the largest binary unit that keeps a number of at least 1,
/// with at most one decimal: `"512 B"`, `"1.5 KiB"`, `"24 GiB"`, `"1.1 TiB"`.
pub fn human(bytes: u64) -> String {
    const UNITS: [&str; 7] = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    let rounded = (value * 10.0).round() / 10.0;
    if unit == 0 || rounded.fract() == 0.0 {
        format!("{rounded:.0} {}", UNITS[unit])
    } else {
        format!("{rounded:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_in_words() {
        assert_eq!(human(0), "0 B");
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert_eq!(human(24 << 30), "24 GiB");
        assert_eq!(human(1_209_462_790_553), "1.1 TiB");
        assert_eq!(human(u64::MAX), "16 EiB");
    }

    #[test]
    fn meminfo_fields_parse() {
        let m = "MemTotal:       24000000 kB\nMemFree:  100 kB\nMemAvailable:   23000000 kB\n";
        assert_eq!(meminfo_kib(m, "MemAvailable:"), Some(23_000_000));
        assert_eq!(meminfo_kib(m, "SwapTotal:"), None);
    }

    #[test]
    fn a_cgroup_limit_leaves_its_room() {
        let dir = std::env::temp_dir().join(format!("wengert-cgroup-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("memory.max"), "1073741824\n").unwrap();
        std::fs::write(dir.join("memory.current"), "73741824\n").unwrap();
        assert_eq!(cgroup_room(&dir), Some(1_000_000_000));
        std::fs::write(dir.join("memory.max"), "max\n").unwrap();
        assert_eq!(cgroup_room(&dir), None);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn this_machine_says_on_linux() {
        if cfg!(target_os = "linux") {
            assert!(available().is_some_and(|b| b > 0));
        }
    }
}
