//! The step runner: a generated shell script and the parser of its markers.
//!
//! A Job attempt is one container whose main process is `/bin/sh -c <script>`.
//! The script runs the steps in order and prints a start marker before each
//! and an end marker (with the exit code) after each:
//!
//! ```text
//! ::orcaops:<nonce>:start:<i>
//! ::orcaops:<nonce>:end:<i>:<rc>
//! ```
//!
//! Markers are printed on stdout *and* on stderr. Docker reads the two pipes
//! independently, so their relative order in the log (and their timestamps)
//! can disagree with the order of writes; within one stream the order is
//! exact. Each stream therefore carries its own markers, and output is
//! attributed to the step whose start marker last appeared on the same
//! stream. Times and exit codes come from the stdout markers.
//!
//! The nonce keeps ordinary output (a step that prints these logs, a test
//! that prints markers) from being mistaken for a marker. It is not a secret
//! from the steps themselves: they can read the runner's command line in
//! `/proc/1/cmdline`. The container's exit code stays authoritative.
//!
//! Outputs: before each step the runner exports `ORCAOPS_OUTPUT`, a file of its own
//! under [`OUTPUT_DIR`] (a tmpfs on Docker, an `emptyDir` on a pod, so it is
//! writable with a read-only root filesystem and as any user). After the step the
//! runner prints what the step wrote there, hex-encoded by `od`, on stdout
//! after the step and before its end marker:
//!
//! ```text
//! ::orcaops:<nonce>:output:<i>:<hex bytes, space-separated>
//! ::orcaops:<nonce>:outputs-too-large:<i>:<size>
//! ::orcaops:<nonce>:outputs-unreadable:<i>
//! ```
//!
//! Hex keeps a value that holds a newline or a marker from breaking the framing;
//! [`outputs`] reads the bytes back into `key=value` pairs within the bounds.
//!
//! Usage: after each step (before its end marker) the runner reads its container's
//! cgroup, with shell builtins only, and prints the CPU time used so far and the memory
//! high-water mark (either may be empty where the kernel does not offer it):
//!
//! ```text
//! ::orcaops:<nonce>:usage:<i>:<cpu microseconds>:<peak memory bytes>
//! ```
//!
//! cgroup v2 gives `cpu.stat` (`usage_usec`) and `memory.peak`; cgroup v1 gives
//! `cpuacct/cpuacct.usage` (nanoseconds) and `memory/memory.max_usage_in_bytes`. A
//! container sees its own cgroup at `/sys/fs/cgroup` in both, on Docker and on pods.
//!
//! On a cluster, artifacts are copied out of the *running* pod (a finished
//! pod's filesystem cannot be read), so there the runner can hold the
//! container open after the last step until the controller has collected
//! them; see [`RunnerOptions`].

use chrono::{DateTime, Utc};

use super::{LogLine, LogStream};
use crate::resources::job::Step;

pub mod outputs;

const MARKER_PREFIX: &str = "::orcaops:";

/// `["/bin/sh", "-c", script]`: runs the steps in order, stops at the first
/// non-zero exit and exits with it.
///
/// A `run` step is executed as `/bin/sh -c '<script>'`. A `command` step is
/// executed as `(exec 'arg0' 'arg1' ...)`: in a subshell and through
/// `exec`, so a shell builtin named in exec form (`cd`, `exit`, `set -e`)
/// cannot change or end the runner, and a missing program fails with 127.
/// There is no `--` after `exec`: dash (Debian's and Ubuntu's `/bin/sh`) takes it
/// for the program's name; validation refuses a program whose name starts with `-`.
/// A step with neither (validation rejects it) runs as a no-op `true`.
///
/// On SIGTERM (`docker stop`) the runner passes the signal on to the running
/// step, records how that step ended, starts no further step, and exits with
/// the step's non-zero code, or 143.
pub fn runner_command(steps: &[Step], nonce: &str) -> Vec<String> {
    runner_command_with(steps, nonce, RunnerOptions::default())
}

