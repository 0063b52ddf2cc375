//! Parser messages about content that may be secret (manifests, kubeconfigs, properties): where
//! and what is wrong, never the content. A message that can quote a value keeps only its
//! shape (`expected an integer, found a string`); a message of a form not known to be free of
//! values is replaced as a whole.

/// Where in a parse a message comes from: what may pass through depends on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    /// The YAML reader: its own messages are fixed texts with a line and column.
    Yaml,
    /// Typed decoding of parsed values (Kubernetes objects, kubeconfigs, properties), where a
    /// field's own parser (a timestamp, a quantity) may echo the value in any form.
    Decode,
}

/// What `message` says, without any value it quotes. A path before the problem
/// (`spec.template: `) and a trailing location (`at line 3 column 7`) are kept.
pub fn parser_message(message: &str, stage: Stage) -> String {
    let (head, location) = match message.find(" at line ") {
        Some(at) if is_location(&message[at..]) => (&message[..at], &message[at..]),
        _ => (message, ""),
    };
    // A path before the problem (`spec.replicas: invalid type: …`) is kept when it quotes nothing.
    let (path, problem) = match KNOWN_FORMS.iter().filter_map(|form| head.find(form)).min() {
        Some(at) if !head[..at].contains(['"', '\'', '`']) => head.split_at(at),
        _ => ("", head),
    };
    format!("{path}{}{location}", shape(problem, stage))
}

/// ` at line N column M`, perhaps followed by `, while scanning … at line N column M`: words,
/// digits and commas only.
fn is_location(text: &str) -> bool {
    text.chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, ' ' | ',' | '<' | '>'))
}

const KNOWN_FORMS: [&str; 6] = [
    "invalid type",
    "invalid value",
    "invalid length",
    "missing field",
    "unknown variant",
    "unknown field",
];

fn shape(problem: &str, stage: Stage) -> String {
    for marker in ["invalid type: ", "invalid value: "] {
        if let Some(rest) = problem.strip_prefix(marker) {
            return match rest.rsplit_once(", expected ") {
                Some((found, expected)) => format!("expected {expected}, found {}", kind(found)),
                None => "a value of the wrong type".to_owned(),
            };
        }
    }
    if problem.starts_with("invalid length ") || problem.starts_with("missing field `") {
        return problem.to_owned();
    }
    if problem.starts_with("unknown variant ") {
        return match problem.rsplit_once(", expected ") {
            Some((_, expected)) => format!("expected {expected}"),
            None => "an unknown variant".to_owned(),
        };
    }
    if problem.starts_with("unknown field ") {
        return "an unknown field".to_owned();
    }
    let quotes = problem.contains(['"', '\'', '`']);
    match stage {
        Stage::Yaml if !quotes => problem.to_owned(),
        _ => "a value this field cannot take (not shown: it may be secret)".to_owned(),
    }
}

/// The kind of value serde's `Unexpected` describes (a string, an integer…), never the value
/// itself.
fn kind(found: &str) -> &'static str {
    match found.split([' ', '`']).next().unwrap_or_default() {
        "string" => "a string",
        "integer" => "an integer",
        "floating" => "a number",
        "boolean" => "a boolean",
        "map" => "a map",
        "sequence" => "a list",
        "unit" | "null" => "null",
        "char" => "a character",
        "enum" => "a tagged value",
        "bytes" | "byte" => "bytes",
        "Option" => "an optional value",
        _ => "another kind of value",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_withheld_and_paths_and_locations_kept() {
        let cases = [
            (
                r#"stringData.password: invalid value: string "hunter2", expected an integer at line 5 column 13"#,
                Stage::Yaml,
                "stringData.password: expected an integer, found a string at line 5 column 13",
            ),
            (
                r#"invalid type: string "x, expected hunter2", expected a map"#,
                Stage::Decode,
                "expected a map, found a string",
            ),
            (
                r#"parsed value '2024-01-01T00:00:00Z', but unparsed input "hunter2" remains (expected no unparsed input)"#,
                Stage::Decode,
                "a value this field cannot take (not shown: it may be secret)",
            ),
            (
                "expected 0-9 but got h",
                Stage::Decode,
                "a value this field cannot take (not shown: it may be secret)",
            ),
            (
                "found unexpected end of stream at line 6 column 1, while scanning a quoted scalar at line 5 column 13",
                Stage::Yaml,
                "found unexpected end of stream at line 6 column 1, while scanning a quoted scalar at line 5 column 13",
            ),
            (
                "unknown variant `hunter2`, expected one of `irsa`, `pod-identity`",
                Stage::Decode,
                "expected one of `irsa`, `pod-identity`",
            ),
            ("missing field `name`", Stage::Decode, "missing field `name`"),
            (
                "metadata.labels: invalid type: integer `5`, expected a string",
                Stage::Decode,
                "metadata.labels: expected a string, found an integer",
            ),
            (
                r#"a: "hunter2" at line 1 column 1"#,
                Stage::Yaml,
                "a value this field cannot take (not shown: it may be secret) at line 1 column 1",
            ),
        ];
        for (message, stage, expected) in cases {
            assert_eq!(parser_message(message, stage), expected, "{message}");
        }
    }
}
