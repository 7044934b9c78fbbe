//! Reading provider bodies without losing a digit: fields read as text keep the exact text the
//! sender wrote (a JSON number's digits, a string's characters), never a float's rendering.

use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

use crate::response::IngestError;

/// Deserializes a JSON body, naming the offending field in the error (`payload[0].type: ...`).
pub fn parse_json<T: DeserializeOwned>(body: &[u8]) -> Result<T, IngestError> {
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let value = serde_path_to_error::deserialize(&mut deserializer).map_err(|error| {
        let mut path = error.path().to_string();
        if path.chars().count() > 64 {
            // Deeply nested input: the start of the path says enough.
            path = path.chars().take(64).chain(['…']).collect();
        }
        let inner = without_values(&error.into_inner().to_string());
        if path == "." {
            IngestError::MalformedBody(inner)
        } else {
            IngestError::MalformedBody(format!("{path}: {inner}"))
        }
    })?;
    deserializer
        .end()
        .map_err(|error| IngestError::MalformedBody(without_values(&error.to_string())))?;
    Ok(value)
}

/// A parser's message with the value it quotes cut out: where and what was wrong (path,
/// position, the type found and the one expected), never what the sender wrote — bodies hold
/// personal data, and these messages go into records and log lines.
/// `invalid type: string "Max", expected u64 at line 1 column 9` ->
/// `invalid type: string, expected u64 at line 1 column 9`.
pub fn without_values(message: &str) -> String {
    const QUOTING_A_VALUE: [&str; 4] = [
        "invalid type: ",
        "invalid value: ",
        "unknown variant ",
        "unknown field ",
    ];
    if !QUOTING_A_VALUE
        .iter()
        .any(|start| message.starts_with(start))
    {
        return message.to_string();
    }
    let Some(quote) = message.find(['"', '`']) else {
        return message.to_string();
    };
    let tail = message
        .rfind(", expected")
        .or_else(|| message.rfind(" at line "))
        .filter(|&at| at > quote)
        .unwrap_or(message.len());
    format!("{}{}", message[..quote].trim_end(), &message[tail..])
}

/// A JSON string or number as its exact text: a string's characters, a number's digits as
/// written (`18446744073709551617`, `-0.10`, `1e400`). Anything else is refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Text(pub String);

impl Text {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for Text {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Text {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        scalar_text(raw)
            .map(Text)
            .ok_or_else(|| D::Error::custom("expected a string or a number"))
    }
}

/// A JSON number as its exact text (`18446744073709551617` stays those digits). Strings and
/// everything else are refused.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Number(pub String);

impl Number {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Number {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = <&RawValue>::deserialize(deserializer)?;
        match raw.get().as_bytes().first() {
            Some(b'-' | b'0'..=b'9') => Ok(Number(raw.get().to_string())),
            _ => Err(D::Error::custom("expected a number")),
        }
    }
}

/// The exact text of a string or number value; `None` for anything else.
fn scalar_text(raw: &RawValue) -> Option<String> {
    let text = raw.get();
    match text.as_bytes().first()? {
        b'"' => serde_json::from_str::<String>(text).ok(),
        b'-' | b'0'..=b'9' => Some(text.to_string()),
        _ => None,
    }
}

/// A parsed body that can be asked for the exact text at a JSON pointer (RFC 6901).
pub struct Document<'a> {
    root: &'a RawValue,
}

impl<'a> Document<'a> {
    /// Checks that `body` is one well-formed JSON value (UTF-8, nothing after it).
    pub fn parse(body: &'a [u8]) -> Result<Document<'a>, IngestError> {
        let root: &RawValue = parse_json_borrowed(body)?;
        Ok(Document { root })
    }

    /// The non-empty string or number at `pointer`, as written.
    pub fn text_at(&self, pointer: &str) -> Option<String> {
        let mut value = self.root;
        if !pointer.is_empty() {
            for token in pointer.strip_prefix('/')?.split('/') {
                value = child(value, &token.replace("~1", "/").replace("~0", "~"))?;
            }
        }
        scalar_text(value).filter(|text| !text.is_empty())
    }

    /// The sub-document at `pointer`, to be read with its own pointers.
    pub fn at(&self, pointer: &str) -> Option<Document<'a>> {
        let mut value = self.root;
        for token in pointer.strip_prefix('/')?.split('/') {
            value = child(value, &token.replace("~1", "/").replace("~0", "~"))?;
        }
        Some(Document { root: value })
    }

