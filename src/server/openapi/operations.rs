//! The building blocks of operations: parameters, responses, and the operations of
//! one kind (list, create, read, replace, patch, delete, status).

use serde_json::json;
use utoipa::openapi::extensions::ExtensionsBuilder;
use utoipa::openapi::path::{OperationBuilder, ParameterBuilder, ParameterIn};
use utoipa::openapi::request_body::RequestBodyBuilder;
use utoipa::openapi::schema::SchemaType;
use utoipa::openapi::{
    ArrayBuilder, ContentBuilder, ObjectBuilder, Ref, Required, ResponseBuilder, Type,
};

use super::schema_name;
use super::schemas::{STATUS, WATCH_EVENT};
use crate::resources::{GROUP, Kind, VERSION};

pub(super) fn schema_ref(name: &str) -> Ref {
    Ref::from_schema_name(name)
}

pub(super) fn string_schema() -> ObjectBuilder {
    ObjectBuilder::new().schema_type(Type::String)
}

pub(super) fn param(
    name: &str,
    location: ParameterIn,
    description: &str,
    schema: ObjectBuilder,
) -> ParameterBuilder {
    ParameterBuilder::new()
        .name(name)
        .parameter_in(location.clone())
        .required(if location == ParameterIn::Path {
            Required::True
        } else {
            Required::False
        })
        .description(Some(description))
        .schema(Some(schema))
}

pub(super) fn path_param(name: &str, description: &str) -> ParameterBuilder {
    param(name, ParameterIn::Path, description, string_schema())
}

pub(super) fn query(name: &str, description: &str, schema: ObjectBuilder) -> ParameterBuilder {
    param(name, ParameterIn::Query, description, schema)
}

pub(super) fn namespace_param() -> ParameterBuilder {
    path_param(
        "namespace",
        "The workspace (namespace) the object belongs to, for example `default`.",
    )
}

pub(super) fn list_params() -> Vec<ParameterBuilder> {
    vec![
        query(
            "labelSelector",
            "Only objects whose labels match, as kubectl's -l: `a=b,c!=d,e,!f,g in (x,y),h notin (z)`.",
            string_schema(),
        ),
        query(
            "fieldSelector",
            "Only objects whose fields match, with =, == or !=: `metadata.name=x`, `metadata.namespace=team`, `status.phase!=Succeeded`. Other fields are a 400.",
            string_schema(),
        ),
        query(
            "limit",
            "The most objects to return; the response's metadata.continue fetches the next page.",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ),
        query(
            "continue",
            "The metadata.continue of the previous page. Every page reports the first page's resourceVersion; a token older than the server's watch history gets 410 Expired.",
            string_schema(),
        ),
        query(
            "watch",
            "Stream changes instead of listing: one JSON `{type, object}` per line (ADDED, MODIFIED, DELETED, BOOKMARK, ERROR).",
            ObjectBuilder::new().schema_type(Type::Boolean),
        ),
        query(
            "resourceVersion",
            "With watch=true: send the changes after this version (the list's metadata.resourceVersion), so nothing between the list and the watch is lost. Too old a version gets 410 Expired: list again. Absent or 0: start with an ADDED event per current object.",
            string_schema(),
        ),
        query(
            "allowWatchBookmarks",
            "With watch=true: also send BOOKMARK events (only metadata.resourceVersion, the version the watch has reached) every 15 s and before timeoutSeconds ends the watch.",
            ObjectBuilder::new().schema_type(Type::Boolean),
        ),
        query(
            "timeoutSeconds",
            "With watch=true: end the watch after this many seconds.",
            ObjectBuilder::new()
                .schema_type(Type::Integer)
                .minimum(Some(0)),
        ),
        query(
            "sendInitialEvents",
            "With watch=true: true sends an ADDED per current object first (ended by a BOOKMARK annotated k8s.io/initial-events-end when bookmarks are allowed); false starts from now.",
            ObjectBuilder::new().schema_type(Type::Boolean),
        ),
    ]
}

pub(super) fn write_params() -> Vec<ParameterBuilder> {
    vec![
        query(
            "fieldManager",
            "The name of the writer (kubectl sends one); recorded for information only.",
            string_schema(),
        ),
        query(
            "fieldValidation",
            "Strict, Warn or Ignore. orcaops always validates strictly: unknown or misspelt fields are refused with a message that names the field and the fix.",
            string_schema().enum_values(Some(["Strict", "Warn", "Ignore"])),
        ),
    ]
}

pub(super) fn json_content(schema: Ref) -> ContentBuilder {
    ContentBuilder::new().schema(Some(schema))
}

pub(super) fn ok(description: &str, schema: &str) -> ResponseBuilder {
    ResponseBuilder::new()
        .description(description)
        .content("application/json", json_content(schema_ref(schema)).build())
}

pub(super) fn error_response() -> ResponseBuilder {
    ResponseBuilder::new()
        .description("An error, as a Kubernetes Status: `reason` (NotFound, AlreadyExists, Conflict, Invalid, BadRequest, ...) and, for invalid objects, one `details.causes` entry per field.")
        .content("application/json", json_content(schema_ref(STATUS)).build())
}

