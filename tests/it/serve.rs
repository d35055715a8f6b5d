//! A real `herald serve` process on a port of its own, its standard error kept in a file.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct ServeProcess {
    child: Child,
    pub address: String,
    pub log: PathBuf,
}

impl Drop for ServeProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A `herald` command on `config` with `HERALD_LOG` set to `log_filter`.
pub fn herald(config: &Path, log_filter: &str) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_herald"));
    cmd.env_remove("HERALD_CONFIG")
        .env_remove("RUST_LOG")
        .env("NO_COLOR", "1")
        .env("HERALD_LOG", log_filter)
        .arg("--config")
        .arg(config);
    cmd
}

impl ServeProcess {
    /// Starts `herald serve` (the config should say `listen = "127.0.0.1:0"`) and waits
    /// for the line that says where it listens. `log_filter` must let `herald=info` through.
    pub async fn start(config: &Path, log_filter: &str) -> ServeProcess {
        let log = config.with_file_name(format!("serve-{}.log", uuid::Uuid::new_v4().simple()));
        let child = herald(config, log_filter)
            .arg("serve")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut process = ServeProcess {
            child,
            address: String::new(),
            log,
        };
        let started = Instant::now();
        loop {
            let text = std::fs::read_to_string(&process.log).unwrap_or_default();
            let found = text.lines().filter(|l| l.contains("serving")).find_map(|l| {
                let rest = &l[l.find("address=")? + "address=".len()..];
                rest.split_whitespace().next().map(str::to_owned)
            });
            if let Some(address) = found {
                process.address = format!("http://{address}");
                return process;
            }
            assert!(
                process.child.try_wait().unwrap().is_none(),
                "herald serve stopped:\n{text}"
            );
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "herald serve did not start:\n{text}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.address)
    }

    /// Everything the process has written to standard error so far.
    pub fn logs(&self) -> String {
        String::from_utf8_lossy(&std::fs::read(&self.log).unwrap()).into_owned()
    }
}
