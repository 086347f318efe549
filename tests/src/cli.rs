//! Running the workspace's binaries the way a user does: a command line, an environment, the
//! output captured; and `attio-relay dev` as a running server.
//!
//! The CLI's own tests get its path from `env!("CARGO_BIN_EXE_attio-relay")`; tests of other
//! packages ask [`workspace_binary`], which has cargo build it first.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// What a command printed, and whether it exited 0.
#[derive(Debug, Clone)]
pub struct Output {
    pub ok: bool,
    pub stdout: String,
    pub stderr: String,
}

impl Output {
    /// Standard output then standard error, for assertions about what the user saw.
    pub fn text(&self) -> String {
        format!("{}{}", self.stdout, self.stderr)
    }
}

/// One binary with the environment every run of it gets.
#[derive(Debug, Clone)]
pub struct Cli {
    bin: PathBuf,
    env: Vec<(String, String)>,
    removed: Vec<String>,
}

impl Cli {
    pub fn new(bin: impl Into<PathBuf>) -> Self {
        Self {
            bin: bin.into(),
            env: Vec::new(),
            removed: Vec::new(),
        }
    }

    /// The binary pointed at an AWS stand-in (moto, or a fault proxy before it) with the test
    /// credentials: the SDK never finds real ones.
    pub fn on_aws(bin: impl Into<PathBuf>, endpoint: &str) -> Self {
        Self::new(bin)
            .env("AWS_ENDPOINT_URL", endpoint)
            .env("AWS_ACCESS_KEY_ID", "testing")
            .env("AWS_SECRET_ACCESS_KEY", "testing")
            .env("AWS_REGION", "us-east-1")
    }

    pub fn env(mut self, name: &str, value: &str) -> Self {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Runs without `name`, even when the test process has it.
    pub fn without(mut self, name: &str) -> Self {
        self.removed.push(name.to_owned());
        self
    }

    fn command(&self) -> Command {
        let mut command = Command::new(&self.bin);
        for name in &self.removed {
            command.env_remove(name);
        }
        command.envs(self.env.iter().map(|(k, v)| (k, v)));
        command
    }

    /// Runs to completion with `args`.
    pub fn run(&self, args: &[&str]) -> Output {
        let out = self
            .command()
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.bin.display()));
        Output {
            ok: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }

    /// Starts `dev --addr 127.0.0.1:0 --data-dir <data_dir>` plus `args`, and waits for the
    /// line that names its URL.
    pub fn start_dev(&self, data_dir: &Path, args: &[&str]) -> DevServer {
        let mut child = self
            .command()
            .args(["dev", "--addr", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} dev: {e}", self.bin.display()));
        let mut reader = BufReader::new(child.stdout.take().expect("piped stdout"));
        // Owned from here on, so a failed start still stops the process.
        let mut server = DevServer {
            child,
            url: String::new(),
        };
        let mut first = String::new();
        reader.read_line(&mut first).expect("dev prints its URL");
        // Keep reading so the server never writes to a closed pipe.
        std::thread::spawn(move || reader.lines().for_each(drop));
        server.url = first
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no URL in {first:?}"))
            .to_owned();
        server
    }
}

/// A running `attio-relay dev`, stopped when dropped.
#[derive(Debug)]
pub struct DevServer {
    child: Child,
    /// Its base URL, `http://127.0.0.1:<port>/`.
    pub url: String,
}

impl Drop for DevServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The path of binary `bin` of package `package`, built (or found up to date) by cargo in the
/// profile the running test was built with: cargo builds another package's binaries only for
/// that package's own tests.
pub fn workspace_binary(package: &str, bin: &str) -> PathBuf {
    let test_exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test>-<hash>: binaries land in target/<profile>/.
    let profile_dir = test_exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let mut build = Command::new(cargo);
    build
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .args(["build", "--quiet", "-p", package, "--bin", bin]);
    if profile_dir.file_name().is_some_and(|n| n == "release") {
        build.arg("--release");
    }
    let status = build.status().expect("run cargo build");
    assert!(
        status.success(),
        "cargo build -p {package} --bin {bin} failed"
    );
    let path = profile_dir.join(format!("{bin}{}", std::env::consts::EXE_SUFFIX));
    assert!(path.exists(), "{} was not built", path.display());
    path
}