/// An operation with the parts every one has: id, summary, tag, the error response.
pub(super) fn operation(id: &str, summary: &str, description: &str, tag: &str) -> OperationBuilder {
    OperationBuilder::new()
        .operation_id(Some(id))
        .summary(Some(summary))
        .description(Some(description))
        .tag(tag)
        .response("default", error_response().build())
}

/// The Kubernetes extensions kubectl reads on an operation.
pub(super) fn k8s_extensions(action: &str, kind: Kind) -> ExtensionsBuilder {
    ExtensionsBuilder::new()
        .add("x-kubernetes-action", action)
        .add(
            "x-kubernetes-group-version-kind",
            json!({ "group": GROUP, "version": VERSION, "kind": kind.as_str() }),
        )
}

pub(super) struct KindDocs {
    pub(super) kind: Kind,
    /// `Job`, `Jobs`: for operationIds.
    pub(super) one: String,
    pub(super) many: String,
    /// "job", "jobs": for prose.
    pub(super) singular: &'static str,
    pub(super) plural: &'static str,
    pub(super) tag: String,
}

impl KindDocs {
    pub(super) fn new(kind: Kind) -> Self {
        let one = kind.as_str().to_string();
        let plural = kind.plural();
        let many = format!("{}{}", &one[..1], &plural[1..]);
        KindDocs {
            kind,
            many,
            one,
            singular: kind.singular(),
            plural,
            tag: plural.to_string(),
        }
    }

    pub(super) fn schema(&self) -> String {
        schema_name(self.kind.as_str())
    }

    pub(super) fn list_schema(&self) -> String {
        schema_name(&format!("{}List", self.kind.as_str()))
    }

    pub(super) fn scope_params(&self) -> Vec<ParameterBuilder> {
        if self.kind.namespaced() {
            vec![namespace_param()]
        } else {
            vec![]
        }
    }

