//! Delivery benchmark: one edition of 5 posts to 10,000 and 100,000 confirmed subscribers
//! through Postfix's `smtp-sink` on loopback, with `smtp-source`'s rate into the same sink
//! (same message count and size, 20 sessions kept open) as the machine's ceiling.
//!
//! Needs Debian's `postfix` package for smtp-sink/smtp-source (the daemon is not started).
//! `cargo bench --bench delivery`; BENCHMARKS.md records the figures.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SESSIONS: u32 = 20;

struct Sink(Child);

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn start_sink(port: u16) -> anyhow::Result<Sink> {
    let child = Command::new("smtp-sink")
        .args(["-u", "root", &format!("127.0.0.1:{port}"), "1000"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| anyhow::anyhow!("smtp-sink is needed (apt-get install postfix): {e}"))?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(Sink(child));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    anyhow::bail!("smtp-sink did not start")
}

/// What one finished process used.
struct Usage {
    /// Peak resident memory (VmHWM), KiB.
    peak_kib: u64,
    /// User plus system CPU time.
    cpu: Duration,
}

/// Waits for `pid` without blocking; once it has exited, returns its status and CPU time
/// (reaped with wait4, which reports the child's own resource use).
fn reap(pid: u32) -> anyhow::Result<Option<(i32, Duration)>> {
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid value for wait4 to fill in.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: pid is a child of this process; status and usage are valid for writes.
    let done = unsafe { libc::wait4(pid as i32, &mut status, libc::WNOHANG, &mut usage) };
    anyhow::ensure!(done >= 0, "wait4 failed: {}", std::io::Error::last_os_error());
    if done == 0 {
        return Ok(None);
    }
    let time = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    Ok(Some((status, time(usage.ru_utime) + time(usage.ru_stime))))
}

/// Runs commands side by side until all exit, polling each one's peak resident memory
/// (VmHWM) from /proc. Returns the wall time, each one's usage and each one's output.
fn run_measured(cmds: &mut [Command]) -> anyhow::Result<(Duration, Vec<Usage>, Vec<String>)> {
    use std::io::Read;
    let start = Instant::now();
    let mut children = Vec::new();
    for cmd in cmds.iter_mut() {
        children.push(cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?);
    }
    let mut usages: Vec<Usage> = children
        .iter()
        .map(|_| Usage {
            peak_kib: 0,
            cpu: Duration::ZERO,
        })
        .collect();
    let mut statuses: Vec<Option<i32>> = vec![None; children.len()];
    while statuses.iter().any(Option::is_none) {
        for (i, child) in children.iter_mut().enumerate() {
            if statuses[i].is_some() {
                continue;
            }
            if let Ok(status) = std::fs::read_to_string(format!("/proc/{}/status", child.id()))
                && let Some(line) = status.lines().find(|l| l.starts_with("VmHWM:"))
            {
                let kib = line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).unwrap_or(0);
                usages[i].peak_kib = usages[i].peak_kib.max(kib);
            }
            if let Some((status, cpu)) = reap(child.id())? {
                statuses[i] = Some(status);
                usages[i].cpu = cpu;
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let took = start.elapsed();
    let mut outputs = Vec::new();
    for (child, status) in children.iter_mut().zip(statuses) {
        let (mut out, mut err) = (String::new(), String::new());
        child.stdout.take().expect("piped").read_to_string(&mut out)?;
        child.stderr.take().expect("piped").read_to_string(&mut err)?;
        anyhow::ensure!(status == Some(0), "a measured command failed: {err}");
        outputs.push(out.trim().to_owned());
    }
    Ok((took, usages, outputs))
}

fn post(i: usize, date: &str) -> String {
    format!(
        "---\ntitle: \"Benchmark post {i}: volunteers restore another stretch of river\"\ndate: {date}\nauthor: Bench Author\n\
         tags: [news, wildlife]\nsummary: \"A summary of post {i}, long enough to look like a real lead paragraph in a digest email.\"\n\
         image: https://images.example.org/bench/{i}.jpg\nimage_alt: \"Photo {i}\"\n---\n{}\n",
        "A paragraph of text for the post. ".repeat(40)
    )
}

/// A fresh PostgreSQL database on the server `url` names.
fn fresh_postgres(url: &str) -> anyhow::Result<String> {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .subsec_nanos();
    let name = format!("herald_bench_{}_{nanos}", std::process::id());
    let mut parsed = url::Url::parse(url)?;
    let status = Command::new("psql")
        .arg(url)
        .args(["-qc", &format!("create database {name}")])
        .status()?;
    anyhow::ensure!(status.success(), "cannot create a benchmark database on {url}");
    parsed.set_path(&name);
    Ok(parsed.to_string())
}

fn deliver(
    herald: &str,
    subscribers: usize,
    sink_port: u16,
    database: Option<&str>,
    instances: usize,
) -> anyhow::Result<(f64, u64)> {
    let dir = tempfile::tempdir_in(std::env::var("HERALD_BENCH_DIR").unwrap_or_else(|_| "/tmp".into()))?;
    let database_url = match database {
        Some(url) => fresh_postgres(url)?,
        None => "sqlite://herald.db".to_owned(),
    };
    let posts = dir.path().join("posts");
    std::fs::create_dir_all(&posts)?;
    let config = dir.path().join("config.toml");
    std::fs::write(
        &config,
        format!(
            "[site]\ntitle = \"Benchmark Trust\"\nbase_url = \"https://news.example.org/\"\n[content]\nposts_dir = \"posts\"\n\
             [database]\nurl = \"{database_url}\"\n\
             [mail]\ntransport = \"smtp\"\nfrom = \"News <news@example.org>\"\n\
             [mail.smtp]\nhost = \"127.0.0.1\"\nport = {sink_port}\npool_size = {SESSIONS}\n\
             [digest]\nconcurrency = {SESSIONS}\nbatch_size = 500\n"
        ),
    )?;
    let run = |args: &[&str]| {
        Command::new(herald)
            .arg("--config")
            .arg(&config)
            .args(args)
            .env("HERALD_LOG", "warn")
            .output()
    };
    std::fs::write(posts.join("archive.md"), post(0, "2026-01-01"))?;
    run(&["sync"])?;
    for i in 1..=5 {
        std::fs::write(posts.join(format!("post-{i}.md")), post(i, &format!("2026-09-1{i}")))?;
    }
    run(&["sync"])?;
    let csv = dir.path().join("list.csv");
    let mut text = String::from("email,name,frequency\n");
    for i in 0..subscribers {
        text.push_str(&format!("reader{i}@example{}.org,Reader {i},weekly\n", i % 50));
    }
    std::fs::write(&csv, text)?;
    let import = run(&["subscribers", "import", csv.to_str().unwrap(), "--confirmed"])?;
    anyhow::ensure!(import.status.success(), "import failed");
    let mut sends: Vec<Command> = (0..instances)
        .map(|_| {
            let mut cmd = Command::new(herald);
            cmd.arg("--config")
                .arg(&config)
                .args(["send", "--frequency", "weekly"])
                .env("HERALD_LOG", "warn");
            cmd
        })
        .collect();
    let (took, usages, outs) = run_measured(&mut sends)?;
    let rate = subscribers as f64 / took.as_secs_f64();
    let backend = if database.is_some() { "postgres" } else { "sqlite" };
    let cpu: Duration = usages.iter().map(|u| u.cpu).sum();
    println!(
        "{herald}\n  send x{instances} ({backend}), {subscribers:>6} subscribers: {:>6.1} s  {rate:>6.0} msg/s  \
         CPU {:.0} us/msg  peak RSS {} MiB   ({})",
        took.as_secs_f64(),
        cpu.as_secs_f64() * 1e6 / subscribers as f64,
        usages
            .iter()
            .map(|u| format!("{:.1}", u.peak_kib as f64 / 1024.0))
            .collect::<Vec<_>>()
            .join(" / "),
        outs.iter()
            .map(|o| o.lines().last().unwrap_or("").to_owned())
            .collect::<Vec<_>>()
            .join("; ")
    );
    // Size of one message as the sink received it, for the ceiling run.
    std::fs::write(
        &config,
        std::fs::read_to_string(&config)?.replace("transport = \"smtp\"", "transport = \"file\""),
    )?;
    run(&["preview", "--frequency", "weekly", "--to", "size@example.org"])?;
    let size = std::fs::read_dir(dir.path().join("outbox"))?
        .filter_map(|e| e.ok())
        .filter_map(|e| e.metadata().ok())
        .map(|m| m.len())
        .max()
        .unwrap_or(8192);
    Ok((rate, size))
}

/// smtp-source's rate and CPU per message (microseconds) for the same messages.
fn ceiling(messages: usize, size: u64, port: u16) -> anyhow::Result<(f64, f64)> {
    let mut source = Command::new("smtp-source");
    source
        .args([
            "-d",
            "-s",
            &SESSIONS.to_string(),
            "-m",
            &messages.to_string(),
            "-l",
            &size.to_string(),
        ])
        .args([
            "-f",
            "news@example.org",
            "-t",
            "reader@example.net",
            &format!("127.0.0.1:{port}"),
        ]);
    let (took, usages, _) = run_measured(std::slice::from_mut(&mut source))?;
    Ok((
        messages as f64 / took.as_secs_f64(),
        usages[0].cpu.as_secs_f64() * 1e6 / messages as f64,
    ))
}

/// With `HERALD_BENCH_DATABASE_URL=postgres://...` it runs on PostgreSQL: 100,000
/// subscribers with one instance and with three; otherwise on SQLite with 10,000 and 100,000.
/// With `HERALD_BENCH_BEFORE=/path/to/an/older/herald`, each run is made with that binary
/// first and then with this one, so the two are compared in the same run (several paths,
/// separated by `:`, take turns in that order).
/// `HERALD_BENCH_ONLY=100000x1` keeps one of the runs.
fn main() -> anyhow::Result<()> {
    let port = free_port();
    let _sink = start_sink(port)?;
    let database = std::env::var("HERALD_BENCH_DATABASE_URL").ok();
    // Several, separated by `:`, take turns in that order (a script that sets
    // `HERALD_TRACKING__CLICKS=true` and execs a binary measures it with clicks on).
    let mut binaries: Vec<String> = std::env::var("HERALD_BENCH_BEFORE")
        .map(|v| v.split(':').filter(|b| !b.is_empty()).map(str::to_owned).collect())
        .unwrap_or_default();
    binaries.push(env!("CARGO_BIN_EXE_herald").to_owned());
    let mut runs: Vec<(usize, usize)> = match database {
        Some(_) => vec![(100_000, 1), (100_000, 3)],
        None => vec![(10_000, 1), (100_000, 1)],
    };
    // `HERALD_BENCH_ONLY=100000x1`: just that run (any count of subscribers and instances).
    if let Ok(only) = std::env::var("HERALD_BENCH_ONLY") {
        let (n, i) = only
            .split_once('x')
            .expect("HERALD_BENCH_ONLY is SUBSCRIBERSxINSTANCES");
        runs = vec![(n.parse()?, i.parse()?)];
    }
    // `HERALD_BENCH_REPEAT=3`: the binaries take turns that many times; medians are compared.
    let repeat: usize = std::env::var("HERALD_BENCH_REPEAT")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(1);
    for (subscribers, instances) in runs {
        let mut samples = vec![Vec::new(); binaries.len()];
        let mut size = 0;
        for _ in 0..repeat {
            for (herald, samples) in binaries.iter().zip(&mut samples) {
                let (rate, bytes) = deliver(herald, subscribers, port, database.as_deref(), instances)?;
                samples.push(rate);
                size = bytes;
            }
        }
        let rates: Vec<f64> = samples
            .iter_mut()
            .map(|s| {
                s.sort_by(f64::total_cmp);
                s[s.len() / 2]
            })
            .collect();
        if repeat > 1 {
            for (herald, rate) in binaries.iter().zip(&rates) {
                println!("median of {repeat}: {rate:>6.0} msg/s  {herald}");
            }
        }
        let (ceiling, cpu) = ceiling(subscribers, size, port)?;
        println!(
            "smtp-source ceiling, {subscribers:>6} messages of {size} bytes, {SESSIONS} sessions: {ceiling:>6.0} msg/s  \
             CPU {cpu:.0} us/msg  -> herald at {} of it",
            rates
                .iter()
                .map(|r| format!("{:.0} %", 100.0 * r / ceiling))
                .collect::<Vec<_>>()
                .join(" / ")
        );
    }
    Ok(())
}
