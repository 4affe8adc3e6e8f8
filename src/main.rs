//! Thin entry point: parse arguments, run, map the outcome to an exit status.

fn main() {
    let status = consul_doctor::run(std::env::args_os());
    std::process::exit(status.code());
}
