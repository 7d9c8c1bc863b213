#![forbid(unsafe_code)]

fn main() {
    // Before anything else: scrub and remove edit directories that a byreis
    // killed beyond catching (SIGKILL) left behind. Silent, never fatal.
    byreis::editor::sweep_stale();
    std::process::exit(byreis::cli::main_catching_broken_pipe());
}
