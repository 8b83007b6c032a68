//! `ringlog-bench`: how fast are durable commits on this disk, and how does ringlog compare?
//! See `ringlog-bench --help` and the crate documentation.

fn main() {
    let code = ringlog_bench::main_with(
        std::env::args_os().skip(1),
        &ringlog_bench::runner::Hooks::default(),
        &mut std::io::stdout().lock(),
    );
    std::process::exit(code);
}
