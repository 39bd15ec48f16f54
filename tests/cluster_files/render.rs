//! A renderer for the small subset of Go templates the Helm chart is written in, so that
//! the tests check the chart without Helm.
//!
//! The subset: field paths (`.Values.image.tag`, `.`), string and integer literals,
//! pipelines (`|`), `if`/`else`/`end`, `with`/`else`/`end`, `define` and `include`, the
//! functions `toYaml`, `nindent`, `indent`, `quote` and `default`, `.Files.Get` of the
//! chart's non-template files (given to [`Templates::with_files`]), the trim markers `{{-`
//! and `-}}`, and `{{/* comments */}}`. Anything else is an error that names the template,
//! the line and the construct, never passed through: a chart that outgrows the subset fails
//! the tests until the renderer learns the new construct. One deliberate difference from
//! Helm: a field missing from the values is an error (Helm renders nothing), so a misspelt
//! value name fails the tests instead of silently rendering an empty field.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

/// The functions the renderer knows.
const FUNCTIONS: &[&str] = &[
    "include",
    "toYaml",
    "nindent",
    "indent",
    "quote",
    "default",
    ".Files.Get",
];
/// How deep `include` may nest before the renderer assumes a define includes itself.
const MAX_INCLUDE_DEPTH: usize = 32;

/// Parsed templates: the files by name, and every `define` found in any of them.
pub struct Templates {
    files: BTreeMap<String, Vec<Node>>,
    defines: BTreeMap<String, Vec<Node>>,
    /// The chart's other files by path in the chart (`dashboards/orcaops.json`), for
    /// `.Files.Get`.
    chart_files: BTreeMap<String, String>,
}

/// Where something is in the templates, for error messages.
#[derive(Clone, Debug)]
struct Place {
    file: String,
    line: usize,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

#[derive(Debug)]
enum Node {
    Text(String),
    Output(Pipeline, Place),
    If(Pipeline, Vec<Node>, Vec<Node>, Place),
    With(Pipeline, Vec<Node>, Vec<Node>, Place),
}

/// Commands separated by `|`; each command's value is passed as the last argument of the next.
type Pipeline = Vec<Vec<Word>>;

#[derive(Debug)]
enum Word {
    /// `.a.b` (the empty path is `.` itself).
    Field(Vec<String>),
    Str(String),
    Int(i64),
    Function(String),
}

/// What ends a block: `{{ else }}` or `{{ end }}`, and where.
enum Terminator {
    Else(Place),
    End(Place),
}

impl Templates {
    /// Parses every file; `define`s from all of them are shared, as in Helm.
    pub fn parse<'a>(files: impl IntoIterator<Item = (&'a str, &'a str)>) -> Result<Self, String> {
        let mut templates = Templates {
            files: BTreeMap::new(),
            defines: BTreeMap::new(),
            chart_files: BTreeMap::new(),
        };
        for (name, text) in files {
            let mut tokens = lex(name, text)?.into_iter();
            let (nodes, end) = parse_block(&mut tokens, &mut templates.defines)?;
            if let Some(Terminator::Else(place) | Terminator::End(place)) = end {
                return Err(format!(
                    "{place}: `else` or `end` without an `if` or `with`"
                ));
            }
            templates.files.insert(name.to_string(), nodes);
        }
        Ok(templates)
    }

    /// The chart's non-template files `.Files.Get` reads, by path in the chart.
    pub fn with_files(mut self, files: BTreeMap<String, String>) -> Self {
        self.chart_files = files;
        self
    }

    /// Renders one file with `root` as `.` (an object with `Values`, `Release` and `Chart`).
    pub fn render(&self, file: &str, root: &Value) -> Result<String, String> {
        let nodes = self
            .files
            .get(file)
            .ok_or_else(|| format!("no template named {file}"))?;
        let mut out = String::new();
        self.render_nodes(nodes, root, 0, &mut out)?;
        Ok(out)
    }

