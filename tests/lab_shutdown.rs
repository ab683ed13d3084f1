//! SIGTERM removes everything uplinkd owns and nothing else.
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
fn sigterm_leaves_the_kernel_as_it_was() {
    let lab = Lab::new(3);
    let before = lab.foreign_objects();
    let mut d = lab.start_daemon(bin(), &lab::config(&[1, 1, 1], lab::FAST), &[]);
    lab.wait_group(&mut d, &[1, 2, 3], STARTUP);
    assert!(!lab.uplinkd_objects().is_empty());

    let status = d.terminate();
    assert!(status.success(), "exit {status}; log:\n{}", d.log());
    let left = lab.uplinkd_objects();
    assert!(left.is_empty(), "left behind:\n{left}");
    let after = lab.foreign_objects();
    assert_eq!(
        before, after,
        "foreign objects changed:\nbefore:\n{before}\nafter:\n{after}"
    );
}
