#[allow(dead_code)]
pub mod config;

fn main() {}