/// Like [`runner_command`], with options. The default options give exactly
/// the Docker runner.
pub fn runner_command_with(steps: &[Step], nonce: &str, options: RunnerOptions) -> Vec<String> {
    let hold = options.hold_for_collection.then_some(Hold {
        release_file: RELEASE_FILE,
        max_seconds: MAX_HOLD_SECONDS,
    });
    vec![
        "/bin/sh".into(),
        "-c".into(),
        script(steps, nonce, hold, OUTPUT_DIR),
    ]
}

/// How the runner ends.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RunnerOptions {
    /// After the last step ran (or the first failed one), keep the container
    /// running until [`RELEASE_FILE`] exists or [`MAX_HOLD_SECONDS`] have
    /// passed, then exit with the steps' exit code. The end marker of the
    /// last step is printed before the hold, so the log shows the steps'
    /// results while the artifacts are copied. A stop request (SIGTERM) ends
    /// the hold at once.
    pub hold_for_collection: bool,
}

/// The directory both runtimes mount for the runner's own files (a tmpfs on Docker,
/// an `emptyDir` on a pod): the steps' output files and the release file. Writable
/// by any user, even with a read-only root filesystem.
pub const COLLECTION_DIR: &str = "/.orcaops";

/// Where the steps' `ORCAOPS_OUTPUT` files are: `<OUTPUT_DIR>/output-<i>`.
pub const OUTPUT_DIR: &str = COLLECTION_DIR;

/// Created (by an exec from the controller) once the artifacts are copied;
/// a holding runner then exits.
pub const RELEASE_FILE: &str = "/.orcaops/collected";

/// The longest a runner holds for collection; a controller that is gone for
/// longer than this does not keep a pod running for ever.
pub const MAX_HOLD_SECONDS: u32 = 600;

/// Where a holding runner looks for its release, and for how long.
#[derive(Clone, Copy, Debug)]
struct Hold<'a> {
    release_file: &'a str,
    max_seconds: u32,
}

/// Defines `orcaops_wait`, which waits for the step in the background and
/// sets `orcaops_rc`. A step runs in the background so that the runner (PID 1,
/// which ignores signals it has no handler for) can pass Docker's SIGTERM on
/// to it: the step gets its grace period, its end marker records how it
/// ended, and no further step starts.
const PREAMBLE: &str = r#"set +e
orcaops_stop=
orcaops_child=
trap 'orcaops_stop=1; [ -z "$orcaops_child" ] || kill -TERM "$orcaops_child" 2>/dev/null' TERM INT
orcaops_wait() {
  orcaops_child=$1
  [ -z "$orcaops_stop" ] || kill -TERM "$orcaops_child" 2>/dev/null
  while :; do
    wait "$orcaops_child"; orcaops_rc=$?
    kill -0 "$orcaops_child" 2>/dev/null || break
  done
  orcaops_child=
}
"#;

/// The exit code after a stop request (128 + SIGTERM), as a shell would report it.
const STOPPED_EXIT_CODE: i64 = 143;

/// The script passed to `/bin/sh -c` (the Docker runner: no hold).
pub fn runner_script(steps: &[Step], nonce: &str) -> String {
    script(steps, nonce, None, OUTPUT_DIR)
}

/// Defines `orcaops_outputs INDEX FILE`, which prints what a step wrote to its
/// `ORCAOPS_OUTPUT` as output markers: nothing for an empty or missing file, its size
/// alone when it is over the bound (a step that writes a gigabyte does not flood the
/// log), and a marker saying it cannot be read when the image has no `od`.
fn outputs_function(nonce: &str) -> String {
    format!(
        r#"orcaops_outputs() {{
  [ -s "$2" ] || return 0
  orcaops_size=$(($(wc -c < "$2")))
  if [ "$orcaops_size" -gt {max} ]; then
    printf '{MARKER_PREFIX}{nonce}:outputs-too-large:%d:%d
' "$1" "$orcaops_size"
  elif command -v od >/dev/null 2>&1; then
    od -An -v -tx1 "$2" | while IFS= read -r orcaops_line; do
      printf '{MARKER_PREFIX}{nonce}:output:%d:%s
' "$1" "$orcaops_line"
    done
  else
    printf '{MARKER_PREFIX}{nonce}:outputs-unreadable:%d
' "$1"
  fi
}}
"#,
        max = outputs::MAX_STEP_FILE_BYTES,
    )
}

