//! Live progress of a run on stderr, so a long run is never silent and a
//! failing one shows it early: pulls done of planned, throughput, open
//! connections, fds against the limit, errors by class and the watched
//! process closest to its fd limit.
//!
//! On a terminal it is an indicatif bar redrawn four times a second; when
//! stderr is not a terminal (CI logs, `| tee`) it is one plain line every
//! five seconds; with `--quiet` it is nothing. It runs on its own thread and
//! only reads atomics, so it costs the fleet nothing and still ticks when the
//! runtime is saturated. The harness's fds are the recorder's per-second
//! count (`Gauges::fds`, see [`crate::metrics::fds`]), not counted again here.

use crate::human;
use crate::metrics::watch::Latest;
use crate::metrics::Gauges;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// Redraw interval of the bar.
const BAR_TICK: Duration = Duration::from_millis(250);
/// Interval of the plain lines.
const LINE_EVERY: Duration = Duration::from_secs(5);
/// Error classes named in the display (the rest are summed as "+N more").
const TOP_CLASSES: usize = 3;

/// How progress is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Quiet,
    /// An indicatif bar (stderr is a terminal).
    Bar,
    /// A plain line every `every`.
    Lines {
        every: Duration,
    },
}

impl Mode {
    /// Bar on a terminal, lines otherwise, nothing when quiet.
    pub fn detect(quiet: bool) -> Mode {
        if quiet {
            Mode::Quiet
        } else if std::io::stderr().is_terminal() {
            Mode::Bar
        } else {
            Mode::Lines { every: LINE_EVERY }
        }
    }
}

/// What the display needs besides the gauges.
#[derive(Clone)]
pub struct Options {
    /// Planned pulls (0 when unknown: no bar, a counter only).
    pub total_pulls: u64,
    /// The harness's soft nofile limit.
    pub fd_limit: u64,
    pub mode: Mode,
    /// Watched processes' newest readings ([`crate::metrics::watch::WatchHandle::latest`]).
    pub watched: Option<Latest>,
}

/// The running display; [`ProgressHandle::finish`] stops and clears it.
pub struct ProgressHandle {
    stop: Option<mpsc::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl ProgressHandle {
    /// Stops the display (clearing the bar) and waits for its thread.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        drop(self.stop.take());
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for ProgressHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// Starts the display: a bar on a terminal, lines otherwise, nothing when `quiet`.
pub fn start(gauges: Arc<Gauges>, total_pulls: u64, fd_limit: u64, quiet: bool) -> ProgressHandle {
    start_with(
        gauges,
        Options {
            total_pulls,
            fd_limit,
            mode: Mode::detect(quiet),
            watched: None,
        },
    )
}

/// [`start`] with every option.
pub fn start_with(gauges: Arc<Gauges>, opts: Options) -> ProgressHandle {
    if opts.mode == Mode::Quiet {
        return ProgressHandle {
            stop: None,
            thread: None,
        };
    }
    let (stop, stopped) = mpsc::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("pullstorm-progress".into())
        .spawn(move || match opts.mode {
            Mode::Bar => bar_loop(&gauges, &opts, &stopped),
            Mode::Lines { every } => line_loop(&gauges, &opts, &stopped, every),
            Mode::Quiet => {}
        })
        .ok();
    ProgressHandle {
        stop: Some(stop),
        thread,
    }
}

/// One reading of everything shown.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Snapshot {
    pub elapsed: Duration,
    pub total_pulls: u64,
    pub done: u64,
    pub failed: u64,
    pub active: i64,
    pub bytes_per_sec: f64,
    pub connections: i64,
    pub fds: u64,
    pub fd_limit: u64,
    pub errors: u64,
    /// Classes by count, highest first.
    pub by_class: Vec<(String, u64)>,
    /// The watched process nearest its fd limit: (name, fds, limit).
    pub tightest: Option<(String, u64, Option<u64>)>,
    /// Watched processes seen exiting.
    pub gone: Vec<String>,
}

impl Snapshot {
    /// Reads the gauges; `fds` is passed in (the harness's fd count, from
    /// [`harness_fds`]).
    fn read(
        g: &Gauges,
        opts: &Options,
        elapsed: Duration,
        bytes_per_sec: f64,
        fds: u64,
    ) -> Snapshot {
        let mut by_class: Vec<(String, u64)> = g
            .errors_by_class
            .lock()
            .map(|m| m.iter().map(|(c, n)| (c.key(), *n)).collect())
            .unwrap_or_default();
        by_class.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
        let (mut tightest, mut gone) = (None, Vec::new());
        if let Some(latest) = opts.watched.as_ref().and_then(|l| l.lock().ok()) {
            let ratio = |fds: u64, limit: Option<u64>| match limit {
                Some(l) if l > 0 => fds as f64 / l as f64,
                _ => 0.0,
            };
            tightest = latest
                .iter()
                .filter(|t| !t.gone && t.name != "harness")
                .filter_map(|t| Some((t.name.clone(), t.fds?, t.fd_limit)))
                .max_by(|a, b| {
                    ratio(a.1, a.2)
                        .total_cmp(&ratio(b.1, b.2))
                        .then(a.1.cmp(&b.1))
                });
            gone = latest
                .iter()
                .filter(|t| t.gone)
                .map(|t| t.name.clone())
                .collect();
        }
        Snapshot {
            elapsed,
            total_pulls: opts.total_pulls,
            done: g.pulls_done.load(Ordering::Relaxed),
            failed: g.pulls_failed.load(Ordering::Relaxed),
            active: g.active_pulls.load(Ordering::Relaxed),
            bytes_per_sec,
            connections: g.connections.current(),
            fds,
            fd_limit: opts.fd_limit,
            errors: g.errors.load(Ordering::Relaxed),
            by_class,
            tightest,
            gone,
        }
    }

