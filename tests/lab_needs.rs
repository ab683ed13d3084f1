//! Without `nft` the daemon says so once at start, with what will not work, runs on with
//! its routes and rules (failover needs no nft), and does not retry in a loop.
#[path = "lab/mod.rs"]
mod lab;

use std::path::Path;
use std::time::Duration;

use lab::Lab;

fn bin() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_uplinkd"))
}

const STARTUP: Duration = Duration::from_secs(15);

#[test]
fn without_nft_it_says_so_once_and_routes() {
    let lab = Lab::new(2);
    // A PATH with `ip` (to enter the namespace) and no `nft`, for the daemon only.
    let dir = std::env::temp_dir().join(format!("uplinkd-no-nft-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let ip = ["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .expect("ip");
    let _ = std::fs::remove_file(dir.join("ip"));
    std::os::unix::fs::symlink(ip, dir.join("ip")).expect("symlink ip");
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::set_var("PATH", &dir);
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1], lab::FAST), &[]);
    std::env::set_var("PATH", path);
    let _ = std::fs::remove_dir_all(&dir);

    lab.wait_group(&mut d, &[1, 2], STARTUP);
    // Several of the daemon's periodic table checks (every 2 s) go by.
    std::thread::sleep(Duration::from_secs(6));
    let log = d.log();
    assert_eq!(log.matches("cannot run nft").count(), 1, "log:\n{log}");
    assert!(log.contains("connections are not pinned"), "log:\n{log}");
    assert!(!log.contains("nft: loading table"), "log:\n{log}");
    assert!(!lab.uplinkd_objects().is_empty());

    let status = d.stop();
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    let left = lab.uplinkd_objects();
    assert!(left.is_empty(), "left behind:\n{left}");
}