/// Defines `orcaops_usage INDEX`, which prints the usage marker of step `INDEX`: the
/// container's CPU time so far and its memory high-water mark, from its cgroup (v2, else
/// v1), read with `read` alone so that it works in any image with a shell.
fn usage_function(nonce: &str) -> String {
    format!(
        r#"orcaops_usage() {{
  orcaops_cpu=; orcaops_mem=
  if [ -r /sys/fs/cgroup/cpu.stat ]; then
    while read -r orcaops_k orcaops_v; do
      [ "$orcaops_k" = usage_usec ] && orcaops_cpu=$orcaops_v && break
    done < /sys/fs/cgroup/cpu.stat
    [ -r /sys/fs/cgroup/memory.peak ] && read -r orcaops_mem < /sys/fs/cgroup/memory.peak
  elif [ -r /sys/fs/cgroup/cpuacct/cpuacct.usage ]; then
    read -r orcaops_cpu < /sys/fs/cgroup/cpuacct/cpuacct.usage
    case "$orcaops_cpu" in *[!0-9]*|'') orcaops_cpu= ;; *) orcaops_cpu=$((orcaops_cpu / 1000)) ;; esac
    [ -r /sys/fs/cgroup/memory/memory.max_usage_in_bytes ] && read -r orcaops_mem < /sys/fs/cgroup/memory/memory.max_usage_in_bytes
  fi
  printf '{MARKER_PREFIX}{nonce}:usage:%d:%s:%s
' "$1" "$orcaops_cpu" "$orcaops_mem"
}}
"#
    )
}

/// The `ORCAOPS_OUTPUT` file of step `index`.
pub fn output_file(output_dir: &str, index: usize) -> String {
    format!("{}/output-{index}", output_dir.trim_end_matches('/'))
}

/// Defines `orcaops_exit CODE`, which a holding runner calls instead of
/// `exit` once the steps are over. It polls once a second (a foreground
/// `sleep`, so a SIGTERM is acted on within a second) and gives up holding
/// if `sleep` itself fails (an image without it), rather than spinning.
fn hold_function(hold: Hold<'_>) -> String {
    format!(
        r#"orcaops_exit() {{
  orcaops_held=0
  while [ -z "$orcaops_stop" ] && [ ! -e {release} ] && [ "$orcaops_held" -lt {max} ]; do
    sleep 1 || break
    orcaops_held=$((orcaops_held + 1))
  done
  exit "$1"
}}
"#,
        release = shell_quote(hold.release_file),
        max = hold.max_seconds,
    )
}

fn script(steps: &[Step], nonce: &str, hold: Option<Hold<'_>>, output_dir: &str) -> String {
    debug_assert!(
        nonce.bytes().all(|b| b.is_ascii_alphanumeric()),
        "the nonce is written into printf formats unquoted"
    );
    let mut script = String::from(PREAMBLE);
    script.push_str(&outputs_function(nonce));
    script.push_str(&usage_function(nonce));
    // Where the steps are over, a holding runner waits before it exits; a
    // stopped one (the `exit 143` lines) never waits.
    let finish = match hold {
        Some(hold) => {
            script.push_str(&hold_function(hold));
            "orcaops_exit"
        }
        None => "exit",
    };
    for (index, step) in steps.iter().enumerate() {
        let start = format!("{MARKER_PREFIX}{nonce}:start:{index}\\n");
        let end = format!("{MARKER_PREFIX}{nonce}:end:{index}:%d\\n");
        // A fresh file per step: the outputs it printed belong to it alone.
        let output = shell_quote(&output_file(output_dir, index));
        script.push_str(&format!(
            "[ -z \"$orcaops_stop\" ] || exit {STOPPED_EXIT_CODE}\n\
             printf '{start}'; printf '{start}' >&2\n\
             export ORCAOPS_OUTPUT={output}; {{ true > \"$ORCAOPS_OUTPUT\"; }} 2>/dev/null\n\
             {} &\n\
             orcaops_wait $!\n\
             orcaops_outputs {index} \"$ORCAOPS_OUTPUT\"; orcaops_usage {index} 2>/dev/null\n\
             printf '{end}' \"$orcaops_rc\"; printf '{end}' \"$orcaops_rc\" >&2\n\
             [ \"$orcaops_rc\" -eq 0 ] || {finish} \"$orcaops_rc\"\n",
            step_invocation(step)
        ));
    }
    script.push_str(&format!(
        "[ -z \"$orcaops_stop\" ] || exit {STOPPED_EXIT_CODE}\n{finish} 0\n"
    ));
    script
}