    /// The document's JSON text, exactly as it came.
    pub fn as_json(&self) -> &'a str {
        self.root.get()
    }

    /// The elements of the array at `pointer` (none if it is not an array).
    pub fn elements(&self, pointer: &str) -> Vec<Document<'a>> {
        let Some(list) = self.at(pointer) else {
            return Vec::new();
        };
        serde_json::from_str::<Vec<&RawValue>>(list.root.get())
            .map(|items| items.into_iter().map(|root| Document { root }).collect())
            .unwrap_or_default()
    }

    /// Every string or number, at any depth, whose field names end in `names` (array
    /// elements in between are looked through): `["customer", "id"]` finds the `id` of each
    /// `customer` object wherever it is.
    pub fn texts_under(&self, names: &[&str]) -> Vec<String> {
        let mut found = Vec::new();
        walk(self.root, &mut Vec::new(), names, &mut found);
        found
    }
}

/// Depth-first through `value`, `path` being the field names above it.
fn walk<'a>(
    value: &'a RawValue,
    path: &mut Vec<std::borrow::Cow<'a, str>>,
    names: &[&str],
    found: &mut Vec<String>,
) {
    match value.get().as_bytes().first() {
        Some(b'{') => {
            for (name, child) in object_fields(value) {
                path.push(name);
                walk(child, path, names, found);
                path.pop();
            }
        }
        Some(b'[') => {
            for item in serde_json::from_str::<Vec<&RawValue>>(value.get()).unwrap_or_default() {
                walk(item, path, names, found);
            }
        }
        _ => {
            let ends_in_names = path.len() >= names.len()
                && path[path.len() - names.len()..]
                    .iter()
                    .zip(names)
                    .all(|(have, want)| have == want);
            if let (true, Some(text)) = (ends_in_names, scalar_text(value)) {
                if !text.is_empty() {
                    found.push(text);
                }
            }
        }
    }
}

fn parse_json_borrowed(body: &[u8]) -> Result<&RawValue, IngestError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| IngestError::MalformedBody("body is not UTF-8".into()))?;
    serde_json::from_str(text)
        .map_err(|error| IngestError::MalformedBody(without_values(&error.to_string())))
}

fn child<'a>(value: &'a RawValue, token: &str) -> Option<&'a RawValue> {
    match value.get().as_bytes().first()? {
        b'{' => object_fields(value)
            .into_iter()
            .rev() // the last of repeated names wins, as in serde_json's own maps
            .find(|(name, _)| name == token)
            .map(|(_, value)| value),
        b'[' => {
            let index: usize = token.parse().ok()?;
            serde_json::from_str::<Vec<&RawValue>>(value.get())
                .ok()?
                .get(index)
                .copied()
        }
        _ => None,
    }
}

fn object_fields(value: &RawValue) -> Vec<(std::borrow::Cow<'_, str>, &RawValue)> {
    struct Fields<'a>(Vec<(std::borrow::Cow<'a, str>, &'a RawValue)>);
    impl<'de> Deserialize<'de> for Fields<'de> {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            struct Visit;
            impl<'de> serde::de::Visitor<'de> for Visit {
                type Value = Fields<'de>;
                fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                    f.write_str("an object")
                }
                fn visit_map<A: serde::de::MapAccess<'de>>(
                    self,
                    mut map: A,
                ) -> Result<Self::Value, A::Error> {
                    let mut fields = Vec::new();
                    while let Some(entry) = map.next_entry()? {
                        fields.push(entry);
                    }
                    Ok(Fields(fields))
                }
            }
            deserializer.deserialize_map(Visit)
        }
    }
    serde_json::from_str::<Fields>(value.get())
        .map(|fields| fields.0)
        .unwrap_or_default()
}