    fn render_nodes(
        &self,
        nodes: &[Node],
        dot: &Value,
        depth: usize,
        out: &mut String,
    ) -> Result<(), String> {
        for node in nodes {
            match node {
                Node::Text(text) => out.push_str(text),
                Node::Output(pipeline, place) => {
                    let value = self.eval(pipeline, dot, depth, place)?;
                    out.push_str(&printed(&value, place)?);
                }
                Node::If(condition, then, otherwise, place) => {
                    let branch = if truthy(&self.eval(condition, dot, depth, place)?) {
                        then
                    } else {
                        otherwise
                    };
                    self.render_nodes(branch, dot, depth, out)?;
                }
                Node::With(pipeline, then, otherwise, place) => {
                    let value = self.eval(pipeline, dot, depth, place)?;
                    if truthy(&value) {
                        self.render_nodes(then, &value, depth, out)?;
                    } else {
                        self.render_nodes(otherwise, dot, depth, out)?;
                    }
                }
            }
        }
        Ok(())
    }

    fn eval(
        &self,
        pipeline: &Pipeline,
        dot: &Value,
        depth: usize,
        place: &Place,
    ) -> Result<Value, String> {
        let mut piped: Option<Value> = None;
        for command in pipeline {
            let value = match &command[0] {
                Word::Function(name) => {
                    let mut args = command[1..]
                        .iter()
                        .map(|word| self.word(word, dot, place))
                        .collect::<Result<Vec<_>, _>>()?;
                    args.extend(piped.take());
                    self.call(name, args, depth, place)?
                }
                word if command.len() == 1 && piped.is_none() => self.word(word, dot, place)?,
                _ => {
                    return Err(format!(
                        "{place}: only a function takes arguments or a piped value"
                    ));
                }
            };
            piped = Some(value);
        }
        Ok(piped.expect("a pipeline has at least one command"))
    }

    fn word(&self, word: &Word, dot: &Value, place: &Place) -> Result<Value, String> {
        match word {
            Word::Field(path) => {
                let mut value = dot;
                for (i, key) in path.iter().enumerate() {
                    value = value.get(key).ok_or_else(|| {
                        format!(
                            "{place}: `.{}` is not set (the test renderer treats a missing value as an error; is it in values.yaml?)",
                            path[..=i].join(".")
                        )
                    })?;
                }
                Ok(value.clone())
            }
            Word::Str(s) => Ok(Value::String(s.clone())),
            Word::Int(n) => Ok(Value::from(*n)),
            Word::Function(name) => Err(format!(
                "{place}: the function `{name}` as an argument needs parentheses, which the test renderer does not support"
            )),
        }
    }

    fn call(
        &self,
        name: &str,
        args: Vec<Value>,
        depth: usize,
        place: &Place,
    ) -> Result<Value, String> {
        let arity = |n: usize| {
            if args.len() == n {
                Ok(())
            } else {
                Err(format!(
                    "{place}: `{name}` takes {n} arguments, got {}",
                    args.len()
                ))
            }
        };
        match name {
            "include" => {
                arity(2)?;
                let define = args[0]
                    .as_str()
                    .ok_or_else(|| format!("{place}: `include` needs a template name"))?;
                let nodes = self
                    .defines
                    .get(define)
                    .ok_or_else(|| format!("{place}: no `define \"{define}\"` in the templates"))?;
                if depth >= MAX_INCLUDE_DEPTH {
                    return Err(format!("{place}: `include \"{define}\"` nests too deep"));
                }
                let mut out = String::new();
                self.render_nodes(nodes, &args[1], depth + 1, &mut out)?;
                Ok(Value::String(out))
            }
            "toYaml" => {
                arity(1)?;
                let yaml = serde_saphyr::to_string(&args[0])
                    .map_err(|e| format!("{place}: toYaml: {e}"))?;
                Ok(Value::String(yaml.trim_end_matches('\n').to_string()))
            }
            "indent" | "nindent" => {
                arity(2)?;
                let width = args[0]
                    .as_u64()
                    .ok_or_else(|| format!("{place}: `{name}` needs a width first"))?;
                let pad = " ".repeat(width as usize);
                let text = printed(&args[1], place)?;
                let indented = format!("{pad}{}", text.replace('\n', &format!("\n{pad}")));
                Ok(Value::String(if name == "nindent" {
                    format!("\n{indented}")
                } else {
                    indented
                }))
            }
            "quote" => {
                arity(1)?;
                let text = printed(&args[0], place)?;
                Ok(Value::String(Value::String(text).to_string()))
            }
            "default" => {
                arity(2)?;
                let mut args = args;
                let given = args.pop().expect("two arguments");
                Ok(if truthy(&given) {
                    given
                } else {
                    args.remove(0)
                })
            }
            ".Files.Get" => {
                arity(1)?;
                let path = args[0]
                    .as_str()
                    .ok_or_else(|| format!("{place}: `.Files.Get` needs a path"))?;
                // Helm answers an empty string for a missing file; a test wants to know.
                self.chart_files
                    .get(path)
                    .map(|text| Value::String(text.clone()))
                    .ok_or_else(|| {
                        format!("{place}: `.Files.Get \"{path}\"`: no such file in the chart")
                    })
            }
            _ => unreachable!("function names are checked when parsing"),
        }
    }
}

