//! The shell: everything that touches the operating system.

pub mod logger;
pub mod probe;
pub mod signals;
