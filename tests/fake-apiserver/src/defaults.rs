//! Structural-schema defaulting from a CustomResourceDefinition's `openAPIV3Schema`.

use serde_json::Value;

use crate::{FakeError, ResourceInfo};

/// A CRD as far as the fake needs it: what to register and which schema to default from.
#[derive(Clone, Debug)]
pub(crate) struct CrdSchema {
    pub(crate) info: ResourceInfo,
    pub(crate) schema: Value,
}

/// Parses one or more CRD YAML documents (`---` separated). Each served version becomes one
/// entry; the fake serves a resource at a single version, so the storage version wins.
pub(crate) fn parse_crds(yaml: &str) -> Result<Vec<CrdSchema>, FakeError> {
    let docs: Vec<Value> = serde_saphyr::from_multiple(yaml)
        .map_err(|e| FakeError::InvalidCrd(format!("YAML does not parse: {e}")))?;
    let mut out = Vec::new();
    for doc in docs.into_iter().filter(|d| !d.is_null()) {
        if doc["kind"] != "CustomResourceDefinition" {
            return Err(FakeError::InvalidCrd(format!(
                "expected kind CustomResourceDefinition, found {}",
                doc["kind"]
            )));
        }
        let spec = &doc["spec"];
        let field = |v: &Value, name: &str| {
            v.as_str()
                .map(str::to_owned)
                .ok_or_else(|| FakeError::InvalidCrd(format!("spec.{name} is missing")))
        };
        let group = field(&spec["group"], "group")?;
        let kind = field(&spec["names"]["kind"], "names.kind")?;
        let plural = field(&spec["names"]["plural"], "names.plural")?;
        let namespaced = spec["scope"] != "Cluster";
        let versions = spec["versions"]
            .as_array()
            .ok_or_else(|| FakeError::InvalidCrd("spec.versions is missing".to_owned()))?;
        let version = versions
            .iter()
            .find(|v| v["storage"] == true)
            .or_else(|| versions.first())
            .ok_or_else(|| FakeError::InvalidCrd("spec.versions is empty".to_owned()))?;
        let name = field(&version["name"], "versions[].name")?;
        let has_status = version["subresources"].get("status").is_some();
        out.push(CrdSchema {
            info: ResourceInfo::new(&group, &name, &kind, &plural, namespaced, has_status),
            schema: version["schema"]["openAPIV3Schema"].clone(),
        });
    }
    Ok(out)
}

/// Fills absent fields that have a `default:` in the schema, recursing into present objects,
/// array items and `additionalProperties`, as the apiserver's structural defaulting does.
pub(crate) fn apply_defaults(schema: &Value, value: &mut Value) {
    match value {
        Value::Object(map) => {
            if let Some(props) = schema["properties"].as_object() {
                for (name, prop_schema) in props {
                    if !map.contains_key(name)
                        && let Some(default) = prop_schema.get("default")
                    {
                        map.insert(name.clone(), default.clone());
                    }
                    if let Some(child) = map.get_mut(name) {
                        apply_defaults(prop_schema, child);
                    }
                }
            }
            if let Some(extra) = schema.get("additionalProperties").filter(|s| s.is_object()) {
                for child in map.values_mut() {
                    apply_defaults(extra, child);
                }
            }
        }
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items") {
                for item in items {
                    apply_defaults(item_schema, item);
                }
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.example.org
spec:
  group: example.org
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
    - name: v1
      served: true
      storage: true
      subresources: {status: {}}
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                size: {type: integer, default: 3}
                mode: {type: string, default: fast}
                nested:
                  type: object
                  default: {}
                  properties:
                    depth: {type: integer, default: 7}
                ports:
                  type: array
                  items:
                    type: object
                    properties:
                      protocol: {type: string, default: TCP}
"#;

    #[test]
    fn crd_yaml_registers_the_storage_version_with_scope_and_status() {
        let crds = parse_crds(CRD).unwrap();
        assert_eq!(crds.len(), 1);
        assert_eq!(
            crds[0].info,
            ResourceInfo::new("example.org", "v1", "Widget", "widgets", true, true)
        );
    }

    #[test]
    fn defaults_fill_absent_fields_recursively_and_keep_given_values() {
        let schema = &parse_crds(CRD).unwrap()[0].schema;
        let mut obj = json!({"spec": {"mode": "slow", "ports": [{"port": 80}]}});
        apply_defaults(schema, &mut obj);
        assert_eq!(
            obj["spec"],
            json!({"mode": "slow", "size": 3, "nested": {"depth": 7},
                   "ports": [{"port": 80, "protocol": "TCP"}]})
        );
    }

    #[test]
    fn a_document_that_is_not_a_crd_is_rejected() {
        let err = parse_crds("kind: ConfigMap\n").unwrap_err();
        assert_eq!(err.reason(), "InvalidCrd");
    }
}