    pub(super) fn where_(&self) -> &'static str {
        if self.kind.namespaced() {
            " in a workspace"
        } else {
            ""
        }
    }

    pub(super) fn list(&self, all_namespaces: bool) -> OperationBuilder {
        let (id, summary) = if all_namespaces {
            (
                format!("list{}InAllWorkspaces", self.many),
                format!("List or watch the {} of every workspace", self.plural),
            )
        } else {
            (
                format!("list{}", self.many),
                format!("List or watch the {}{}", self.plural, self.where_()),
            )
        };
        let params = if all_namespaces {
            vec![]
        } else {
            self.scope_params()
        };
        operation(
            &id,
            &summary,
            &format!(
                "Returns a {}List. With watch=true, streams one JSON line per change instead. Send `Accept: application/json;as=Table;v=v1;g=meta.k8s.io` for a Table with the printer columns, as kubectl does.",
                self.kind.as_str()
            ),
            &self.tag,
        )
        .parameters(Some(params.into_iter().chain(list_params())))
        .response(
            "200",
            ok(&format!("The {}", self.plural), &self.list_schema())
                .content(
                    "application/json;stream=watch",
                    json_content(schema_ref(WATCH_EVENT)).build(),
                )
                .build(),
        )
        .extensions(Some(k8s_extensions("list", self.kind).build()))
    }

    pub(super) fn create(&self) -> OperationBuilder {
        operation(
            &format!("create{}", self.one),
            &format!("Create a {}{}", self.singular, self.where_()),
            &format!(
                "The body is one {} in JSON or YAML, validated exactly as a file of the watched folder. 409 AlreadyExists when the name is taken; 422 Invalid with one cause per field when the object is not valid.",
                self.kind.as_str()
            ),
            &self.tag,
        )
        .parameters(Some(self.scope_params().into_iter().chain(write_params())))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_content(schema_ref(&self.schema())).build())
                .content("application/yaml", json_content(schema_ref(&self.schema())).build())
                .build(),
        ))
        .response("201", ok("Created", &self.schema()).build())
        .extensions(Some(k8s_extensions("post", self.kind).build()))
    }

    pub(super) fn item_params(&self) -> Vec<ParameterBuilder> {
        let mut params = self.scope_params();
        params.push(path_param(
            "name",
            &format!("The name of the {}.", self.singular),
        ));
        params
    }

    pub(super) fn read(&self) -> OperationBuilder {
        operation(
            &format!("read{}", self.one),
            &format!("Read a {} (spec and status)", self.singular),
            &format!(
                "Returns the {} with its status: what was declared and what happened.",
                self.kind.as_str()
            ),
            &self.tag,
        )
        .parameters(Some(self.item_params()))
        .response("200", ok("The object", &self.schema()).build())
        .extensions(Some(k8s_extensions("get", self.kind).build()))
    }

    pub(super) fn replace(&self) -> OperationBuilder {
        operation(
            &format!("replace{}", self.one),
            &format!("Replace a {}", self.singular),
            "Replaces labels, annotations and spec (status is never written here). A metadata.resourceVersion older than the stored one gets 409 Conflict: read again and retry.",
            &self.tag,
        )
        .parameters(Some(self.item_params().into_iter().chain(write_params())))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_content(schema_ref(&self.schema())).build())
                .build(),
        ))
        .response("200", ok("Replaced", &self.schema()).build())
        .extensions(Some(k8s_extensions("put", self.kind).build()))
    }

    pub(super) fn patch(&self) -> OperationBuilder {
        let json_patch = ArrayBuilder::new().items(
            ObjectBuilder::new()
                .property(
                    "op",
                    string_schema()
                        .enum_values(Some(["add", "remove", "replace", "move", "copy", "test"])),
                )
                .property("path", string_schema())
                .property("from", string_schema())
                .property(
                    "value",
                    ObjectBuilder::new().schema_type(SchemaType::AnyValue),
                )
                .required("op")
                .required("path"),
        );
        operation(
            &format!("patch{}", self.one),
            &format!("Patch a {}", self.singular),
            "Content-Type selects the patch: application/merge-patch+json (RFC 7386; null removes a field), application/json-patch+json (RFC 6902), or application/apply-patch+yaml (server-side apply: the whole declaration, created if absent). The result is validated as a file of the watched folder. Strategic merge patch is not supported (415).",
            &self.tag,
        )
        .parameters(Some(
            self.item_params()
                .into_iter()
                .chain(write_params())
                .chain([query(
                    "force",
                    "Server-side apply: accepted for kubectl; orcaops has one owner per object, so there are no conflicts to force.",
                    ObjectBuilder::new().schema_type(Type::Boolean),
                )]),
        ))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content(
                    "application/merge-patch+json",
                    ContentBuilder::new()
                        .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                        .build(),
                )
                .content(
                    "application/json-patch+json",
                    ContentBuilder::new().schema(Some(json_patch)).build(),
                )
                .content(
                    "application/apply-patch+yaml",
                    json_content(schema_ref(&self.schema())).build(),
                )
                .build(),
        ))
        .response("200", ok("Patched", &self.schema()).build())
        .response("201", ok("Created by server-side apply", &self.schema()).build())
        .extensions(Some(k8s_extensions("patch", self.kind).build()))
    }

    pub(super) fn delete(&self) -> OperationBuilder {
        operation(
            &format!("delete{}", self.one),
            &format!("Delete a {}", self.singular),
            &format!(
                "Deletes at once and returns the last state. Deleting a {} stops what it runs; its run records, logs and artifacts are kept.",
                self.singular
            ),
            &self.tag,
        )
        .parameters(Some(self.item_params()))
        .response("200", ok("Deleted", &self.schema()).build())
        .extensions(Some(k8s_extensions("delete", self.kind).build()))
    }

    pub(super) fn replace_status(&self) -> OperationBuilder {
        operation(
            &format!("replace{}Status", self.one),
            &format!("Replace the status of a {}", self.singular),
            "Writes the body's .status and nothing else: spec, labels and the rest of the body are ignored, as in Kubernetes. A metadata.resourceVersion older than the stored one gets 409 Conflict; an empty one writes unconditionally. A status that does not fit the kind is 422 Invalid with the field.",
            &self.tag,
        )
        .parameters(Some(self.item_params().into_iter().chain(write_params())))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/json", json_content(schema_ref(&self.schema())).build())
                .build(),
        ))
        .response("200", ok("The object with its new status", &self.schema()).build())
        .extensions(Some(k8s_extensions("put", self.kind).build()))
    }

    pub(super) fn patch_status(&self) -> OperationBuilder {
        let any_object = || {
            ContentBuilder::new()
                .schema(Some(ObjectBuilder::new().schema_type(Type::Object)))
                .build()
        };
        operation(
            &format!("patch{}Status", self.one),
            &format!("Patch the status of a {}", self.singular),
            "application/merge-patch+json (RFC 7386) is applied to the whole object and only the resulting status is kept; a metadata.resourceVersion in the patch is a precondition (409 when stale), without one a write that lost a race is retried. application/apply-patch+yaml merges the status of the declaration. Other content types are 415.",
            &self.tag,
        )
        .parameters(Some(self.item_params().into_iter().chain(write_params())))
        .request_body(Some(
            RequestBodyBuilder::new()
                .required(Some(Required::True))
                .content("application/merge-patch+json", any_object())
                .content("application/apply-patch+yaml", any_object())
                .build(),
        ))
        .response("200", ok("The object with its new status", &self.schema()).build())
        .extensions(Some(k8s_extensions("patch", self.kind).build()))
    }

    pub(super) fn read_status(&self) -> OperationBuilder {
        operation(
            &format!("read{}Status", self.one),
            &format!("Read the status of a {}", self.singular),
            "The status subresource: the same object, read through /status.",
            &self.tag,
        )
        .parameters(Some(self.item_params()))
        .response("200", ok("The object", &self.schema()).build())
        .extensions(Some(k8s_extensions("get", self.kind).build()))
    }
}
