//! The command's output: its own lines and every node's, printed in order by one thread.

use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::sync::mpsc;

/// Lines of output waiting to be printed; the nodes wait (their pipes fill) beyond this.
const OUTPUT_QUEUE_LINES: usize = 4096;

/// Lines for standard output or standard error, printed in order by one thread.
#[derive(Clone)]
pub(super) struct Console {
    lines: mpsc::Sender<(Target, String)>,
}

#[derive(Debug, Clone, Copy)]
pub(super) enum Target {
    Out,
    Err,
}

impl Console {
    pub(super) fn start() -> (Console, std::thread::JoinHandle<()>) {
        use std::io::Write;
        let (tx, mut rx) = mpsc::channel::<(Target, String)>(OUTPUT_QUEUE_LINES);
        let printer = std::thread::spawn(move || {
            // Write errors (a closed pipe) are ignored: the lines keep being drained so
            // that the nodes never block on their output.
            while let Some((target, line)) = rx.blocking_recv() {
                let _ = match target {
                    Target::Out => writeln!(std::io::stdout().lock(), "{line}"),
                    Target::Err => writeln!(std::io::stderr().lock(), "{line}"),
                };
            }
        });
        (Console { lines: tx }, printer)
    }

    /// A line of this command's own, to standard output.
    pub(super) async fn say(&self, line: impl Into<String>) {
        let _ = self.lines.send((Target::Out, line.into())).await;
    }

    /// A problem, to standard error.
    pub(super) async fn warn(&self, line: impl Into<String>) {
        let _ = self
            .lines
            .send((Target::Err, format!("stele dev-cluster: {}", line.into())))
            .await;
    }
}

/// Copies a node's output, line by line, with its name in front.
pub(super) async fn forward(
    output: impl AsyncRead + Unpin,
    prefix: String,
    target: Target,
    console: Console,
) {
    let mut lines = BufReader::new(output).split(b'\n');
    while let Ok(Some(line)) = lines.next_segment().await {
        let text = String::from_utf8_lossy(&line);
        let text = text.strip_suffix('\r').unwrap_or(&text);
        if console
            .lines
            .send((target, format!("{prefix} {text}")))
            .await
            .is_err()
        {
            return;
        }
    }
}