/// JSON text re-indented (two spaces), if it is JSON; `None` otherwise. Only whitespace
/// changes: numbers and strings stay exactly as written (a value parsed and printed again
/// could lose a big integer's digits).
pub fn pretty_json(text: &str) -> Option<String> {
    serde_json::from_str::<serde::de::IgnoredAny>(text).ok()?;
    let mut out = String::with_capacity(text.len() * 2);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        out.extend(std::iter::repeat_n("  ", depth));
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on its line.
                while chars.peek().is_some_and(|c| c.is_ascii_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}' | ']')) {
                    out.push(chars.next().unwrap_or_default());
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_ascii_whitespace() => {}
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Person {
        id: u64,
        kind: Kind,
    }

    #[derive(Debug, Deserialize)]
    enum Kind {
        Member,
    }

    #[test]
    fn texts_are_found_under_field_names_at_any_depth() {
        let body = br#"{"customerId": 1, "checkouts": [{"customerId": "2"}, {"customerId": 3.0}],
            "booking": {"customer": {"id": "c-4"}, "id": "b-9"}, "other": {"id": 5}}"#;
        let document = Document::parse(body).unwrap();
        assert_eq!(document.texts_under(&["customerId"]), ["1", "2", "3.0"]);
        assert_eq!(document.texts_under(&["customer", "id"]), ["c-4"]);
        assert!(document.texts_under(&["missing"]).is_empty());
    }

    #[test]
    fn parse_errors_say_where_and_what_but_never_quote_a_value() {
        let cases: [(&[u8], &str); 5] = [
            (
                br#"{"id": "Max, expected Mustermann", "kind": "Member"}"#,
                "id: invalid type: string, expected u64 at line 1 column",
            ),
            (
                br#"{"id": -5, "kind": "Member"}"#,
                "id: invalid value: integer, expected u64 at line 1 column",
            ),
            (
                br#"{"id": 5, "kind": "Mustermann"}"#,
                "kind: unknown variant, expected `Member` at line 1 column",
            ),
            (
                br#"{"id": 5, "kind": "Member"} "Mustermann""#,
                "trailing characters at line 1 column",
            ),
            (
                br#"{"id": 5, "kind": "Mustermann"#,
                "EOF while parsing a string at line 1 column",
            ),
        ];
        for (body, says) in cases {
            let error = parse_json::<Person>(body).unwrap_err().to_string();
            assert!(error.contains(says), "{error:?} should say {says:?}");
            assert!(
                !error.contains("Mustermann") && !error.contains("-5"),
                "{error}"
            );
        }
    }

    #[test]
    fn numbers_keep_every_digit_and_strings_their_characters() {
        let body = br#"{"data": {"id": 18446744073709551617, "neg": -12345678901234567890123,
            "f": 1.50, "s": "a\"b\u00e9", "list": [{"x": 1e400}], "a/b": {"~": 7}, "e": ""}}"#;
        let document = Document::parse(body).unwrap();
        assert_eq!(
            document.text_at("/data/id").unwrap(),
            "18446744073709551617"
        );
        assert_eq!(
            document.text_at("/data/neg").unwrap(),
            "-12345678901234567890123"
        );
        assert_eq!(document.text_at("/data/f").unwrap(), "1.50");
        assert_eq!(document.text_at("/data/s").unwrap(), "a\"bé");
        assert_eq!(document.text_at("/data/list/0/x").unwrap(), "1e400");
        assert_eq!(document.text_at("/data/a~1b/~0").unwrap(), "7");
        assert_eq!(document.text_at("/data/e"), None, "empty");
        assert_eq!(document.text_at("/data/list"), None, "not a scalar");
        assert_eq!(document.text_at("/data/missing"), None);
        assert_eq!(document.elements("/data/list").len(), 1);
    }

    #[test]
    fn the_last_of_repeated_names_wins() {
        let document = Document::parse(br#"{"id": 1, "id": 2}"#).unwrap();
        assert_eq!(document.text_at("/id").unwrap(), "2");
    }

    #[test]
    fn malformed_or_non_utf8_bodies_are_refused() {
        assert!(Document::parse(b"{\"a\": 1").is_err());
        assert!(Document::parse(b"{} x").is_err());
        assert!(Document::parse(b"\xff\xfe").is_err());
    }

    #[test]
    fn text_fields_refuse_other_types() {
        #[derive(Deserialize)]
        struct Body {
            #[allow(dead_code)]
            id: Text,
        }
        assert_eq!(
            parse_json::<Body>(br#"{"id": 123456789012345678901234567890}"#)
                .unwrap()
                .id
                .as_str(),
            "123456789012345678901234567890"
        );
        assert!(parse_json::<Body>(br#"{"id": true}"#).is_err());
        assert!(parse_json::<Body>(br#"{"id": {"x": 1}}"#).is_err());
    }

    #[test]
    fn pretty_printing_changes_only_whitespace() {
        let text = r#"{"id":18446744073709551617,"list":[],"s":"a\"b {","o":{"x":[1,2]}}"#;
        let pretty = pretty_json(text).unwrap();
        assert!(pretty.contains("18446744073709551617"));
        assert!(pretty.contains("\n  \"list\": []"), "{pretty}");
        let compact: String = pretty
            .split('\n')
            .map(str::trim_start)
            .collect::<Vec<_>>()
            .join("");
        assert_eq!(
            compact.replace(": ", ":").replace(", ", ","),
            text.replace(", ", ",")
        );
        assert_eq!(pretty_json("{\"a\": 1"), None);
    }
}
