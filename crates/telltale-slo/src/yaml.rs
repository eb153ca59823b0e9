//! A tiny YAML writer for generated files.
//!
//! Why not a YAML serializer crate: generated rules are committed and diffed, so the
//! output must be stable and readable (keys in a fixed order, PromQL as block scalars),
//! and the subset needed (maps, lists, strings) is small.

use std::fmt::Write;

/// A YAML value; maps keep insertion order.
#[derive(Debug, Clone)]
pub(crate) enum Node {
    Map(Vec<(String, Node)>),
    Seq(Vec<Node>),
    /// A string, quoted when needed.
    Str(String),
    /// Written as is (numbers, booleans, durations).
    Plain(String),
}

impl Node {
    pub(crate) fn map() -> MapBuilder {
        MapBuilder(Vec::new())
    }

    pub(crate) fn str(s: impl Into<String>) -> Node {
        Node::Str(s.into())
    }

    pub(crate) fn plain(s: impl Into<String>) -> Node {
        Node::Plain(s.into())
    }

    fn is_scalar(&self) -> bool {
        match self {
            Node::Str(_) | Node::Plain(_) => true,
            Node::Map(m) => m.is_empty(),
            Node::Seq(s) => s.is_empty(),
        }
    }
}

/// Builds a [`Node::Map`] in order.
pub(crate) struct MapBuilder(Vec<(String, Node)>);

impl MapBuilder {
    pub(crate) fn with(mut self, key: &str, value: Node) -> Self {
        self.0.push((key.to_owned(), value));
        self
    }

    pub(crate) fn with_str(self, key: &str, value: impl Into<String>) -> Self {
        self.with(key, Node::Str(value.into()))
    }

    pub(crate) fn build(self) -> Node {
        Node::Map(self.0)
    }
}

/// Renders a document.
pub(crate) fn to_string(node: &Node) -> String {
    let mut out = String::new();
    write_block(&mut out, node, 0);
    out
}

fn write_block(out: &mut String, node: &Node, indent: usize) {
    let pad = " ".repeat(indent);
    match node {
        Node::Map(entries) if !entries.is_empty() => {
            for (k, v) in entries {
                out.push_str(&pad);
                write_entry(out, k, v, indent);
            }
        }
        Node::Seq(items) if !items.is_empty() => {
            for item in items {
                out.push_str(&pad);
                out.push_str("- ");
                match item {
                    Node::Map(entries) if !entries.is_empty() => {
                        // First entry on the dash line, the rest aligned under it.
                        let inner = indent + 2;
                        for (i, (k, v)) in entries.iter().enumerate() {
                            if i > 0 {
                                out.push_str(&" ".repeat(inner));
                            }
                            write_entry(out, k, v, inner);
                        }
                    }
                    Node::Seq(_) if !item.is_scalar() => {
                        out.push('\n');
                        write_block(out, item, indent + 2);
                    }
                    scalar => {
                        write_scalar(out, scalar, indent + 2);
                        out.push('\n');
                    }
                }
            }
        }
        scalar => {
            out.push_str(&pad);
            write_scalar(out, scalar, indent);
            out.push('\n');
        }
    }
}

fn write_entry(out: &mut String, key: &str, value: &Node, indent: usize) {
    out.push_str(&scalar_text(key));
    out.push(':');
    if value.is_scalar() {
        out.push(' ');
        write_scalar(out, value, indent + 2);
        out.push('\n');
    } else {
        out.push('\n');
        write_block(out, value, indent + 2);
    }
}

fn write_scalar(out: &mut String, node: &Node, indent: usize) {
    match node {
        Node::Plain(s) => out.push_str(s),
        Node::Str(s) if s.contains('\n') && !s.starts_with(' ') => {
            out.push_str("|-\n");
            let pad = " ".repeat(indent);
            for (i, line) in s.lines().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                if !line.is_empty() {
                    let _ = write!(out, "{pad}{line}");
                }
            }
        }
        Node::Str(s) => out.push_str(&scalar_text(s)),
        Node::Map(_) => out.push_str("{}"),
        Node::Seq(_) => out.push_str("[]"),
    }
}

/// A string as a plain scalar when that is unambiguous, else JSON-quoted (valid YAML).
fn scalar_text(s: &str) -> String {
    const KEYWORDS: &[&str] = &["true", "false", "yes", "no", "on", "off", "null", "y", "n", "~"];
    let plain = s
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_' || b == b'/')
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"_-./:".contains(&b))
        && !s.ends_with(':')
        && !KEYWORDS.contains(&s.to_ascii_lowercase().as_str());
    if plain {
        s.to_owned()
    } else {
        serde_json::to_string(s).unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_nested_documents() {
        let doc = Node::map()
            .with(
                "groups",
                Node::Seq(vec![
                    Node::map()
                        .with_str("name", "a")
                        .with("interval", Node::plain("1m"))
                        .with("rules", Node::Seq(vec![]))
                        .with_str("expr", "sum(x)\n/\nsum(y)")
                        .build(),
                ]),
            )
            .with_str("quoted", "yes")
            .with_str("value", "{{ $value }} \"x\"")
            .build();
        assert_eq!(
            to_string(&doc),
            "groups:\n  - name: a\n    interval: 1m\n    rules: []\n    expr: |-\n      sum(x)\n      /\n      sum(y)\nquoted: \"yes\"\nvalue: \"{{ $value }} \\\"x\\\"\"\n"
        );
    }
}
