//! The two text formats of a scrape. prometheus-client writes OpenMetrics, which
//! Prometheus asks for; the classic Prometheus text format (0.0.4) is what a scraper
//! that does not ask, `promtool check metrics` and a person with curl read. The two
//! differ, for what orcaops exports, only in the name a counter's HELP and TYPE lines
//! carry (`x` in OpenMetrics, `x_total` in the classic format), the UNIT lines and the
//! closing `# EOF`.

pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
pub const TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Whether an `Accept` header asks for OpenMetrics (Prometheus's does, first).
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|a| a.contains("application/openmetrics-text"))
}

/// `openmetrics` (as prometheus-client writes it) in the classic text format.
pub fn classic(openmetrics: &str) -> String {
    let mut out = String::with_capacity(openmetrics.len());
    // HELP comes before TYPE, and a counter's HELP needs the name TYPE reveals.
    let mut help: Option<&str> = None;
    for line in openmetrics.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            if let Some(pending) = help.replace(rest) {
                push_line(&mut out, &format!("# HELP {pending}"));
            }
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').unwrap_or((rest, "untyped"));
            let (name, kind) = match kind {
                "counter" => (format!("{name}_total"), "counter"),
                "unknown" => (name.to_string(), "untyped"),
                other => (name.to_string(), other),
            };
            if let Some(text) = help.take() {
                let text = text.split_once(' ').map_or("", |(_, text)| text);
                push_line(&mut out, &format!("# HELP {name} {text}"));
            }
            push_line(&mut out, &format!("# TYPE {name} {kind}"));
            continue;
        }
        if let Some(pending) = help.take() {
            push_line(&mut out, &format!("# HELP {pending}"));
        }
        if line.starts_with("# UNIT ") || line == "# EOF" {
            continue;
        }
        push_line(&mut out, line);
    }
    if let Some(pending) = help {
        push_line(&mut out, &format!("# HELP {pending}"));
    }
    out
}

fn push_line(out: &mut String, line: &str) {
    out.push_str(line);
    out.push('\n');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_take_their_total_name_and_openmetrics_only_lines_go() {
        let openmetrics = "\
# HELP orcaops_reconciles Reconciles by kind.
# TYPE orcaops_reconciles counter
orcaops_reconciles_total{kind=\"Job\"} 2
# HELP orcaops_run_seconds Runs.
# TYPE orcaops_run_seconds histogram
# UNIT orcaops_run_seconds seconds
orcaops_run_seconds_sum 1.5
orcaops_run_seconds_count 1
orcaops_run_seconds_bucket{le=\"+Inf\"} 1
# HELP orcaops_queue_depth Objects waiting.
# TYPE orcaops_queue_depth gauge
orcaops_queue_depth 4
# EOF
";
        assert_eq!(
            classic(openmetrics),
            "\
# HELP orcaops_reconciles_total Reconciles by kind.
# TYPE orcaops_reconciles_total counter
orcaops_reconciles_total{kind=\"Job\"} 2
# HELP orcaops_run_seconds Runs.
# TYPE orcaops_run_seconds histogram
orcaops_run_seconds_sum 1.5
orcaops_run_seconds_count 1
orcaops_run_seconds_bucket{le=\"+Inf\"} 1
# HELP orcaops_queue_depth Objects waiting.
# TYPE orcaops_queue_depth gauge
orcaops_queue_depth 4
"
        );
    }

    #[test]
    fn prometheus_gets_openmetrics_curl_gets_text() {
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(None));
    }
}
