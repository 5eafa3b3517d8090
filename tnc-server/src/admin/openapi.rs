//! The admin API's OpenAPI 3.1 document, served at `GET /v1/openapi.json`:
//! derived by utoipa from the handlers' `#[utoipa::path]` attributes, their
//! query structs and the `tnc_proto::admin` types, so it changes with the
//! code. `tnc-server admin openapi` prints it without a running PDP.

use axum::Json;
use utoipa::openapi::security::SecurityScheme;
use utoipa::OpenApi;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "tnc-server admin API",
        description = "The PDP's operator interface: JSON over HTTPS with mutual TLS. \
            The caller's role comes from its certificate's OU (tnc-admin-read reads, \
            tnc-admin-write also acts). See docs/admin-api.md.",
        license(name = "Apache-2.0", identifier = "Apache-2.0")
    ),
    paths(
        super::whoami,
        super::devices,
        super::device,
        super::reassess_one,
        super::reassess_all,
        super::revoke,
        super::forget,
        super::sessions,
        super::credentials,
        super::pairings,
        super::revocations,
        super::audit,
        super::policies,
        super::load_policy,
        super::events,
        document,
    ),
    // The error body every operation may answer with: named by the
    // IntoResponses types (Errors, NoSuchDevice), which do not register it.
    components(schemas(tnc_proto::admin::ApiError)),
    modifiers(&MutualTls),
    security(("mutual_tls" = [])),
    tags(
        (name = "read", description = "Any admin certificate"),
        (name = "actions", description = "A tnc-admin-write certificate; each action is audited"),
    )
)]
pub struct AdminApi;

/// The only way in: a client certificate from the admin CA.
struct MutualTls;

impl utoipa::Modify for MutualTls {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "mutual_tls",
                SecurityScheme::MutualTls {
                    description: Some(
                        "A client certificate of [admin] ca_certificate with OU tnc-admin-read \
                     or tnc-admin-write (tnc-server admin issue NAME)"
                            .into(),
                    ),
                    extensions: None,
                },
            );
    }
}

/// The document as JSON text.
pub fn json() -> String {
    AdminApi::openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}

#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "read",
    summary = "This document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json"))
)]
pub(super) async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(AdminApi::openapi())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    /// (method, path) of every operation the document describes.
    fn documented() -> BTreeSet<(String, String)> {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        let mut ops = BTreeSet::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for method in item.as_object().unwrap().keys() {
                ops.insert((method.to_uppercase(), path.clone()));
            }
        }
        ops
    }

    /// What the router routes, read from its source: one
    /// `.route("PATH", get(..))` or `post(..)` per line.
    fn routed() -> BTreeSet<(String, String)> {
        let source = include_str!("mod.rs");
        let mut ops = BTreeSet::new();
        for line in source.lines().map(str::trim) {
            let Some(rest) = line.strip_prefix(".route(\"") else {
                continue;
            };
            let (path, handler) = rest.split_once("\", ").unwrap();
            let method = handler.split_once('(').unwrap().0.to_uppercase();
            ops.insert((method, path.to_string()));
        }
        ops
    }

    #[test]
    fn the_document_describes_every_route_and_no_other() {
        let routed = routed();
        assert!(routed.len() >= 16, "{routed:?}");
        assert_eq!(documented(), routed);
    }

    #[test]
    fn the_markdown_lists_the_same_operations() {
        let md = include_str!("../../../docs/admin-api.md");
        let mut listed = BTreeSet::new();
        for cell in md.split('`') {
            let Some((method, rest)) = cell.split_once(' ') else {
                continue;
            };
            if matches!(method, "GET" | "POST") && rest.starts_with("/v1/") {
                let path = rest.split(['?', '[']).next().unwrap();
                let path = path.replace("{id}", "{device}");
                listed.insert((method.to_string(), path));
            }
        }
        assert_eq!(listed, documented());
    }

    #[test]
    fn schemas_follow_serde() {
        let doc: serde_json::Value = serde_json::from_str(&super::json()).unwrap();
        let schemas = &doc["components"]["schemas"];
        // kebab-case roles, the action result tagged by "done", unknown
        // fields named in the request types.
        assert_eq!(
            schemas["AdminRole"]["enum"],
            serde_json::json!(["read-only", "read-write"])
        );
        let tags: BTreeSet<String> = schemas["ActionResult"]["oneOf"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| {
                v["properties"]["done"]["enum"][0]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect();
        assert_eq!(
            tags,
            [
                "forgotten",
                "policy_loaded",
                "reassess_requested",
                "revoked"
            ]
            .map(String::from)
            .into()
        );
        assert!(schemas["Device"]["properties"]["drift"].is_object());
        // Every schema a response names is in the document.
        let text = super::json();
        for name in text.split("#/components/schemas/").skip(1) {
            let name = name.split('"').next().unwrap();
            assert!(schemas[name].is_object(), "{name} is named but not defined");
        }
        assert_eq!(
            doc["components"]["securitySchemes"]["mutual_tls"]["type"],
            "mutualTLS"
        );
    }
}
