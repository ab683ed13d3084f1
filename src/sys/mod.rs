//! The shell: everything that touches the operating system.
