//! The Python that runs real Python clients in tests: the virtualenv
//! `scripts/pyenv.sh` makes at `.venv/` (`./scripts/test.sh` runs it first).

use std::path::PathBuf;
use std::process::Command;

/// The virtualenv's interpreter, failing the test with what to run when the
/// virtualenv is missing (a test that needs a real client never skips).
pub fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let python = root.join(".venv/bin/python");
    assert!(
        python.exists(),
        "{} is missing: run ./scripts/pyenv.sh (./scripts/test.sh does) to make the \
         test virtualenv with scripts/requirements-test.txt",
        python.display()
    );
    python
}

/// A command running `script` (Python source) in the virtualenv, with `args`
/// as `sys.argv[1:]`.
pub fn script(script: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(python());
    cmd.arg("-c").arg(script).args(args);
    cmd
}

/// Runs `script` with `args` in the virtualenv off the async workers, failing
/// the test (naming `what`, with the script's stdout and stderr) unless it
/// exits 0; returns its stdout.
pub async fn run(script: &'static str, args: Vec<String>, what: &str) -> String {
    let out = tokio::task::spawn_blocking(move || {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        self::script(script, &args).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{what} failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}
