//! The shell: everything that touches the operating system.

pub mod probe;
