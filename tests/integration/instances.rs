//! Private instances of the lab's components for the fault, trace and seed tests.
//!
//! Each test starts the docker-registry, nginx, haproxy or docker-proxy it needs from the
//! lab's own templates (`lab/run-component.sh` with a private `LAB_STATE` and free ports,
//! the packages `scripts/lab.sh up` installs), on 127.0.0.1, seeds its image into its own
//! registry, and stops everything by pid when the guards are dropped. So a test can freeze,
//! kill or corrupt its registry or give its LB any fault knob, and the shared lab is never
//! touched (nor needed: a `scripts/lab.sh down` elsewhere cannot break a test). Every wait
//! here is bounded, and waits for a condition (a port answering, a log line, a metric).

use crate::common::{self, wait_until};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A free TCP port on 127.0.0.1 (bound, then released for the daemon that will take it).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
    l.local_addr().unwrap().port()
}

/// `n` distinct free ports.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").unwrap())
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().unwrap().port())
        .collect()
}

/// The HTTP status of `GET path` on 127.0.0.1:port, or None when nothing answers (2 s bound).
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut head = [0u8; 32];
    let n = s.read(&mut head).ok()?;
    let line = String::from_utf8_lossy(&head[..n]).into_owned();
    line.split_whitespace().nth(1)?.parse().ok()
}

/// The body of `GET path` on 127.0.0.1:port (HTTP/1.0: the server closes after it), or None
/// when nothing answers (2 s bound).
pub fn http_body(port: u16, path: &str) -> Option<String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (_, body) = response.split_once("\r\n\r\n")?;
    Some(body.to_string())
}

/// Pushes a deterministic image with `pullstorm seed`; returns the manifest digest.
pub fn seed(registry: &str, image: &str, layers: &str, seed: u64) -> String {
    let out = common::bin()
        .args(["seed", "--registry", registry, "--image", image])
        .args(["--layers", layers, "--seed", &seed.to_string()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "seed {image} into {registry}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// Digests of the image `pullstorm seed` pushes for `seed` and `layers` (sizes in bytes).
pub fn synthetic(seed: u64, layers: &[u64]) -> pullstorm::synth::SyntheticImage {
    pullstorm::synth::SyntheticImage::build(seed, layers)
}

fn signal(pid: u32, sig: rustix::process::Signal) {
    if let Some(p) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(p, sig);
    }
}

/// Processes (other than `except`) whose working folder is `dir` or below: a daemon's
/// children (nginx workers) are found this way, since the folder is private to the test.
fn processes_in(dir: &Path, except: u32) -> Vec<u32> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Ok(pid) = e.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if pid == except || pid == std::process::id() {
            continue;
        }
        if let Ok(cwd) = std::fs::read_link(e.path().join("cwd")) {
            if cwd.starts_with(dir) {
                found.push(pid);
            }
        }
    }
    found
}

/// A daemon this test started; stopped (and reaped) by pid on drop.
pub struct Daemon {
    child: Child,
    /// The daemon's private folder (its working folder, configs, logs).
    pub dir: PathBuf,
    /// stdout and stderr of the daemon.
    pub log: PathBuf,
}