fn step_invocation(step: &Step) -> String {
    match (&step.run, &step.command) {
        (Some(run), _) => format!("/bin/sh -c {}", shell_quote(run)),
        (None, Some(command)) if !command.is_empty() => {
            let args: Vec<String> = command.iter().map(|arg| shell_quote(arg)).collect();
            format!("(exec {})", args.join(" "))
        }
        _ => "true".to_string(),
    }
}

/// Single-quotes `text` for a POSIX shell: inside single quotes every byte is
/// literal except `'` itself, which is closed, escaped and reopened.
pub fn shell_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('\'');
    for c in text.chars() {
        if c == '\'' {
            quoted.push_str("'\\''");
        } else {
            quoted.push(c);
        }
    }
    quoted.push('\'');
    quoted
}

/// A random nonce (16 lowercase hex characters) for one attempt's markers.
pub fn new_nonce() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..16].to_string()
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct StepProgress {
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub exit_code: Option<i64>,
    /// The container's CPU time (microseconds) when the step ended, from its usage marker.
    pub cpu_usec: Option<u64>,
    /// The container's memory high-water mark (bytes) when the step ended.
    pub peak_memory_bytes: Option<u64>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Marker {
    Start(usize),
    End(usize, i64),
    /// Bytes of what step `i` wrote to its `ORCAOPS_OUTPUT`.
    Output(usize, Vec<u8>),
    OutputsTooLarge(usize, u64),
    OutputsUnreadable(usize),
    /// The container's CPU microseconds and peak memory after step `i`.
    Usage(usize, Option<u64>, Option<u64>),
}

/// Feeds log lines (in order) and splits them into per-step output.
#[derive(Clone, Debug)]
pub struct RunnerParser {
    prefix: String,
    steps: Vec<StepProgress>,
    /// The step whose start marker last appeared on stdout / stderr.
    current_stdout: Option<usize>,
    current_stderr: Option<usize>,
    /// What each step wrote to its `ORCAOPS_OUTPUT`, as the runner printed it.
    outputs: Vec<outputs::StepOutputs>,
}

impl RunnerParser {
    pub fn new(nonce: &str, step_count: usize) -> Self {
        Self {
            prefix: format!("{MARKER_PREFIX}{nonce}:"),
            steps: vec![StepProgress::default(); step_count],
            current_stdout: None,
            current_stderr: None,
            outputs: vec![outputs::StepOutputs::default(); step_count],
        }
    }

    /// Returns the output text carried by this line (None for a pure marker
    /// line) and the index of the step it belongs to (None = before the first
    /// step marker on that stream).
    pub fn push(&mut self, line: &LogLine) -> Option<(Option<usize>, String)> {
        let (output, marker) = match self.split_marker(&line.text) {
            Some((before, marker)) => (before, Some(marker)),
            None => (line.text.as_str(), None),
        };
        // Text before a marker was written before it, so it belongs to the
        // step that was current until now.
        let owner = self.current(line.stream);
        let carried = (marker.is_none() || !output.is_empty()).then(|| (owner, output.to_string()));
        if let Some(marker) = marker {
            self.apply(marker, line);
        }
        carried
    }

    pub fn steps(&self) -> &[StepProgress] {
        &self.steps
    }

    /// What each step wrote to its `ORCAOPS_OUTPUT`, raw; [`outputs::collect`] reads it.
    pub fn outputs(&self) -> &[outputs::StepOutputs] {
        &self.outputs
    }

    /// The steps' exit code once they are over: the first non-zero one (the runner
    /// starts no step after it), or 0 once the last step ended. None while a step runs
    /// or is still to come.
    pub fn finished_code(&self) -> Option<i64> {
        if let Some(code) = self
            .steps
            .iter()
            .find_map(|s| s.exit_code.filter(|c| *c != 0))
        {
            return Some(code);
        }
        self.steps.last()?.exit_code
    }

    /// The attempt's CPU time (milliseconds) and memory high-water mark (bytes) as of
    /// the last step that reported them.
    pub fn usage(&self) -> (Option<u64>, Option<u64>) {
        let cpu = self.steps.iter().rev().find_map(|s| s.cpu_usec);
        let memory = self.steps.iter().filter_map(|s| s.peak_memory_bytes).max();
        (cpu.map(|usec| usec / 1000), memory)
    }

    /// Index of the step that started but has not ended, if any.
    pub fn running_step(&self) -> Option<usize> {
        self.steps
            .iter()
            .position(|step| step.started_at.is_some() && step.exit_code.is_none())
    }

    fn current(&self, stream: LogStream) -> Option<usize> {
        match stream {
            LogStream::Stdout => self.current_stdout,
            LogStream::Stderr => self.current_stderr,
        }
    }

    /// The runner prints each marker followed by a newline, so a marker is
    /// always the end of its line; anything before it is a step's output that
    /// did not end with a newline.
    fn split_marker<'a>(&self, text: &'a str) -> Option<(&'a str, Marker)> {
        let at = text.rfind(&self.prefix)?;
        let marker = self.parse_marker(&text[at + self.prefix.len()..])?;
        Some((&text[..at], marker))
    }

    fn parse_marker(&self, rest: &str) -> Option<Marker> {
        let mut parts = rest.split(':');
        if let Some(usage) = rest.strip_prefix("usage:") {
            return self.parse_usage(usage);
        }
        let marker = match (parts.next()?, parts.next(), parts.next()) {
            ("start", Some(index), None) => Marker::Start(parse_index(index)?),
            ("end", Some(index), Some(code)) => Marker::End(parse_index(index)?, parse_code(code)?),
            ("output", Some(index), Some(hex)) => {
                Marker::Output(parse_index(index)?, parse_hex(hex)?)
            }
            ("outputs-too-large", Some(index), Some(size)) => {
                Marker::OutputsTooLarge(parse_index(index)?, parse_code(size)?.try_into().ok()?)
            }
            ("outputs-unreadable", Some(index), None) => {
                Marker::OutputsUnreadable(parse_index(index)?)
            }
            _ => return None,
        };
        if parts.next().is_some() {
            return None;
        }
        let index = match marker {
            Marker::Start(index)
            | Marker::End(index, _)
            | Marker::Output(index, _)
            | Marker::OutputsTooLarge(index, _)
            | Marker::OutputsUnreadable(index)
            | Marker::Usage(index, ..) => index,
        };
        (index < self.steps.len()).then_some(marker)
    }

    /// `<i>:<cpu usec>:<peak bytes>`, either figure possibly empty.
    fn parse_usage(&self, rest: &str) -> Option<Marker> {
        let figure = |text: &str| -> Option<Option<u64>> {
            if text.is_empty() {
                Some(None)
            } else if text.bytes().all(|b| b.is_ascii_digit()) {
                text.parse().ok().map(Some)
            } else {
                None
            }
        };
        let mut parts = rest.split(':');
        let index = parse_index(parts.next()?)?;
        let cpu = figure(parts.next()?)?;
        let memory = figure(parts.next()?)?;
        (parts.next().is_none() && index < self.steps.len())
            .then_some(Marker::Usage(index, cpu, memory))
    }

    fn apply(&mut self, marker: Marker, line: &LogLine) {
        match (marker, line.stream) {
            (Marker::Start(index), LogStream::Stdout) => {
                self.current_stdout = Some(index);
                let step = &mut self.steps[index];
                step.started_at.get_or_insert(line.timestamp);
            }
            (Marker::Start(index), LogStream::Stderr) => self.current_stderr = Some(index),
            (Marker::End(index, code), LogStream::Stdout) => {
                let step = &mut self.steps[index];
                step.started_at.get_or_insert(line.timestamp);
                step.finished_at.get_or_insert(line.timestamp);
                step.exit_code.get_or_insert(code);
            }
            (Marker::End(..), LogStream::Stderr) => {}
            // The runner prints outputs on stdout only.
            (Marker::Output(index, bytes), LogStream::Stdout) => {
                self.outputs[index].push_bytes(&bytes)
            }
            (Marker::OutputsTooLarge(index, size), LogStream::Stdout) => {
                self.outputs[index].too_large = Some(size)
            }
            (Marker::OutputsUnreadable(index), LogStream::Stdout) => {
                self.outputs[index].unreadable = true
            }
            (Marker::Usage(index, cpu, memory), LogStream::Stdout) => {
                let step = &mut self.steps[index];
                step.cpu_usec = cpu.or(step.cpu_usec);
                step.peak_memory_bytes = memory.or(step.peak_memory_bytes);
            }
            (
                Marker::Output(..)
                | Marker::OutputsTooLarge(..)
                | Marker::OutputsUnreadable(_)
                | Marker::Usage(..),
                LogStream::Stderr,
            ) => {}
        }
    }
}

