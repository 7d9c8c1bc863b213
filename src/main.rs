#![forbid(unsafe_code)]

fn main() {
    std::process::exit(byreis::cli::main());
}
