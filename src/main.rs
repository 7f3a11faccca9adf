//! The `terminus-batch` binary: everything lives in the library; see `cli::main`.

fn main() -> std::process::ExitCode {
    terminus_batch::cli::main()
}
