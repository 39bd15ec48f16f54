//! `orcaops get`: tables, YAML and JSON, and watching.

use chrono::{DateTime, Utc};
use clap::Args;
use serde_json::Value;

use super::parse_kind;
use crate::client::format::{age_since, list_header, list_row, table_with_gap};
use crate::client::secrets::list_secrets;
use crate::client::{ApiClient, Change, ClientError, ResumingWatch, exit};
use crate::resources::{DEFAULT_WORKSPACE, Kind, Object, ObjectKey, keys};

#[derive(Args, Debug)]
pub struct GetArgs {
    /// The kind: job, workflow (wf), sandbox (sb), sandboxtemplate (sbt), workspace (ws), policy; singular or plural.
    pub kind: String,
    /// One object by name (default: all).
    pub name: Option<String>,
    #[arg(short = 'n', long = "namespace", visible_alias = "workspace", default_value = DEFAULT_WORKSPACE)]
    pub namespace: String,
    /// Every workspace.
    #[arg(short = 'A', long)]
    pub all_namespaces: bool,
    /// Only objects with these labels (`app=web,tier!=db`).
    #[arg(short = 'l', long)]
    pub selector: Option<String>,
    #[arg(short, long, value_enum, default_value = "table")]
    pub output: Format,
    /// After listing, keep printing changes.
    #[arg(short, long)]
    pub watch: bool,
    /// Only objects created through an API key with this agent label (or, for a key without one, this member): annotation orcaops.dev/created-by.
    #[arg(long, value_name = "WHO")]
    pub created_by: Option<String>,
}

#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Format {
    Table,
    Wide,
    Yaml,
    Json,
    Name,
}

pub fn age(t: Option<DateTime<Utc>>) -> String {
    t.map_or_else(|| "<unknown>".into(), |t| age_since(t, Utc::now()))
}

/// Left-aligned columns separated by three spaces, as kubectl prints them.
pub fn table(rows: &[Vec<String>]) -> String {
    table_with_gap(rows, 3)
}

pub fn to_yaml(value: &Value) -> String {
    serde_saphyr::to_string(value).unwrap_or_else(|e| format!("# cannot render YAML: {e}\n"))
}

fn print_objects(objects: &[Object], kind: Kind, format: Format, with_ns: bool, single: bool) {
    match format {
        Format::Json => {
            let value = if single {
                serde_json::to_value(&objects[0]).unwrap_or_default()
            } else {
                serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": objects })
            };
            println!(
                "{}",
                serde_json::to_string_pretty(&value).unwrap_or_default()
            );
        }
        Format::Yaml => {
            let value = if single {
                serde_json::to_value(&objects[0]).unwrap_or_default()
            } else {
                serde_json::json!({ "apiVersion": "v1", "kind": "List", "items": objects })
            };
            print!("{}", to_yaml(&value));
        }
        Format::Name => {
            for o in objects {
                println!("{}.orcaops.dev/{}", kind.singular(), o.metadata.name);
            }
        }
        Format::Table | Format::Wide => {
            let wide = format == Format::Wide;
            let now = Utc::now();
            let mut rows = vec![list_header(kind, wide, with_ns)];
            rows.extend(objects.iter().map(|o| list_row(o, wide, with_ns, now)));
            print!("{}", table(&rows));
        }
    }
}