/// Go templates' truth: false, 0, nil, and empty strings, lists and maps are false.
fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64() != Some(0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// How a value appears in the output: scalars as text; anything else is an error.
fn printed(value: &Value, place: &Place) -> Result<String, String> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        Value::Null => Err(format!("{place}: the value is null")),
        Value::Array(_) | Value::Object(_) => Err(format!(
            "{place}: a list or map cannot be printed as it is; use `toYaml`"
        )),
    }
}

enum Token {
    Text(String),
    Action(String, Place),
}

/// Splits a template into text and actions, applying the trim markers to the text.
fn lex(file: &str, source: &str) -> Result<Vec<Token>, String> {
    let mut tokens = Vec::new();
    let mut rest = source;
    let mut line = 1;
    let mut trim_next_text = false;
    loop {
        let start = rest.find("{{").unwrap_or(rest.len());
        let mut text = &rest[..start];
        if trim_next_text {
            text = text.trim_start();
        }
        line += rest[..start].matches('\n').count();
        let place = Place {
            file: file.to_string(),
            line,
        };
        if start == rest.len() {
            tokens.push(Token::Text(text.to_string()));
            return Ok(tokens);
        }
        let after = &rest[start + 2..];
        let end = after
            .find("}}")
            .ok_or_else(|| format!("{place}: `{{{{` is never closed"))?;
        let mut body = &after[..end];
        // A trim marker is a dash next to the braces with white space on its other side
        // (`{{-3}}` is the number -3).
        let trim_before = body.starts_with('-') && body[1..].starts_with(char::is_whitespace);
        if trim_before {
            text = text.trim_end();
            body = &body[1..];
        }
        trim_next_text =
            body.ends_with('-') && body[..body.len() - 1].ends_with(char::is_whitespace);
        if trim_next_text {
            body = &body[..body.len() - 1];
        }
        tokens.push(Token::Text(text.to_string()));
        tokens.push(Token::Action(body.trim().to_string(), place));
        line += after[..end].matches('\n').count();
        rest = &after[end + 2..];
    }
}