fn parse_index(text: &str) -> Option<usize> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// `od -An -tx1` output: two-digit hex bytes separated by spaces (an empty line is none).
fn parse_hex(text: &str) -> Option<Vec<u8>> {
    text.split_ascii_whitespace()
        .map(|pair| {
            (pair.len() == 2 && pair.bytes().all(|b| b.is_ascii_hexdigit()))
                .then(|| u8::from_str_radix(pair, 16).ok())
                .flatten()
        })
        .collect()
}

fn parse_code(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod hold_tests;

#[cfg(test)]
mod output_tests;

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn run(name: &str, script: &str) -> Step {
        Step::script(name, script)
    }

    fn exec(name: &str, args: &[&str]) -> Step {
        Step::exec(name, args.iter().map(|a| a.to_string()).collect())
    }

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, second).unwrap()
    }

    fn out(second: u32, text: &str) -> LogLine {
        LogLine {
            stream: LogStream::Stdout,
            timestamp: at(second),
            text: text.into(),
        }
    }

    fn err(second: u32, text: &str) -> LogLine {
        LogLine {
            stream: LogStream::Stderr,
            ..out(second, text)
        }
    }

    #[test]
    fn shell_quote_closes_and_reopens_around_single_quotes() {
        assert_eq!(shell_quote("plain"), "'plain'");
        assert_eq!(shell_quote(""), "''");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$HOME `x` \\n"), "'$HOME `x` \\n'");
        assert_eq!(shell_quote("a\nb"), "'a\nb'");
        assert_eq!(shell_quote("'"), "''\\'''");
    }

    #[test]
    fn script_runs_each_step_between_markers_and_stops_on_failure() {
        let script = runner_script(&[run("a", "echo 'hi'"), exec("b", &["ls", "-l"])], "n0");
        let steps = script
            .strip_prefix(PREAMBLE)
            .and_then(|s| s.strip_prefix(&outputs_function("n0")))
            .and_then(|s| s.strip_prefix(&usage_function("n0")))
            .unwrap();
        assert_eq!(
            steps,
            r#"[ -z "$orcaops_stop" ] || exit 143
printf '::orcaops:n0:start:0\n'; printf '::orcaops:n0:start:0\n' >&2
export ORCAOPS_OUTPUT='/.orcaops/output-0'; { true > "$ORCAOPS_OUTPUT"; } 2>/dev/null
/bin/sh -c 'echo '\''hi'\''' &
orcaops_wait $!
orcaops_outputs 0 "$ORCAOPS_OUTPUT"; orcaops_usage 0 2>/dev/null
printf '::orcaops:n0:end:0:%d\n' "$orcaops_rc"; printf '::orcaops:n0:end:0:%d\n' "$orcaops_rc" >&2
[ "$orcaops_rc" -eq 0 ] || exit "$orcaops_rc"
[ -z "$orcaops_stop" ] || exit 143
printf '::orcaops:n0:start:1\n'; printf '::orcaops:n0:start:1\n' >&2
export ORCAOPS_OUTPUT='/.orcaops/output-1'; { true > "$ORCAOPS_OUTPUT"; } 2>/dev/null
(exec 'ls' '-l') &
orcaops_wait $!
orcaops_outputs 1 "$ORCAOPS_OUTPUT"; orcaops_usage 1 2>/dev/null
printf '::orcaops:n0:end:1:%d\n' "$orcaops_rc"; printf '::orcaops:n0:end:1:%d\n' "$orcaops_rc" >&2
[ "$orcaops_rc" -eq 0 ] || exit "$orcaops_rc"
[ -z "$orcaops_stop" ] || exit 143
exit 0
"#
        );
        let command = runner_command(&[run("a", "true")], "n0");
        assert_eq!(&command[..2], ["/bin/sh", "-c"]);
    }

    #[test]
    fn script_keeps_quotes_variables_newlines_and_unicode_inside_one_quoted_word() {
        let torture = "echo \"it's $HOME\" '$PATH' `true` \\\nprintf 'é ✓ 日本\\n' # '";
        let script = runner_script(&[run("t", torture)], "n0");
        let line = script
            .lines()
            .skip_while(|line| !line.starts_with("/bin/sh -c"))
            .take(2)
            .collect::<Vec<_>>()
            .join("\n");
        assert_eq!(line, format!("/bin/sh -c {} &", shell_quote(torture)));
        // Outside the quotes only `'\''` sequences appear.
        let quoted = shell_quote(torture);
        let unquoted: String = quoted[1..quoted.len() - 1].replace("'\\''", "");
        assert!(!unquoted.contains('\''));
    }

    #[test]
    fn empty_step_is_a_no_op() {
        let script = runner_script(&[exec("e", &[])], "n0");
        assert!(script.contains("\ntrue &\n"));
    }

    #[test]
    fn nonces_are_sixteen_hex_characters_and_differ() {
        let (a, b) = (new_nonce(), new_nonce());
        assert_eq!(a.len(), 16);
        assert!(
            a.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        );
        assert_ne!(a, b);
    }

    #[test]
    fn parser_splits_output_by_step_and_records_times_and_exit_codes() {
        let mut parser = RunnerParser::new("n0", 3);
        assert_eq!(
            parser.push(&out(0, "preamble")),
            Some((None, "preamble".into()))
        );
        assert_eq!(parser.push(&out(1, "::orcaops:n0:start:0")), None);
        assert_eq!(parser.running_step(), Some(0));
        assert_eq!(parser.push(&out(2, "one")), Some((Some(0), "one".into())));
        assert_eq!(parser.push(&out(3, "::orcaops:n0:end:0:0")), None);
        assert_eq!(parser.running_step(), None);
        assert_eq!(parser.push(&out(3, "::orcaops:n0:start:1")), None);
        assert_eq!(parser.push(&out(5, "::orcaops:n0:end:1:7")), None);
        assert_eq!(
            parser.steps(),
            [
                StepProgress {
                    started_at: Some(at(1)),
                    finished_at: Some(at(3)),
                    exit_code: Some(0),
                    ..Default::default()
                },
                StepProgress {
                    started_at: Some(at(3)),
                    finished_at: Some(at(5)),
                    exit_code: Some(7),
                    ..Default::default()
                },
                StepProgress::default(),
            ]
        );
        assert_eq!(parser.running_step(), None);
    }

    #[test]
    fn parser_reads_usage_markers_and_tolerates_missing_figures() {
        let mut parser = RunnerParser::new("n0", 3);
        assert_eq!(parser.usage(), (None, None));
        parser.push(&out(0, "::orcaops:n0:start:0"));
        assert_eq!(parser.push(&out(1, "::orcaops:n0:usage:0:1500:4096")), None);
        parser.push(&out(1, "::orcaops:n0:start:1"));
        // A kernel without memory.peak gives an empty figure; the CPU time still counts.
        assert_eq!(parser.push(&out(2, "::orcaops:n0:usage:1:250000:")), None);
        assert_eq!(parser.usage(), (Some(250), Some(4096)));
        // Bad shapes are output, and change nothing.
        for forged in [
            "::orcaops:n0:usage:1:x:5",
            "::orcaops:n0:usage:9:1:1",
            "::orcaops:n0:usage:1:1",
            "::orcaops:n0:usage:1:1:1:1",
        ] {
            assert!(parser.push(&out(3, forged)).is_some(), "{forged}");
        }
        assert_eq!(parser.usage(), (Some(250), Some(4096)));
        // Only stdout carries usage.
        let mut line = out(4, "::orcaops:n0:usage:1:999000:1");
        line.stream = LogStream::Stderr;
        parser.push(&line);
        assert_eq!(parser.usage(), (Some(250), Some(4096)));
    }

    #[test]
    fn parser_splits_a_marker_that_follows_output_without_newline() {
        let mut parser = RunnerParser::new("n0", 2);
        parser.push(&out(0, "::orcaops:n0:start:0"));
        assert_eq!(
            parser.push(&out(1, "no newline::orcaops:n0:end:0:0")),
            Some((Some(0), "no newline".into()))
        );
        assert_eq!(parser.steps()[0].exit_code, Some(0));
        // Text before a start marker belongs to the step before it.
        assert_eq!(
            parser.push(&out(2, "late::orcaops:n0:start:1")),
            Some((Some(0), "late".into()))
        );
        assert_eq!(parser.running_step(), Some(1));
    }

    #[test]
    fn parser_treats_markers_with_another_nonce_or_bad_shape_as_output() {
        let mut parser = RunnerParser::new("n0", 2);
        parser.push(&out(0, "::orcaops:n0:start:0"));
        for forged in [
            "::orcaops:evil:end:0:0",
            "::orcaops:n0:end:0",
            "::orcaops:n0:end:0:0:extra",
            "::orcaops:n0:end:x:0",
            "::orcaops:n0:end:0:+1",
            "::orcaops:n0:start:9",
            "::orcaops:n0:finish:0",
            " ::orcaops:n0:start:1 trailing",
        ] {
            assert_eq!(
                parser.push(&out(1, forged)),
                Some((Some(0), forged.to_string())),
                "{forged}"
            );
        }
        assert_eq!(parser.running_step(), Some(0));
        assert_eq!(parser.steps()[0].exit_code, None);
    }

    #[test]
    fn parser_attributes_stderr_by_its_own_markers() {
        let mut parser = RunnerParser::new("n0", 2);
        // Docker may deliver stdout's markers before stderr's output.
        parser.push(&out(0, "::orcaops:n0:start:0"));
        parser.push(&out(1, "::orcaops:n0:end:0:0"));
        parser.push(&out(1, "::orcaops:n0:start:1"));
        assert_eq!(parser.push(&err(0, "::orcaops:n0:start:0")), None);
        assert_eq!(
            parser.push(&err(1, "warning")),
            Some((Some(0), "warning".into()))
        );
        assert_eq!(parser.push(&err(1, "::orcaops:n0:end:0:0")), None);
        assert_eq!(parser.push(&err(1, "::orcaops:n0:start:1")), None);
        assert_eq!(parser.push(&err(2, "oops")), Some((Some(1), "oops".into())));
        // Times come from stdout only.
        assert_eq!(parser.steps()[0].started_at, Some(at(0)));
        assert_eq!(parser.running_step(), Some(1));
    }

    #[test]
    fn default_options_give_the_docker_runner_and_hold_only_changes_how_it_ends() {
        let steps = [run("a", "echo hi"), exec("b", &["false"])];
        assert_eq!(
            runner_command_with(&steps, "n0", RunnerOptions::default()),
            ["/bin/sh", "-c", &runner_script(&steps, "n0")]
        );
        let held = runner_command_with(
            &steps,
            "n0",
            RunnerOptions {
                hold_for_collection: true,
            },
        );
        let hold = Hold {
            release_file: RELEASE_FILE,
            max_seconds: MAX_HOLD_SECONDS,
        };
        assert!(held[2].contains("[ ! -e '/.orcaops/collected' ]"));
        assert!(held[2].contains("-lt 600 ]"));
        // Without the hold function, and with `exit` for `orcaops_exit`, it is the Docker runner.
        assert_eq!(
            held[2]
                .replace(&hold_function(hold), "")
                .replace("orcaops_exit", "exit"),
            runner_script(&steps, "n0")
        );
        // Stopped runners never hold.
        assert_eq!(held[2].matches("|| exit 143").count(), 3);
    }

    #[test]
    fn parser_keeps_the_first_end_of_a_step() {
        let mut parser = RunnerParser::new("n0", 1);
        parser.push(&out(0, "::orcaops:n0:start:0"));
        parser.push(&out(1, "::orcaops:n0:end:0:3"));
        parser.push(&out(2, "::orcaops:n0:end:0:0"));
        assert_eq!(parser.steps()[0].exit_code, Some(3));
        assert_eq!(parser.steps()[0].finished_at, Some(at(1)));
    }
}
