//! The protobuf body kubectl sends when it creates or replaces a core kind
//! (`Content-Type: application/vnd.kubernetes.protobuf`): the `k8s\0` magic, then a
//! `runtime.Unknown` wrapping the Secret's own message. Only the fields a Secret write
//! carries are read (type meta, name, namespace, resourceVersion, labels, annotations,
//! data, stringData, type, immutable); the result is the JSON form the handlers read.
//!
//! Field numbers are those of `k8s.io/api/core/v1/generated.proto` and
//! `k8s.io/apimachinery/pkg/apis/meta/v1/generated.proto`.

use base64::Engine;
use serde_json::{Map, Value, json};

const MAGIC: &[u8] = b"k8s\0";

/// A protobuf field: its number, and its value if length-delimited (others are skipped,
/// except varints, kept as numbers).
enum Field<'a> {
    Bytes(u32, &'a [u8]),
    Varint(u32, u64),
}

fn varint(buf: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for shift in (0..64).step_by(7) {
        let (&byte, rest) = buf.split_first()?;
        *buf = rest;
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

/// Every field of one message, or None when it is not protobuf.
fn fields(mut buf: &[u8]) -> Option<Vec<Field<'_>>> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        let tag = varint(&mut buf)?;
        let number = u32::try_from(tag >> 3).ok()?;
        match tag & 7 {
            0 => out.push(Field::Varint(number, varint(&mut buf)?)),
            1 => buf = buf.get(8..)?,
            2 => {
                let len = usize::try_from(varint(&mut buf)?).ok()?;
                let (value, rest) = (buf.get(..len)?, buf.get(len..)?);
                out.push(Field::Bytes(number, value));
                buf = rest;
            }
            5 => buf = buf.get(4..)?,
            _ => return None,
        }
    }
    Some(out)
}

fn text(bytes: &[u8]) -> Option<String> {
    String::from_utf8(bytes.to_vec()).ok()
}

/// A map entry (`key = 1`, `value = 2`).
fn entry(bytes: &[u8]) -> Option<(String, &[u8])> {
    let (mut key, mut value) = (None, &[][..]);
    for field in fields(bytes)? {
        match field {
            Field::Bytes(1, k) => key = Some(text(k)?),
            Field::Bytes(2, v) => value = v,
            _ => {}
        }
    }
    Some((key?, value))
}

fn metadata(bytes: &[u8]) -> Option<Value> {
    let mut meta = Map::new();
    let (mut labels, mut annotations) = (Map::new(), Map::new());
    for field in fields(bytes)? {
        match field {
            Field::Bytes(1, v) => {
                meta.insert("name".into(), json!(text(v)?));
            }
            Field::Bytes(2, v) if !v.is_empty() => {
                meta.insert("generateName".into(), json!(text(v)?));
            }
            Field::Bytes(3, v) => {
                meta.insert("namespace".into(), json!(text(v)?));
            }
            Field::Bytes(6, v) => {
                meta.insert("resourceVersion".into(), json!(text(v)?));
            }
            Field::Bytes(11, v) => {
                let (key, value) = entry(v)?;
                labels.insert(key, json!(text(value)?));
            }
            Field::Bytes(12, v) => {
                let (key, value) = entry(v)?;
                annotations.insert(key, json!(text(value)?));
            }
            _ => {}
        }
    }
    if !labels.is_empty() {
        meta.insert("labels".into(), Value::Object(labels));
    }
    if !annotations.is_empty() {
        meta.insert("annotations".into(), Value::Object(annotations));
    }
    Some(Value::Object(meta))
}

fn secret(bytes: &[u8]) -> Option<Value> {
    let mut secret = Map::new();
    let (mut data, mut string_data) = (Map::new(), Map::new());
    for field in fields(bytes)? {
        match field {
            Field::Bytes(1, v) => {
                secret.insert("metadata".into(), metadata(v)?);
            }
            Field::Bytes(2, v) => {
                let (key, value) = entry(v)?;
                let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                data.insert(key, json!(encoded));
            }
            Field::Bytes(3, v) => {
                secret.insert("type".into(), json!(text(v)?));
            }
            Field::Bytes(4, v) => {
                let (key, value) = entry(v)?;
                string_data.insert(key, json!(text(value)?));
            }
            Field::Varint(5, v) => {
                secret.insert("immutable".into(), json!(v != 0));
            }
            _ => {}
        }
    }
    if !data.is_empty() {
        secret.insert("data".into(), Value::Object(data));
    }
    if !string_data.is_empty() {
        secret.insert("stringData".into(), Value::Object(string_data));
    }
    Some(Value::Object(secret))
}

/// The JSON of a protobuf-encoded Secret, or None when `body` is not one.
pub(super) fn decode(body: &[u8]) -> Option<Value> {
    let unknown = body.strip_prefix(MAGIC)?;
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), None);
    for field in fields(unknown)? {
        match field {
            Field::Bytes(1, type_meta) => {
                for f in fields(type_meta)? {
                    match f {
                        Field::Bytes(1, v) => api_version = text(v)?,
                        Field::Bytes(2, v) => kind = text(v)?,
                        _ => {}
                    }
                }
            }
            Field::Bytes(2, v) => raw = Some(v),
            _ => {}
        }
    }
    let mut value = secret(raw?)?;
    value["apiVersion"] = json!(api_version);
    value["kind"] = json!(kind);
    Some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn field(number: u8, bytes: &[u8]) -> Vec<u8> {
        let mut out = vec![(number << 3) | 2, u8::try_from(bytes.len()).unwrap()];
        out.extend_from_slice(bytes);
        out
    }

    fn entry(key: &str, value: &[u8]) -> Vec<u8> {
        [field(1, key.as_bytes()), field(2, value)].concat()
    }

    /// What kubectl create secret generic hook --from-literal=token=... sends.
    #[test]
    fn a_secret_as_kubectl_sends_it_decodes() {
        let meta = [
            field(1, b"hook"),
            field(3, b"default"),
            field(11, &entry("team", b"a")),
        ]
        .concat();
        let secret = [
            field(1, &meta),
            field(2, &entry("token", b"s3cr3t\x00\xff")),
            field(3, b"Opaque"),
        ]
        .concat();
        let type_meta = [field(1, b"v1"), field(2, b"Secret")].concat();
        let unknown = [
            field(1, &type_meta),
            field(2, &secret),
            field(4, b"application/vnd.kubernetes.protobuf"),
        ]
        .concat();
        let body = [MAGIC, &unknown].concat();
        let value = decode(&body).expect("decodes");
        assert_eq!(value["kind"], "Secret");
        assert_eq!(value["apiVersion"], "v1");
        assert_eq!(value["metadata"]["name"], "hook");
        assert_eq!(value["metadata"]["namespace"], "default");
        assert_eq!(value["metadata"]["labels"]["team"], "a");
        assert_eq!(value["type"], "Opaque");
        let encoded = base64::engine::general_purpose::STANDARD.encode(b"s3cr3t\x00\xff");
        assert_eq!(value["data"]["token"], encoded);
    }

    #[test]
    fn what_is_not_protobuf_is_refused() {
        assert!(decode(b"{\"kind\": \"Secret\"}").is_none());
        assert!(decode(b"k8s\0\x0a\xff").is_none());
        assert!(decode(b"k8s\0").is_none());
    }
}