/// Parses nodes up to the `else` or `end` that closes the block (or the end of the file).
fn parse_block(
    tokens: &mut impl Iterator<Item = Token>,
    defines: &mut BTreeMap<String, Vec<Node>>,
) -> Result<(Vec<Node>, Option<Terminator>), String> {
    let mut nodes = Vec::new();
    while let Some(token) = tokens.next() {
        let (action, place) = match token {
            Token::Text(text) => {
                if !text.is_empty() {
                    nodes.push(Node::Text(text));
                }
                continue;
            }
            Token::Action(action, place) => (action, place),
        };
        if action.starts_with("/*") {
            if !action.ends_with("*/") {
                return Err(format!("{place}: a comment must end with `*/}}}}`"));
            }
            continue;
        }
        let (keyword, rest) = action
            .split_once(char::is_whitespace)
            .map_or((action.as_str(), ""), |(k, r)| (k, r.trim()));
        match keyword {
            "if" | "with" => {
                let pipeline = parse_pipeline(rest, &place)?;
                let (then, otherwise) = parse_branches(tokens, defines, keyword, &place)?;
                nodes.push(if keyword == "if" {
                    Node::If(pipeline, then, otherwise, place)
                } else {
                    Node::With(pipeline, then, otherwise, place)
                });
            }
            "else" if rest.is_empty() => return Ok((nodes, Some(Terminator::Else(place)))),
            "else" => {
                return Err(format!(
                    "{place}: `else {rest}` is not supported by the test renderer; nest an `if` inside the `else`"
                ));
            }
            "end" => return Ok((nodes, Some(Terminator::End(place)))),
            "define" => {
                let name = parse_string(rest, &place)?;
                let (body, end) = parse_block(tokens, defines)?;
                if !matches!(end, Some(Terminator::End(_))) {
                    return Err(format!("{place}: `define \"{name}\"` has no `end`"));
                }
                if defines.insert(name.clone(), body).is_some() {
                    return Err(format!("{place}: `{name}` is defined twice"));
                }
            }
            _ if keyword.starts_with('$') => {
                return Err(format!(
                    "{place}: variables (`{keyword}`) are not supported by the test renderer"
                ));
            }
            _ if keyword.chars().all(|c| c.is_ascii_alphabetic())
                && !FUNCTIONS.contains(&keyword) =>
            {
                return Err(format!(
                    "{place}: `{keyword}` is not supported by the test renderer (it knows if, else, with, end, define and the functions {})",
                    FUNCTIONS.join(", ")
                ));
            }
            _ => nodes.push(Node::Output(parse_pipeline(&action, &place)?, place)),
        }
    }
    Ok((nodes, None))
}

/// The body of an `if` or `with` and, after an `else`, its other branch.
fn parse_branches(
    tokens: &mut impl Iterator<Item = Token>,
    defines: &mut BTreeMap<String, Vec<Node>>,
    keyword: &str,
    place: &Place,
) -> Result<(Vec<Node>, Vec<Node>), String> {
    let unclosed = || format!("{place}: this `{keyword}` has no `end`");
    let (then, end) = parse_block(tokens, defines)?;
    match end.ok_or_else(unclosed)? {
        Terminator::End(_) => Ok((then, Vec::new())),
        Terminator::Else(_) => match parse_block(tokens, defines)? {
            (otherwise, Some(Terminator::End(_))) => Ok((then, otherwise)),
            (_, Some(Terminator::Else(second))) => {
                Err(format!("{second}: a second `else` in one `{keyword}`"))
            }
            (_, None) => Err(unclosed()),
        },
    }
}

fn parse_pipeline(text: &str, place: &Place) -> Result<Pipeline, String> {
    let words = split_words(text, place)?;
    let mut pipeline = vec![Vec::new()];
    for word in words {
        if word == "|" {
            pipeline.push(Vec::new());
            continue;
        }
        let command = pipeline.last_mut().expect("never empty");
        let parsed = if word.starts_with('"') {
            Word::Str(parse_string(&word, place)?)
        } else if FUNCTIONS.contains(&word.as_str()) && command.is_empty() {
            Word::Function(word)
        } else if word == "." {
            Word::Field(Vec::new())
        } else if let Some(path) = word.strip_prefix('.') {
            Word::Field(path.split('.').map(str::to_string).collect())
        } else if let Ok(n) = word.parse::<i64>() {
            Word::Int(n)
        } else {
            return Err(format!(
                "{place}: `{word}` in `{text}` is not supported by the test renderer (it knows fields, strings, integers and the functions {})",
                FUNCTIONS.join(", ")
            ));
        };
        command.push(parsed);
    }
    if pipeline.iter().any(Vec::is_empty) {
        return Err(format!("{place}: an empty command in `{text}`"));
    }
    Ok(pipeline)
}