pub async fn get(client: &ApiClient, args: GetArgs) -> Result<u8, ClientError> {
    if matches!(args.kind.as_str(), "secret" | "secrets") {
        return get_secrets(client, &args).await;
    }
    let kind = parse_kind(&args.kind)?;
    let ns = (!args.all_namespaces && kind.namespaced()).then_some(args.namespace.as_str());
    let with_ns = args.all_namespaces && kind.namespaced();
    // One object is a list by name: its version is the list's, which a watch can always
    // resume from, where the object's own version may be older than the server remembers.
    let by_name = args.name.as_ref().map(|n| format!("metadata.name={n}"));
    let (mut objects, rv) = client
        .list_selected(kind, ns, args.selector.as_deref(), by_name.as_deref())
        .await?;
    if let Some(name) = &args.name
        && objects.is_empty()
        && args.selector.is_none()
        && args.created_by.is_none()
    {
        // The server's NotFound, with its message; or the object, when it was created
        // between the list and this read.
        let obj = client
            .get_object(&ObjectKey::new(kind, ns.unwrap_or(""), name))
            .await?;
        objects.push(obj);
    }
    let creator = args.created_by.as_deref();
    let made_by = |o: &Object| {
        creator.is_none_or(|who| {
            o.metadata
                .annotations
                .get(keys::CREATED_BY)
                .map(String::as_str)
                == Some(who)
        })
    };
    objects.retain(|o| made_by(o));
    if objects.is_empty() && !args.watch {
        match ns {
            Some(ns) => eprintln!("No {} found in workspace {ns}.", kind.plural()),
            None => eprintln!("No {} found.", kind.plural()),
        }
        return Ok(exit::OK);
    }
    if !objects.is_empty() {
        print_objects(&objects, kind, args.output, with_ns, args.name.is_some());
    }
    if !args.watch {
        return Ok(exit::OK);
    }
    let mut watch = ResumingWatch::new(
        client.clone(),
        kind,
        ns,
        args.selector.as_deref(),
        by_name.as_deref(),
        &rv,
    );
    loop {
        match watch.next().await? {
            Change::Event { type_, object } => {
                if made_by(&object) {
                    print_event(&type_, &object, kind, args.output, with_ns);
                }
            }
            // The server no longer had our version: show the state afresh, as a list.
            Change::Relisted(objects) => {
                for object in objects.iter().filter(|o| made_by(o)) {
                    print_event("ADDED", object, kind, args.output, with_ns);
                }
            }
        }
    }
}

/// One line (or document) per watch event.
fn print_event(type_: &str, obj: &Object, kind: Kind, format: Format, with_ns: bool) {
    match format {
        Format::Json => {
            let event = serde_json::json!({ "type": type_, "object": obj });
            println!("{}", serde_json::to_string(&event).unwrap_or_default());
        }
        Format::Yaml => {
            let event = serde_json::json!({ "type": type_, "object": obj });
            print!("---\n{}", to_yaml(&event));
        }
        Format::Name => println!(
            "{} {}.orcaops.dev/{}",
            type_,
            kind.singular(),
            obj.metadata.name
        ),
        Format::Table | Format::Wide => {
            let mut cells = list_row(obj, format == Format::Wide, with_ns, Utc::now());
            if type_ == "DELETED" {
                cells.push("(deleted)".into());
            }
            print!("{}", table(&[cells]));
        }
    }
}

/// `orcaops get secrets`: name, type, how many keys and age, as kubectl prints them; JSON
/// and YAML show the key names, never the values.
async fn get_secrets(client: &ApiClient, args: &GetArgs) -> Result<u8, ClientError> {
    if args.watch {
        return Err(ClientError::usage(
            "secrets cannot be watched; run orcaops get secrets again",
        ));
    }
    let ns = (!args.all_namespaces).then_some(args.namespace.as_str());
    let secrets = list_secrets(client, ns, args.name.as_deref()).await?;
    if let Some(name) = &args.name
        && secrets.is_empty()
    {
        return Err(ClientError::refused(
            404,
            format!(
                "secret {name} not found in workspace {}; create it with kubectl create secret generic {name} --from-literal=KEY=VALUE -n {}",
                args.namespace, args.namespace
            ),
        ));
    }
    if secrets.is_empty() {
        match ns {
            Some(ns) => eprintln!("No secrets found in workspace {ns}."),
            None => eprintln!("No secrets found."),
        }
        return Ok(exit::OK);
    }
    match args.output {
        Format::Json | Format::Yaml => {
            let items: Vec<Value> = secrets.iter().map(|s| s.to_json()).collect();
            let value = if args.name.is_some() {
                items[0].clone()
            } else {
                serde_json::json!({"apiVersion": "v1", "kind": "SecretList", "items": items})
            };
            if args.output == Format::Json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&value).unwrap_or_default()
                );
            } else {
                print!("{}", to_yaml(&value));
            }
        }
        Format::Name => {
            for s in &secrets {
                println!("secret/{}", s.name);
            }
        }
        Format::Table | Format::Wide => {
            let mut header = vec!["NAME", "TYPE", "DATA", "AGE"];
            if args.all_namespaces {
                header.insert(0, "NAMESPACE");
            }
            let mut rows = vec![header.into_iter().map(String::from).collect()];
            for s in &secrets {
                let mut row = vec![
                    s.name.clone(),
                    s.type_.clone(),
                    s.keys.len().to_string(),
                    age(s.created),
                ];
                if args.all_namespaces {
                    row.insert(0, s.namespace.clone());
                }
                rows.push(row);
            }
            print!("{}", table(&rows));
        }
    }
    Ok(exit::OK)
}