    /// Throughput, connections, fds, errors and watched processes: the bar's second line.
    pub fn details(&self) -> String {
        let mut s = format!(
            "{}  active {}  conns {}  fds {}/{}",
            human::rate(self.bytes_per_sec),
            self.active,
            self.connections,
            self.fds,
            self.fd_limit
        );
        if self.failed > 0 {
            s.push_str(&format!("  failed {}", self.failed));
        }
        if self.errors > 0 {
            let top: Vec<String> = self
                .by_class
                .iter()
                .take(TOP_CLASSES)
                .map(|(c, n)| format!("{c} {n}"))
                .collect();
            s.push_str(&format!("  errors {} ({}", self.errors, top.join(", ")));
            if self.by_class.len() > TOP_CLASSES {
                s.push_str(&format!(", +{} more", self.by_class.len() - TOP_CLASSES));
            }
            s.push(')');
        }
        if let Some((name, fds, limit)) = &self.tightest {
            match limit {
                Some(l) => s.push_str(&format!("  {name} fds {fds}/{l}")),
                None => s.push_str(&format!("  {name} fds {fds}")),
            }
        }
        if !self.gone.is_empty() {
            s.push_str(&format!("  EXITED: {}", self.gone.join(", ")));
        }
        // Class and process names can come from outside (a status code, a command
        // line): a control character in them is shown, not obeyed by the terminal.
        crate::terminal::escape(&s).into_owned()
    }

    /// The plain log line.
    pub fn line(&self) -> String {
        let total = if self.total_pulls > 0 {
            format!("/{}", self.total_pulls)
        } else {
            String::new()
        };
        format!(
            "  {:>6}  pulls {}{total} done  {}",
            human::secs_short(self.elapsed.as_secs_f64(), 0),
            self.done,
            self.details()
        )
    }
}

/// Bytes per second over a sliding window of readings.
struct Rate {
    window: Duration,
    readings: std::collections::VecDeque<(Instant, u64)>,
}

impl Rate {
    fn new(window: Duration) -> Self {
        Rate {
            window,
            readings: Default::default(),
        }
    }

    fn push(&mut self, at: Instant, total: u64) -> f64 {
        self.readings.push_back((at, total));
        while self.readings.len() > 2 && at.duration_since(self.readings[0].0) > self.window {
            self.readings.pop_front();
        }
        let (t0, b0) = self.readings[0];
        let secs = at.duration_since(t0).as_secs_f64();
        if secs <= 0.0 {
            0.0
        } else {
            total.saturating_sub(b0) as f64 / secs
        }
    }
}

fn bar_loop(g: &Gauges, opts: &Options, stopped: &mpsc::Receiver<()>) {
    let started = Instant::now();
    let bar = if opts.total_pulls > 0 {
        ProgressBar::with_draw_target(Some(opts.total_pulls), ProgressDrawTarget::stderr())
    } else {
        ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr())
    };
    let template = if opts.total_pulls > 0 {
        "{spinner} [{elapsed_precise}] {bar:32.cyan/blue} {pos}/{len} pulls ({percent}%)\n  {msg}"
    } else {
        "{spinner} [{elapsed_precise}] {pos} pulls\n  {msg}"
    };
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    let mut rate = Rate::new(Duration::from_secs(2));
    loop {
        let now = Instant::now();
        let bps = rate.push(now, g.bytes.load(Ordering::Relaxed));
        let snap = Snapshot::read(g, opts, started.elapsed(), bps, harness_fds(g));
        bar.set_position(snap.done + snap.failed);
        bar.set_message(snap.details());
        bar.tick();
        if stop_requested(stopped, BAR_TICK) {
            break;
        }
    }
    bar.finish_and_clear();
}

fn line_loop(g: &Gauges, opts: &Options, stopped: &mpsc::Receiver<()>, every: Duration) {
    let started = Instant::now();
    let mut rate = Rate::new(every);
    rate.push(started, g.bytes.load(Ordering::Relaxed));
    while !stop_requested(stopped, every) {
        let bps = rate.push(Instant::now(), g.bytes.load(Ordering::Relaxed));
        let snap = Snapshot::read(g, opts, started.elapsed(), bps, harness_fds(g));
        eprintln!("{}", snap.line());
    }
}