impl Daemon {
    /// Spawns `cmd` with its output in `<dir>/<name>.out`, in a session of its own.
    pub fn spawn(name: &str, mut cmd: Command, dir: &Path) -> Daemon {
        std::fs::create_dir_all(dir).unwrap();
        let log = dir.join(format!("{name}.out"));
        let out = std::fs::File::create(&log).unwrap();
        let child = cmd
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Daemon {
            child,
            dir: dir.to_path_buf(),
            log,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGSTOP: the process stops reading and writing; its sockets stay open.
    pub fn freeze(&self) {
        signal(self.pid(), rustix::process::Signal::STOP);
    }

    pub fn thaw(&self) {
        signal(self.pid(), rustix::process::Signal::CONT);
    }

    /// SIGKILL now, and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, waited for up to 10 s, then SIGKILL.
    pub fn stop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.thaw();
            signal(self.pid(), rustix::process::Signal::TERM);
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if !matches!(self.child.try_wait(), Ok(None)) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        // Children that outlived it (an nginx worker after a SIGKILLed master).
        for pid in processes_in(&self.dir, self.pid()) {
            signal(pid, rustix::process::Signal::CONT);
            signal(pid, rustix::process::Signal::KILL);
        }
    }

    /// The exit status if it has exited (it is reaped then).
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `lab/run-component.sh COMPONENT` with a private state folder.
pub fn component(component: &str, state: &Path, env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new("bash");
    cmd.arg(repo().join("lab/run-component.sh"))
        .arg(component)
        .env("LAB_STATE", state)
        .env("LAB_CONFIG", repo().join("lab"))
        .env("LAB_BIND", "127.0.0.1");
    // Knobs of the caller's environment must not leak into a test's instance.
    for (k, _) in std::env::vars() {
        if k.starts_with("LAB_") || k.starts_with("REGISTRY_") {
            cmd.env_remove(k);
        }
    }
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd
}

/// A docker-registry of the test's own (filesystem storage under its folder).
pub struct Registry {
    pub daemon: Daemon,
    pub port: u16,
    debug_port: u16,
    nofile: Option<u32>,
}

impl Registry {
    pub fn start(dir: &Path, nofile: Option<u32>) -> Registry {
        let p = free_ports(2);
        Self::start_on(dir, p[0], p[1], nofile)
    }

    fn start_on(dir: &Path, port: u16, debug_port: u16, nofile: Option<u32>) -> Registry {
        let mut env = vec![
            ("LAB_PORT_REGISTRY", port.to_string()),
            ("LAB_PORT_REGISTRY_DEBUG", debug_port.to_string()),
        ];
        if let Some(n) = nofile {
            env.push(("LAB_NOFILE", n.to_string()));
        }
        let daemon = Daemon::spawn(
            &format!("registry-{port}"),
            component("registry", dir, &env),
            dir,
        );
        wait_until("the registry", Duration::from_secs(20), || {
            http_status(port, "/v2/") == Some(200)
        });
        Registry {
            daemon,
            port,
            debug_port,
            nofile,
        }
    }

    /// A registry holding `image` (`pullstorm seed` with these layers and seed).
    pub fn with_image(dir: &Path, image: &str, layers: &str, seed_no: u64) -> Registry {
        let r = Registry::start(dir, None);
        seed(&r.url(), image, layers, seed_no);
        r
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// `<root>/docker/registry/v2` of its filesystem storage.
    pub fn storage(&self) -> PathBuf {
        self.daemon.dir.join("data/registry/docker/registry/v2")
    }

    /// Blob requests it is serving right now: `registry_http_in_flight_requests{handler="blob"}`
    /// of its Prometheus metrics (debug port); 0 when they cannot be read.
    pub fn blob_requests_in_flight(&self) -> u64 {
        let metrics = http_body(self.debug_port, "/metrics").unwrap_or_default();
        metrics
            .lines()
            .find_map(|l| l.strip_prefix("registry_http_in_flight_requests{handler=\"blob\"} "))
            .and_then(|n| n.trim().parse::<f64>().ok())
            .map_or(0, |n| n as u64)
    }

    /// Waits until `bodies` blob bodies are flowing out of the registry: that many blob
    /// requests in flight, then 1 MiB more sent per body. Freezing or killing the registry
    /// after this cuts each of those bodies part-way through, never before its first byte.
    /// (The byte count is the registry's `write(2)` total: the kernel's socket buffers take
    /// megabytes at once, so only bytes sent after every request is in flight show that the
    /// clients are reading.)
    pub fn wait_mid_blob(&self, what: &str, bodies: u64) {
        wait_until(
            &format!("{what}: {bodies} blob request(s) in flight at the registry"),
            Duration::from_secs(30),
            || self.blob_requests_in_flight() >= bodies,
        );
        let sent = common::bytes_written(self.daemon.pid());
        wait_until(
            &format!("{what}: {bodies} MiB more of blob bodies sent"),
            Duration::from_secs(30),
            || common::bytes_written(self.daemon.pid()) >= sent + (bodies << 20),
        );
    }

    /// Stops it and starts a fresh process on the same storage and ports (an empty cache).
    pub fn restart(self) -> Registry {
        let (dir, port, debug, nofile) = (
            self.daemon.dir.clone(),
            self.port,
            self.debug_port,
            self.nofile,
        );
        drop(self);
        Self::start_on(&dir, port, debug, nofile)
    }
}

/// What an nginx of the test's own is made of, on top of the lab's Harbor-like nginx.conf.
#[derive(Default)]
pub struct NginxConf {
    /// Sites of `lab/nginx/sites/` (default: `default`).
    pub sites: Option<&'static str>,
    /// Server-level lines of the `default` site (`conf/nginx/override.d/`).
    pub server: String,
    /// http-level lines (`conf/nginx/http.d/`).
    pub http: String,
    /// main-context lines (`conf/nginx/main.d/`).
    pub main: String,
    pub worker_connections: Option<u32>,
    /// Start it under `prlimit --nofile=N:N`.
    pub nofile: Option<u32>,
    /// More `LAB_*` variables (ports and knobs of the `faults` site).
    pub env: Vec<(&'static str, String)>,
}

/// An nginx of the test's own, rendered from the lab's templates, in front of `upstream`.
pub struct Nginx {
    pub daemon: Daemon,
    /// The `default` site's port.
    pub port: u16,
}

impl Nginx {
    pub fn start(dir: &Path, upstream_port: u16, conf: NginxConf) -> Nginx {
        let p = free_ports(2);
        let (port, status) = (p[0], p[1]);
        let nginx = dir.join("conf/nginx");
        for (sub, text) in [
            ("override.d", &conf.server),
            ("http.d", &conf.http),
            ("main.d", &conf.main),
        ] {
            std::fs::create_dir_all(nginx.join(sub)).unwrap();
            if !text.is_empty() {
                std::fs::write(nginx.join(sub).join("test.conf"), text).unwrap();
            }
        }
        let mut env = vec![
            (
                "LAB_NGINX_SITES",
                conf.sites.unwrap_or("default").to_string(),
            ),
            ("LAB_PORT_NGINX", port.to_string()),
            ("LAB_PORT_NGINX_STATUS", status.to_string()),
            ("LAB_PORT_REGISTRY", upstream_port.to_string()),
        ];
        if let Some(n) = conf.worker_connections {
            env.push(("LAB_NGINX_WORKER_CONNECTIONS", n.to_string()));
        }
        if let Some(n) = conf.nofile {
            env.push(("LAB_NOFILE", n.to_string()));
        }
        env.extend(conf.env.iter().cloned());
        let daemon = Daemon::spawn(&format!("nginx-{port}"), component("nginx", dir, &env), dir);
        wait_until("nginx", Duration::from_secs(20), || {
            http_status(status, "/") == Some(200)
        });
        Nginx { daemon, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn access_log(&self) -> String {
        std::fs::read_to_string(self.daemon.dir.join("logs/nginx-access.log")).unwrap_or_default()
    }

    pub fn error_log(&self) -> String {
        std::fs::read_to_string(self.daemon.dir.join("logs/nginx-error.log")).unwrap_or_default()
    }

    /// Access-log lines for blob GETs, parsed.
    pub fn blob_requests(&self) -> Vec<AccessLine> {
        self.access_log()
            .lines()
            .filter_map(AccessLine::parse)
            .filter(|l| l.path.contains("/blobs/"))
            .collect()
    }
}

/// One line of the lab's `pullstorm` log_format. (Fields no test reads still show in
/// assertion messages, through `Debug`.)
#[derive(Debug, Clone)]
#[allow(dead_code)]
pub struct AccessLine {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub accept: Option<String>,
    pub status: u16,
    pub bytes: u64,
    /// The port of the server block that answered.
    pub port: u16,
    /// nginx's serial number of the connection that carried it (`$connection`).
    pub conn: u64,
    /// Its number on that connection, from 1 (`$connection_requests`).
    pub conn_request: u64,
}

impl AccessLine {
    pub fn parse(line: &str) -> Option<AccessLine> {
        let req = field_between(line, " \"", "\" ")?;
        let (method, path) = req.split_once(' ')?;
        let quoted = |name: &str| {
            field_between(line, &format!("{name}=\""), "\"")
                .filter(|v| *v != "-")
                .map(str::to_string)
        };
        let plain = |name: &str| -> Option<String> {
            let start = line.find(&format!(" {name}="))? + name.len() + 2;
            Some(line[start..].split_whitespace().next()?.to_string())
        };
        Some(AccessLine {
            method: method.to_string(),
            path: path.to_string(),
            range: quoted("range"),
            accept: quoted("accept"),
            status: plain("status")?.parse().ok()?,
            bytes: plain("bytes")?.parse().ok()?,
            port: plain("server_port")?.parse().ok()?,
            conn: plain("conn")?.parse().ok()?,
            conn_request: plain("reqs")?.parse().ok()?,
        })
    }
}

fn field_between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let i = s.find(start)? + start.len();
    let j = s[i..].find(end)? + i;
    Some(&s[i..j])
}

/// haproxy of the test's own from the lab's template (`LAB_HAPROXY_*` knobs) in front of `upstream`.
pub struct Haproxy {
    pub daemon: Daemon,
    pub port: u16,
}

impl Haproxy {
    pub fn lab(dir: &Path, upstream_port: u16, env: &[(&'static str, String)]) -> Haproxy {
        let p = free_ports(2);
        let mut all = vec![
            ("LAB_PORT_HAPROXY", p[0].to_string()),
            ("LAB_PORT_HAPROXY_STATS", p[1].to_string()),
            ("LAB_PORT_REGISTRY", upstream_port.to_string()),
        ];
        all.extend(env.iter().cloned());
        let daemon = Daemon::spawn(
            &format!("haproxy-{}", p[0]),
            component("haproxy", dir, &all),
            dir,
        );
        wait_until("haproxy", Duration::from_secs(20), || {
            http_status(p[1], "/stats") == Some(200)
        });
        Haproxy { daemon, port: p[0] }
    }

    /// haproxy with a whole config of the caller's (`@@PORT@@` is replaced by its port).
    pub fn with_config(dir: &Path, config: &str) -> Haproxy {
        let port = free_port();
        std::fs::create_dir_all(dir).unwrap();
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, config.replace("@@PORT@@", &port.to_string())).unwrap();
        let mut cmd = Command::new("haproxy");
        cmd.arg("-db").arg("-f").arg(&file);
        let daemon = Daemon::spawn(&format!("haproxy-{port}"), cmd, dir);
        wait_until("haproxy", Duration::from_secs(20), || {
            http_status(port, "/v2/").is_some()
        });
        Haproxy { daemon, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Docker's userland port proxy (docker-proxy), as the lab's `herd-proxy` runs it, under
/// `prlimit --nofile=N:N`, forwarding 127.0.0.1:port to 127.0.0.1:to_port.
pub struct DockerProxy {
    pub daemon: Daemon,
    pub port: u16,
}

impl DockerProxy {
    pub fn start(dir: &Path, to_port: u16, nofile: u32) -> DockerProxy {
        let port = free_port();
        let env = [
            ("LAB_PORT_HERD_PROXY", port.to_string()),
            ("LAB_PORT_NGINX", to_port.to_string()),
            ("LAB_HERD_NOFILE", nofile.to_string()),
        ];
        let daemon = Daemon::spawn(
            &format!("docker-proxy-{port}"),
            component("herd-proxy", dir, &env),
            dir,
        );
        wait_until("docker-proxy", Duration::from_secs(20), || {
            http_status(port, "/v2/").is_some()
        });
        DockerProxy { daemon, port }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// A containerd of the test's own (root, state and sockets under its folder).
pub struct Containerd {
    /// Held for its `Drop`, which stops containerd.
    _daemon: Daemon,
    socket: String,
}

impl Containerd {
    pub fn start(dir: &Path) -> Containerd {
        let root = dir.join("containerd");
        std::fs::create_dir_all(&root).unwrap();
        let socket = root.join("c.sock").display().to_string();
        let config = root.join("config.toml");
        std::fs::write(
            &config,
            format!(
                "version = 2\nroot = \"{r}/root\"\nstate = \"{r}/state\"\n\
                 disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
                 [grpc]\n  address = \"{socket}\"\n[ttrpc]\n  address = \"{r}/ttrpc.sock\"\n\
                 [debug]\n  address = \"\"\n[metrics]\n  address = \"\"\n",
                r = root.display()
            ),
        )
        .unwrap();
        let mut cmd = Command::new("containerd");
        cmd.arg("--config").arg(&config);
        let daemon = Daemon::spawn("containerd", cmd, &root);
        let c = Containerd {
            _daemon: daemon,
            socket,
        };
        wait_until("containerd", Duration::from_secs(20), || {
            c.ctr(&["version"]).status.success()
        });
        c
    }

    pub fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .args(["-a", &self.socket, "-n", "pullstorm-test"])
            .args(args)
            .output()
            .unwrap()
    }

    /// `ctr` in the background (for a fetch that a test cuts on the way).
    pub fn ctr_spawn(&self, args: &[&str]) -> Child {
        Command::new("ctr")
            .args(["-a", &self.socket, "-n", "pullstorm-test"])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

/// `pullstorm run` of `scenario` against `target`/`image` in the background; `<dir>/out` gets the result.
pub fn spawn_run(dir: &Path, scenario: &str, target: &str, image: &str, extra: &[&str]) -> Child {
    std::fs::create_dir_all(dir).unwrap();
    let file = dir.join("scenario.toml");
    std::fs::write(&file, scenario).unwrap();
    common::bin()
        .arg("run")
        .arg(&file)
        .args(["--target", target, "--image", image, "--quiet", "--out"])
        .arg(dir.join("out"))
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits for a `spawn_run` child (bounded: 120 s) and returns what it did.
pub fn finish_run(child: Child, dir: &Path) -> common::Run {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    let out = match rx.recv_timeout(Duration::from_secs(120)) {
        Ok(r) => r.unwrap(),
        Err(_) => {
            signal(pid, rustix::process::Signal::KILL);
            panic!("pullstorm run did not end within 120 s");
        }
    };
    common::Run {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        dir: dir.join("out"),
    }
}

/// `pullstorm run` to its end.
pub fn run(dir: &Path, scenario: &str, target: &str, image: &str, extra: &[&str]) -> common::Run {
    let child = spawn_run(dir, scenario, target, image, extra);
    finish_run(child, dir)
}

/// `errors.<class>` of a result.
pub fn errors(v: &serde_json::Value, class: &str) -> u64 {
    v["errors"][class].as_u64().unwrap_or(0)
}

/// The `error_details[]` entry of a class.
pub fn detail<'a>(v: &'a serde_json::Value, class: &str) -> &'a serde_json::Value {
    v["error_details"]
        .as_array()
        .and_then(|a| a.iter().find(|d| d["class"] == class))
        .unwrap_or(&serde_json::Value::Null)
}

/// The non-zero error counters, for assertion messages.
pub fn error_summary(v: &serde_json::Value) -> String {
    let mut parts: Vec<String> = v["errors"]
        .as_object()
        .map(|m| {
            m.iter()
                .filter(|(_, n)| n.as_u64().unwrap_or(0) > 0)
                .map(|(k, n)| format!("{k}={n}"))
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    format!(
        "errors [{}], retries {}, pulls {}, layers {}, bytes {}; details {}",
        parts.join(" "),
        v["retries"]["total"],
        v["pulls"],
        v["layers"],
        v["bytes"],
        v["error_details"]
    )
}

/// `pullstorm run FILE --out <dir>/out --quiet ARGS...` to its end (a scenario file as shipped).
pub fn run_file(dir: &Path, file: &Path, args: &[&str]) -> common::Run {
    std::fs::create_dir_all(dir).unwrap();
    let child = common::bin()
        .arg("run")
        .arg(file)
        .args(["--quiet", "--out"])
        .arg(dir.join("out"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish_run(child, dir)
}

/// The nofile hard limit of this process (what an unprivileged raise can reach).
pub fn nofile_hard_limit() -> u64 {
    rustix::process::getrlimit(rustix::process::Resource::Nofile)
        .maximum
        .unwrap_or(1 << 20)
}

/// The lab's seed-001 topology (the `faults` nginx site, docs/seeds.md seed 001) on ports of
/// its own, in front of `registry_port`: a buffering LB (`proxy_max_temp_file_size
/// temp_file`, Range not forwarded) -> a Harbor-like hop (`send_timeout send_timeout`) ->
/// the registry. A node slower than the registry makes the LB fill its temp file and stop
/// reading the hop until the node has drained it; when that takes longer than the hop's
/// `send_timeout`, the hop resets and the node's blob is cut.
pub struct TwoHopLb {
    pub nginx: Nginx,
    /// The front LB's port (what the nodes pull through).
    pub lb: u16,
    /// The Harbor-like hop's port (the LB bypassed).
    pub hop: u16,
}

impl TwoHopLb {
    /// `temp_file` None keeps the lab's default (`LAB_SEED001_TEMP_FILE`, 64m).
    pub fn start(
        dir: &Path,
        registry_port: u16,
        send_timeout: &str,
        temp_file: Option<&str>,
    ) -> TwoHopLb {
        let p = free_ports(4);
        let mut env = vec![
            ("LAB_PORT_NGINX_SEED001", p[0].to_string()),
            ("LAB_PORT_NGINX_SEED001_UPSTREAM", p[1].to_string()),
            ("LAB_PORT_NGINX_RESET", p[2].to_string()),
            ("LAB_PORT_NGINX_NORANGE", p[3].to_string()),
            ("LAB_SEED001_SEND_TIMEOUT", send_timeout.to_string()),
        ];
        if let Some(t) = temp_file {
            env.push(("LAB_SEED001_TEMP_FILE", t.to_string()));
        }
        let nginx = Nginx::start(
            dir,
            registry_port,
            NginxConf {
                sites: Some("faults"),
                env,
                ..Default::default()
            },
        );
        TwoHopLb {
            nginx,
            lb: p[0],
            hop: p[1],
        }
    }

    /// The front LB's URL.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.lb)
    }
}

/// A docker-registry on object storage, as Harbor on S3 runs it: the lab's `s3` component
/// (moto's S3 server, `lab/s3/storage.py`, logging every request it receives) and
/// `registry-s3` (the S3 driver, htpasswd Basic auth, storage redirects on: blob GETs and
/// HEADs answer 307 to a presigned URL of the storage) on free ports, with the lab's test
/// credentials (`pullstorm` / `pullstorm-lab`). Both stop when it is dropped.
pub struct S3Registry {
    /// Declared first: dropped (stopped) before the storage it writes to.
    pub registry: Daemon,
    pub storage: Daemon,
    pub port: u16,
    pub storage_port: u16,
}

/// The lab's test credentials (lab/gen-secrets.sh).
pub const LAB_USER: &str = "pullstorm";
pub const LAB_PASSWORD: &str = "pullstorm-lab";

impl S3Registry {
    pub fn start(dir: &Path) -> S3Registry {
        std::fs::create_dir_all(dir).unwrap();
        let secrets = Command::new("bash")
            .arg(repo().join("lab/gen-secrets.sh"))
            .env("LAB_STATE", dir)
            .env_remove("LAB_USERNAME")
            .env_remove("LAB_PASSWORD")
            .output()
            .expect("run lab/gen-secrets.sh");
        assert!(
            secrets.status.success(),
            "lab/gen-secrets.sh: {}",
            String::from_utf8_lossy(&secrets.stderr)
        );
        let p = free_ports(3);
        let (storage_port, port) = (p[0], p[1]);
        let env = [
            ("LAB_PORT_S3", storage_port.to_string()),
            ("LAB_PORT_REGISTRY_S3", port.to_string()),
            ("LAB_PORT_REGISTRY_S3_DEBUG", p[2].to_string()),
            (
                "LAB_S3_RECORD",
                dir.join("storage-requests.jsonl").display().to_string(),
            ),
        ];
        let storage = Daemon::spawn("s3", component("s3", dir, &env), dir);
        // The bucket answers once storage.py has made it.
        wait_until(
            "the S3 storage and its bucket",
            Duration::from_secs(30),
            || http_status(storage_port, "/pullstorm-lab") == Some(200),
        );
        let registry = Daemon::spawn("registry-s3", component("registry-s3", dir, &env), dir);
        wait_until(
            "registry-s3 (401: Basic auth on)",
            Duration::from_secs(20),
            || http_status(port, "/v2/") == Some(401),
        );
        S3Registry {
            registry,
            storage,
            port,
            storage_port,
        }
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The registry's log, for assertion messages.
    pub fn registry_log(&self) -> String {
        self.registry.output()
    }

    /// Every request the storage received, as its recorder wrote them (method, url,
    /// headers, body).
    pub fn storage_requests(&self) -> Vec<serde_json::Value> {
        std::fs::read_to_string(self.storage.dir.join("storage-requests.jsonl"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// Moves the blob `digest` to the GLACIER storage class in the bucket
    /// (`lab/s3/archive.py`): the registry still redirects its GETs, the storage refuses
    /// them with 403 `InvalidObjectState`.
    pub fn archive(&self, digest: &str) {
        let out = Command::new("python3")
            .arg(repo().join("lab/s3/archive.py"))
            .args([
                "--endpoint",
                &format!("http://127.0.0.1:{}", self.storage_port),
            ])
            .args(["--bucket", "pullstorm-lab", "--digest", digest])
            .output()
            .expect("run lab/s3/archive.py");
        assert!(
            out.status.success(),
            "archive {digest}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}