/// Splits on white space, keeping quoted strings whole and `|` as a word of its own.
fn split_words(text: &str, place: &Place) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    while let Some(&c) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
        } else if c == '|' {
            words.push(chars.next().unwrap().to_string());
        } else if c == '(' || c == ')' || c == '`' {
            return Err(format!(
                "{place}: `{c}` in `{text}` is not supported by the test renderer"
            ));
        } else if c == '"' {
            let mut word = String::from(chars.next().unwrap());
            let mut escaped = false;
            loop {
                let c = chars
                    .next()
                    .ok_or_else(|| format!("{place}: unterminated string in `{text}`"))?;
                word.push(c);
                match c {
                    '"' if !escaped => break,
                    '\\' => escaped = !escaped,
                    _ => escaped = false,
                }
            }
            words.push(word);
        } else {
            let mut word = String::new();
            while let Some(&c) = chars.peek() {
                if c.is_whitespace() || c == '|' {
                    break;
                }
                word.push(c);
                chars.next();
            }
            words.push(word);
        }
    }
    Ok(words)
}

/// A double-quoted string; Go's escapes for the common cases are JSON's.
fn parse_string(text: &str, place: &Place) -> Result<String, String> {
    serde_json::from_str(text.trim())
        .map_err(|_| format!("{place}: expected a double-quoted string, found `{text}`"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn render(template: &str, values: Value) -> Result<String, String> {
        let templates = Templates::parse([("t.yaml", template)])?;
        templates.render("t.yaml", &json!({ "Values": values }))
    }

    #[test]
    fn fields_pipelines_and_functions() {
        let out = render(
            "a: {{ .Values.a | quote }}\nb: {{ .Values.missing | default \"x\" }}\nc:\n  {{- toYaml .Values.c | nindent 2 }}\n",
            json!({ "a": 1, "missing": "", "c": { "k": ["v"] } }),
        )
        .unwrap();
        assert_eq!(out, "a: \"1\"\nb: x\nc:\n  k:\n  - v\n");
    }

    #[test]
    fn trim_markers_eat_white_space_on_their_side_only() {
        let out = render(
            "x  {{- .Values.a -}}  \n y {{ .Values.a }} z",
            json!({ "a": "A" }),
        );
        assert_eq!(out.unwrap(), "xAy A z");
    }

    #[test]
    fn if_else_with_and_include() {
        let template = r#"{{- define "greet" -}}hi {{ . }}{{- end -}}
{{- if .Values.on }}on{{ else }}off{{ end }}
{{- with .Values.name }} {{ include "greet" . }}{{ else }} nobody{{ end }}"#;
        assert_eq!(
            render(template, json!({ "on": true, "name": "bob" })).unwrap(),
            "on hi bob"
        );
        assert_eq!(
            render(template, json!({ "on": false, "name": "" })).unwrap(),
            "off nobody"
        );
    }

    #[test]
    fn a_missing_value_is_an_error_naming_it() {
        let error = render("{{ .Values.image.tg }}", json!({ "image": { "tag": "1" } }));
        let error = error.unwrap_err();
        assert!(error.contains("`.Values.image.tg` is not set"), "{error}");
        assert!(error.starts_with("t.yaml:1:"), "{error}");
    }

    #[test]
    fn constructs_outside_the_subset_fail_with_their_name() {
        let cases = [
            (
                "{{ range .Values.list }}{{ end }}",
                "`range` is not supported",
            ),
            ("{{ printf \"%s\" .Values.a }}", "`printf` is not supported"),
            ("{{ .Values.a | upper }}", "`upper`"),
            ("{{ $x := .Values.a }}", "variables"),
            ("{{ default (include \"x\" .) .Values.a }}", "`(`"),
            (
                "{{ if .Values.a }}a{{ else if .Values.b }}b{{ end }}",
                "`else if",
            ),
            ("{{ if .Values.a }}never closed", "has no `end`"),
            ("{{ .Values.a }} {{ end }}", "without an `if`"),
            ("{{ .Values.map }}", "use `toYaml`"),
            ("{{ include \"nowhere\" . }}", "no `define \"nowhere\"`"),
            ("line one\n{{ .Values.a", "t.yaml:2: `{{` is never closed"),
        ];
        for (template, expected) in cases {
            let result = render(template, json!({ "a": "A", "b": "B", "map": { "k": 1 } }));
            let error = result.expect_err(template);
            assert!(
                error.contains(expected),
                "{template}: expected an error with {expected:?}, got {error:?}"
            );
        }
    }
}