/// The harness's open fds as the recorder last counted them (0 before its first second).
fn harness_fds(g: &Gauges) -> u64 {
    g.fds.get().unwrap_or(0)
}

/// Waits up to `d`; true once the handle was finished or dropped.
fn stop_requested(stopped: &mpsc::Receiver<()>, d: Duration) -> bool {
    !matches!(
        stopped.recv_timeout(d),
        Err(mpsc::RecvTimeoutError::Timeout)
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::metrics::watch::WatchedStatus;
    use crate::net::{Fault, FaultClass, Phase};

    fn fault(class: FaultClass) -> crate::metrics::Event {
        crate::metrics::Event::Fault {
            fault: Fault::new(class, Phase::Body, "x"),
            kind: crate::metrics::ExchangeKind::Blob,
            cluster: 0,
            at: tokio::time::Instant::now(),
        }
    }

    #[test]
    fn snapshot_shows_counts_top_classes_and_tightest_watched() {
        let g = Gauges::default();
        for _ in 0..3 {
            g.tally(&fault(FaultClass::ConnectionReset));
        }
        g.tally(&fault(FaultClass::UnexpectedEof));
        g.tally(&fault(FaultClass::Http(503)));
        g.tally(&fault(FaultClass::ReadTimeout));
        g.tally(&crate::metrics::Event::PullDone {
            cluster: 0,
            ok: true,
            from_scheduled: Duration::ZERO,
            from_start: Duration::ZERO,
            bytes: 0,
            retry_cost: None,
            kubelet_retry: false,
        });
        let latest: Latest = Arc::new(std::sync::Mutex::new(vec![
            WatchedStatus {
                name: "harness".into(),
                fds: Some(900),
                fd_limit: Some(1000),
                gone: false,
            },
            WatchedStatus {
                name: "nginx[10]".into(),
                fds: Some(950),
                fd_limit: Some(1024),
                gone: false,
            },
            WatchedStatus {
                name: "docker-registry[11]".into(),
                fds: Some(100),
                fd_limit: Some(20000),
                gone: false,
            },
            WatchedStatus {
                name: "nginx[12]".into(),
                fds: None,
                fd_limit: Some(1024),
                gone: true,
            },
        ]));
        let opts = Options {
            total_pulls: 32,
            fd_limit: 20000,
            mode: Mode::Quiet,
            watched: Some(latest),
        };
        let s = Snapshot::read(
            &g,
            &opts,
            Duration::from_secs(12),
            2.0 * 1024.0 * 1024.0 * 1024.0,
            123,
        );
        assert_eq!((s.done, s.failed, s.errors), (1, 0, 6));
        assert_eq!(s.by_class[0], ("connection_reset".to_string(), 3));
        let line = s.line();
        assert!(line.contains("pulls 1/32 done"), "{line}");
        assert!(line.contains("2.00 GiB/s"), "{line}");
        assert!(line.contains("errors 6 (connection_reset 3, "), "{line}");
        assert!(line.contains("+1 more"), "{line}");
        assert!(line.contains("nginx[10] fds 950/1024"), "{line}");
        assert!(line.contains("EXITED: nginx[12]"), "{line}");
        assert!(line.contains("fds 123/20000"), "{line}");
    }

    #[test]
    fn names_from_outside_are_escaped() {
        let s = Snapshot {
            tightest: Some(("evil\u{1b}[2J\r\u{7}".into(), 10, Some(20))),
            gone: vec!["gone\u{9b}1A".into()],
            ..Snapshot::default()
        };
        let line = s.line();
        assert!(!line.chars().any(crate::terminal::is_control), "{line:?}");
        assert!(line.contains("evil\\x1b[2J\\r\\x07 fds 10/20"), "{line}");
        assert!(line.contains("EXITED: gone\\u{9b}1A"), "{line}");
    }

    #[test]
    fn rate_over_a_window() {
        let mut r = Rate::new(Duration::from_secs(2));
        let t0 = Instant::now();
        assert_eq!(r.push(t0, 0), 0.0);
        assert_eq!(r.push(t0 + Duration::from_secs(1), 100), 100.0);
        assert_eq!(r.push(t0 + Duration::from_secs(2), 300), 150.0);
        // The first reading falls out of the window.
        assert_eq!(r.push(t0 + Duration::from_secs(4), 700), 200.0);
    }

    #[test]
    fn quiet_starts_nothing_and_lines_stop_promptly() {
        let g = Arc::new(Gauges::default());
        let quiet = start(g.clone(), 1, 1, true);
        assert!(
            quiet.thread.is_none() && quiet.stop.is_none(),
            "quiet mode started a display thread"
        );
        quiet.finish();
        let began = Instant::now();
        let h = start_with(
            g,
            Options {
                total_pulls: 1,
                fd_limit: 1,
                mode: Mode::Lines {
                    every: Duration::from_secs(60),
                },
                watched: None,
            },
        );
        h.finish();
        assert!(began.elapsed() < Duration::from_secs(5));
    }
}
