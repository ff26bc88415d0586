//! In-process verification benchmarks.

fn main() {}
