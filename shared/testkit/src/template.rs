//! `{name}` placeholders in the kit's texts: filled in, or read back out of a value.

use serde_json::Value;

enum Part<'a> {
    Literal(&'a str),
    Name(&'a str),
}

fn parts(text: &str) -> Vec<Part<'_>> {
    let mut parts = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find('{') {
        let Some(length) = rest[start..].find('}') else {
            break;
        };
        let name = &rest[start + 1..start + length];
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
            // A brace that opens no placeholder (JSON text, say) is literal.
            parts.push(Part::Literal(&rest[..=start]));
            rest = &rest[start + 1..];
            continue;
        }
        if start > 0 {
            parts.push(Part::Literal(&rest[..start]));
        }
        parts.push(Part::Name(name));
        rest = &rest[start + length + 1..];
    }
    if !rest.is_empty() {
        parts.push(Part::Literal(rest));
    }
    parts
}

/// `text` with every `{name}` replaced by `value(name)`; `None` if a name has no value.
pub fn fill(text: &str, value: impl Fn(&str) -> Option<String>) -> Option<String> {
    parts(text)
        .into_iter()
        .map(|part| match part {
            Part::Literal(literal) => Some(literal.to_string()),
            Part::Name(name) => value(name),
        })
        .collect()
}

/// The placeholders' values in `value`, if it is `template` with each placeholder filled by a
/// non-empty text.
pub fn capture(template: &str, value: &str) -> Option<Vec<(String, String)>> {
    let parts = parts(template);
    let mut rest = value;
    let mut captured = Vec::new();
    for (index, part) in parts.iter().enumerate() {
        match part {
            Part::Literal(literal) => rest = rest.strip_prefix(literal)?,
            Part::Name(name) => {
                let taken = match parts.get(index + 1) {
                    None => rest,
                    Some(Part::Literal(next)) if index + 2 == parts.len() => {
                        rest.strip_suffix(next)?
                    }
                    Some(Part::Literal(next)) => &rest[..rest.find(next)?],
                    Some(Part::Name(_)) => return None,
                };
                if taken.is_empty() {
                    return None;
                }
                captured.push((name.to_string(), taken.to_string()));
                rest = &rest[taken.len()..];
            }
        }
    }
    rest.is_empty().then_some(captured)
}

/// A JSON template filled in: a text that is one placeholder becomes its value (a number if
/// the value is one), placeholders inside texts their value; unknown ones stay as written.
pub fn fill_value(template: &Value, value: &impl Fn(&str) -> Option<String>) -> Value {
    match template {
        Value::String(text) => {
            let filled = fill(text, |name| {
                value(name).or_else(|| Some(format!("{{{name}}}")))
            })
            .unwrap_or_default();
            let whole = matches!(parts(text).as_slice(), [Part::Name(_)]);
            match filled.parse::<u64>() {
                Ok(number) if whole => number.into(),
                _ => filled.into(),
            }
        }
        Value::Array(items) => items.iter().map(|item| fill_value(item, value)).collect(),
        Value::Object(fields) => fields
            .iter()
            .map(|(key, item)| (key.clone(), fill_value(item, value)))
            .collect(),
        other => other.clone(),
    }
}

/// True if `got` is `template` with its placeholders filled by values `accept` takes.
pub fn matches_value(template: &Value, got: &Value, accept: &impl Fn(&str, &str) -> bool) -> bool {
    match (template, got) {
        (Value::Object(expected), Value::Object(actual)) => {
            expected.len() == actual.len()
                && expected.iter().all(|(key, item)| {
                    actual
                        .get(key)
                        .is_some_and(|value| matches_value(item, value, accept))
                })
        }
        (Value::String(expected), Value::String(actual)) => matches_text(expected, actual, accept),
        (expected, actual) => expected == actual,
    }
}

/// True if `got` is `template` with its placeholders filled by values `accept` takes.
pub fn matches_text(template: &str, got: &str, accept: &impl Fn(&str, &str) -> bool) -> bool {
    capture(template, got)
        .is_some_and(|captured| captured.iter().all(|(name, value)| accept(name, value)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_filled_and_read_back() {
        let value = |name: &str| (name == "key").then(|| "k1".to_string());
        assert_eq!(
            fill("Token token=\"{key}\"", value).unwrap(),
            "Token token=\"k1\""
        );
        assert_eq!(fill("{other}", value), None);
        assert_eq!(fill("{\"a\": {key}}", value).unwrap(), "{\"a\": k1}");
        let got = capture("Token token=\"{key}\" x", "Token token=\"abc\" x").unwrap();
        assert_eq!(got, [("key".to_string(), "abc".to_string())]);
        assert!(capture("Bearer {token}", "Bearer ").is_none(), "empty");
        assert!(capture("Bearer {token}", "bearer abc").is_none());
        assert!(capture("/v1/{a}/slots/{b}", "/v1/4/slots/9").is_some());
    }

    #[test]
    fn json_templates_fill_numbers_and_match_shapes() {
        let value = |name: &str| (name == "id").then(|| "42".to_string());
        let filled = fill_value(
            &serde_json::json!({"id": "{id}", "p": "/x/{id}", "n": "{no}"}),
            &value,
        );
        assert_eq!(
            filled,
            serde_json::json!({"id": 42, "p": "/x/42", "n": "{no}"})
        );
        let template = serde_json::json!({"appid": "{app_id}", "n": 1});
        let any = |_: &str, _: &str| true;
        assert!(matches_value(
            &template,
            &serde_json::json!({"appid": "a", "n": 1}),
            &any
        ));
        assert!(!matches_value(
            &template,
            &serde_json::json!({"appid": "a"}),
            &any
        ));
        assert!(!matches_value(
            &template,
            &serde_json::json!({"appid": "", "n": 1}),
            &any
        ));
    }
}
