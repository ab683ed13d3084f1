//! Build step: the status page's view model (shared with the LuCI app, where it is served
//! as written) is embedded without its comment blocks, which the router binary would
//! otherwise carry as about 4 kB of text. Only whole-line `/* ... */` blocks are dropped
//! (a line that starts a block, through the line that ends with `*/`), so no string or
//! regular expression of the code can be mistaken for a comment.

use std::path::PathBuf;

const MODEL: &str =
    "openwrt-package/luci-app-uplinkd/htdocs/luci-static/resources/uplinkd/model.js";

fn strip_comment_lines(js: &str) -> String {
    let mut out = String::with_capacity(js.len());
    let mut in_comment = false;
    for line in js.split_inclusive('\n') {
        let t = line.trim();
        if !in_comment && t.starts_with("/*") {
            in_comment = true;
        }
        if in_comment {
            if t.contains("*/") {
                if !t.ends_with("*/") || t[..t.len() - 2].contains("*/") {
                    panic!("{MODEL}: code after a comment on the line {line:?}");
                }
                in_comment = false;
            }
            continue;
        }
        out.push_str(line);
    }
    if in_comment {
        panic!("{MODEL}: unterminated comment");
    }
    out
}

fn main() {
    println!("cargo:rerun-if-changed={MODEL}");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let js = std::fs::read_to_string(dir.join(MODEL)).unwrap_or_else(|e| panic!("{MODEL}: {e}"));
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR"));
    std::fs::write(out.join("model.js"), strip_comment_lines(&js)).expect("write model.js");
}
