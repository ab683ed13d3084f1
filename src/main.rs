fn main() {
    println!("uplinkd {}", env!("CARGO_PKG_VERSION"));
}
